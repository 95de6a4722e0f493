"""The vendor's communication matrix for an inventory: which server must reach which address and port."""

from __future__ import annotations

from xsoar_mt.checks.model import Link
from xsoar_mt.inventory import Group, Inventory, Server, Topology


def _tenant_servers(group: Group) -> tuple[Server, ...]:
    """Where a group's tenants listen: every server of a single or HA group; a DR pair's primary."""
    return (group.primary,) if group.topology is Topology.DR else group.servers


def communication_links(inventory: Inventory) -> tuple[Link, ...]:
    """Every path to test, from the server that would open it. Duplicates keep their first reason.

    Required: main to every host and hosts to main (communication port), HA peers within a group, each
    server to its own tenants' ports, main to every tenant. Not required, reported when open: from a
    server of one HA host group to servers of another HA host group.
    """
    port = inventory.communication_port
    main = inventory.main
    links: list[Link] = []
    for m in main.servers:
        links += [
            Link(m.name, s.name, s.address, port, "main to host") for g in inventory.hosts for s in g.servers
        ]
    for group in inventory.hosts:
        for s in group.servers:
            links += [Link(s.name, m.name, m.address, port, "host to main") for m in main.servers]
    for group in inventory.groups:
        if group.topology is Topology.HA:
            links += [
                Link(a.name, b.name, b.address, port, "HA peers in one group")
                for a in group.servers
                for b in group.servers
                if a is not b
            ]
    for group in inventory.groups:
        for s in _tenant_servers(group):
            links += [
                Link(s.name, f"{t.name}@{s.name}", s.address, t.port, "server to its own tenant")
                for t in group.tenants
            ]
    for m in main.servers:
        for group in inventory.groups:
            links += [
                Link(m.name, f"{t.name}@{s.name}", s.address, t.port, "main to tenant")
                for s in _tenant_servers(group)
                for t in group.tenants
            ]
    ha_hosts = [g for g in inventory.hosts if g.topology is Topology.HA]
    for group in ha_hosts:
        for other in ha_hosts:
            if other is not group:
                links += [
                    Link(a.name, b.name, b.address, port, "between HA groups (not required)", required=False)
                    for a in group.servers
                    for b in other.servers
                ]
    seen: dict[tuple[str, str, int], Link] = {}
    for link in links:
        seen.setdefault((link.source, link.address, link.port), link)
    return tuple(seen.values())
