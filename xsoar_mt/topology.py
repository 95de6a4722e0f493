"""The inventory's topology as plain data, for JSON output."""

from __future__ import annotations

from typing import Any

from xsoar_mt.inventory import Group, Inventory


def topology_dict(inventory: Inventory) -> dict[str, Any]:
    return {
        "deployment": inventory.name,
        "database": inventory.database,
        "communication_port": inventory.communication_port,
        "main": _group(inventory.main),
        "hosts": [_group(g) for g in inventory.hosts],
    }


def _group(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "topology": group.topology.value,
        "load_balancer": group.load_balancer,
        "servers": [
            {
                "name": s.name,
                "address": s.address,
                "ssh_port": s.ssh_port,
                "role": s.role.value,
                "version": str(s.version) if s.version else None,
            }
            for s in group.servers
        ],
        "tenants": [{"name": t.name, "account": t.account, "port": t.port} for t in group.tenants],
    }
