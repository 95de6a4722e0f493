"""The rules across a whole inventory, checked once every group is read: each naming the place it breaks."""

from __future__ import annotations

from xsoar_mt.inventory.model import Inventory, Server, Topology
from xsoar_mt.inventory.node import Problems


def cross_checks(reader: Problems, inv: Inventory) -> None:
    """The rules across the whole inventory: unique names and endpoints, shapes the database allows, and no
    host newer than main."""
    names: dict[str, Server] = {}
    endpoints: dict[tuple[str, int], Server] = {}
    for server in inv.servers:
        line, path = reader.places[id(server)]
        if server.name in names:
            reader.problem(
                line,
                f"{path}.name",
                f"duplicate server name {server.name} (also at line {names[server.name].line})",
            )
        names.setdefault(server.name, server)
        endpoint = (server.address, server.ssh_port)
        if endpoint in endpoints:
            other = endpoints[endpoint]
            reader.problem(
                line,
                f"{path}.address",
                f"{server.address}:{server.ssh_port} is also server {other.name} (line {other.line})",
            )
        endpoints.setdefault(endpoint, server)
    group_names: set[str] = set()
    tenant_names: dict[str, str] = {}
    for group in inv.groups:
        line, path = reader.places[id(group)]
        if group.name in group_names:
            reader.problem(line, f"{path}.name", f"duplicate host group name {group.name}")
        group_names.add(group.name)
        if group.topology is Topology.HA and inv.database != "elasticsearch":
            reader.problem(
                line, f"{path}.ha", "HA needs Elasticsearch; set deployment.database: elasticsearch"
            )
        if group.topology is Topology.DR and inv.database == "elasticsearch":
            reader.problem(
                line, f"{path}.dr", "DR (Live Backup) works only with BoltDB, not with Elasticsearch"
            )
        for tenant in group.tenants:
            if tenant.name in tenant_names:
                tenant_line, tenant_path = reader.places[id(tenant)]
                reader.problem(
                    tenant_line,
                    f"{tenant_path}.name",
                    f"duplicate tenant {tenant.name} (also in {tenant_names[tenant.name]})",
                )
            tenant_names.setdefault(tenant.name, group.name)
    topologies = {g.topology for g in inv.groups}
    if Topology.HA in topologies and Topology.DR in topologies:
        first_dr = next(g for g in inv.groups if g.topology is Topology.DR)
        line, path = reader.places[id(first_dr)]
        reader.problem(line, f"{path}.dr", "DR (Live Backup) cannot be combined with HA in one deployment")
    _host_versions(reader, inv)


def _host_versions(reader: Problems, inv: Inventory) -> None:
    main_versions = [s.version for s in inv.main.servers if s.version is not None]
    if not main_versions:
        return
    oldest_main = min(main_versions)
    newest_allowed = inv.releases.index(oldest_main.release)
    for group in inv.hosts:
        for server in group.servers:
            if server.version is not None and inv.releases.index(server.version.release) > newest_allowed:
                line, path = reader.places[id(server)]
                reader.problem(
                    line,
                    f"{path}.version",
                    f"host runs {server.version}, newer than main ({oldest_main}); "
                    "a host must never run a newer release than main",
                )
