"""Reading main and the host groups: each group's shape (one server, an HA group, a DR pair), its servers
and its tenants."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import yaml

from xsoar_mt.errors import InvalidInput, shown
from xsoar_mt.inventory.model import Group, Role, Server, SshSettings, Tenant, Topology
from xsoar_mt.inventory.node import Node, optional, required
from xsoar_mt.inventory.sections import read_address, read_ssh, read_url
from xsoar_mt.releases import ReleaseLine, Version

_SERVER_KEYS = ("name", "address", "ssh_port", "version", "ssh")
# Every pattern is used with fullmatch: `$` would also match before a final newline ("m1\n").
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Names end up in tables, messages, journals and file names: no longer than a host name's label (servers
# and groups) or twice that (tenants, whose process is acc_<name>, and the deployment).
NAME_MAX, TENANT_NAME_MAX, DEPLOYMENT_NAME_MAX = 63, 128, 128


@dataclass
class GroupContext:
    """What every group's servers and tenants inherit from the inventory's top level."""

    ssh: SshSettings
    releases: ReleaseLine
    tenant_port_base: int
    communication_port: int


def read_group(node: Node, name: str | None, *, is_main: bool, context: GroupContext) -> Group | None:
    """Main (`name` given) or a host group (named by its own `name` key)."""
    keys = (
        ("server", "ha", "dr", "tenants", "wave")
        if is_main
        else ("name", "server", "ha", "dr", "tenants", "wave")
    )
    items = node.mapping(keys)
    if items is None:
        return None
    wave: int | None = None
    if "wave" in items:
        if is_main:
            items["wave"].problem("main is always upgraded first and alone; `wave` orders host groups")
        else:
            wave = items["wave"].integer(1, 1000, "a whole number of 1 or more (lower goes first)")
    if name is None:
        name = _group_name(node, items)
    shapes = [k for k in ("server", "ha", "dr") if k in items]
    if len(shapes) != 1:
        found = ", ".join(shapes) if shapes else "none"
        node.problem(f"give exactly one of server, ha or dr (found {found})")
        return None
    if name is None:
        return None
    shape_node = items[shapes[0]]
    load_balancer: str | None = None
    if shapes[0] == "server":
        topology = Topology.SINGLE
        server = read_server(shape_node, name, Role.SINGLE, context)
        servers = [server] if server else []
    elif shapes[0] == "ha":
        topology = Topology.HA
        load_balancer, servers = _ha_servers(shape_node, name, is_main, context)
    else:
        topology = Topology.DR
        servers = _dr_servers(shape_node, name, context)
    tenants = read_tenants(items.get("tenants"), name, context)
    if not servers:
        return None
    made = Group(name, is_main, topology, tuple(servers), tenants, load_balancer, wave)
    node.reader.places[id(made)] = (node.line, node.path)
    return made


def _group_name(node: Node, items: dict[str, Node]) -> str | None:
    """A host group's name; `main` is reserved."""
    name_node = required(node, items, "name")
    name = read_name(name_node, "group") if name_node else None
    if name == "main":
        assert name_node is not None
        name_node.problem("`main` is reserved for the main server")
        return None
    return name


def _ha_servers(
    node: Node, group: str, is_main: bool, context: GroupContext
) -> tuple[str | None, list[Server]]:
    """An HA group's load balancer (required for main) and its two or more servers."""
    ha = node.mapping(("load_balancer", "servers"))
    if ha is None:
        return None, []
    if is_main:
        lb_node = required(node, ha, "load_balancer")
        load_balancer = read_url(lb_node) if lb_node else None
    else:
        load_balancer = optional(ha, "load_balancer", read_url, None)
    servers: list[Server] = []
    servers_node = required(node, ha, "servers")
    listed = servers_node.sequence() if servers_node else None
    if listed is not None:
        if len(listed) < 2:
            assert servers_node is not None
            servers_node.problem(f"an HA group needs at least two servers (found {len(listed)})")
        for item in listed:
            server = read_server(item, group, Role.APP, context)
            if server:
                servers.append(server)
    return load_balancer, servers


def _dr_servers(node: Node, group: str, context: GroupContext) -> list[Server]:
    """A DR pair's primary and secondary, one of each."""
    dr = node.mapping(("primary", "secondary"))
    if dr is None:
        return []
    servers: list[Server] = []
    for role in (Role.PRIMARY, Role.SECONDARY):
        member = dr.get(role.value)
        if member is None:
            node.problem(f"a DR pair needs exactly one primary and one secondary; `{role.value}` is missing")
            continue
        if isinstance(member.node, yaml.SequenceNode):
            member.problem(f"a DR pair has exactly one {role.value}, not a list")
            continue
        server = read_server(member, group, role, context)
        if server:
            servers.append(server)
    return servers


def read_server(node: Node, group: str, role: Role, context: GroupContext) -> Server | None:
    items = node.mapping(_SERVER_KEYS)
    if items is None:
        return None
    name_node = required(node, items, "name")
    address_node = required(node, items, "address")
    name = read_name(name_node, "server") if name_node else None
    address = read_address(address_node) if address_node else None
    ssh = context.ssh
    if "ssh" in items:
        ssh = read_ssh(items["ssh"], context.ssh) or context.ssh
    if "ssh_port" in items:
        port = items["ssh_port"].integer(1, 65535)
        if port is not None:
            ssh = replace(ssh, port=port)
    version: Version | None = None
    if "version" in items:
        version = read_inventory_version(items["version"], context.releases)
    if name is None or address is None:
        return None
    made = Server(name, address, group, role, ssh, version, node.line)
    node.reader.places[id(made)] = (node.line, node.path)
    return made


def read_name(node: Node, kind: str) -> str | None:
    """A group, server or tenant name: letters, digits, . _ - and no longer than its kind allows."""
    name = node.text()
    if name is None:
        return None
    longest = TENANT_NAME_MAX if kind == "tenant" else NAME_MAX
    if not _NAME.fullmatch(name):
        node.problem(
            f"tenant name {shown(name)} must be letters, digits, . _ - with no white space"
            if kind == "tenant"
            else f"{shown(name)} is not a valid {kind} name (letters, digits, . _ -)"
        )
    elif len(name) > longest:
        node.problem(
            f"tenant name {shown(name)} is {len(name)} characters long; at most {longest}"
            if kind == "tenant"
            else f"{shown(name)} is {len(name)} characters long; a {kind} name has at most {longest}"
        )
    else:
        return name
    return None


def read_inventory_version(node: Node, releases: ReleaseLine) -> Version | None:
    raw = node.text()
    if raw is None:
        return None
    try:
        version = Version.parse(raw)
        releases.index(version.release)
    except InvalidInput as exc:
        node.problem(exc.message)
        return None
    return version


def read_tenants(node: Node | None, group: str, context: GroupContext) -> tuple[Tenant, ...]:
    if node is None:
        return ()
    items = node.sequence()
    if items is None:
        return ()
    tenants: list[Tenant] = []
    next_port = context.tenant_port_base
    used: dict[int, str] = {}
    for item in items:
        fields = item.mapping(("name", "port"))
        if fields is None:
            continue
        name_node = required(item, fields, "name")
        name = read_name(name_node, "tenant") if name_node else None
        if "port" in fields:
            port = fields["port"].integer(1, 65535)
        else:
            while next_port in used.keys() | {context.communication_port}:
                next_port += 1
            port = next_port
        if port is not None and port in used:
            fields.get("port", item).problem(f"port {port} is already used by tenant {used[port]}")
            port = None
        elif port is not None and port == context.communication_port:
            fields["port"].problem(f"port {port} is the communication port")
            port = None
        if name is None or port is None:
            continue
        used[port] = name
        if port == next_port:
            next_port += 1
        tenant = Tenant(name, port, group)
        node.reader.places[id(tenant)] = (item.line, item.path)
        tenants.append(tenant)
    return tuple(tenants)
