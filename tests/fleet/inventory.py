"""Writes an xsoar-mt inventory (docs/reference/inventory.md) for one deployment of a running fleet."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.fleet.spec import DeploymentSpec, GroupSpec, ServerSpec

if TYPE_CHECKING:
    from tests.fleet.fleet import Fleet


def write_secret(fleet: Fleet, name: str, value: str) -> Path:
    """A secret file (mode 0600, as the inventory's `file` source demands)."""
    path = fleet.root / "secrets" / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def inventory_data(fleet: Fleet, deployment: DeploymentSpec, versions: bool = False) -> dict[str, Any]:
    """The inventory as a plain dict: every server, tenant port, key and secret file of the fleet.

    Like an operator's first inventory it gives no `version:` (xsoar-mt reads the servers), unless a test
    asks for `versions` (each server's current version) or writes its own through overrides.
    """

    def server(spec: ServerSpec) -> dict[str, Any]:
        place = fleet.placements[spec.name]
        entry: dict[str, Any] = {"name": spec.name, "address": place.address, "ssh_port": place.ssh_port}
        if versions:
            entry["version"] = fleet.server(spec.name).version
        password = spec.sudo_password
        if password is None and fleet.server(spec.name).faults.wrong_sudo_password:
            password = "operators-password"
        if password is not None:
            secret = write_secret(fleet, f"sudo-{spec.name}", password)
            entry["ssh"] = {"sudo_password": {"file": str(secret)}}
        return entry

    def tenants(group: GroupSpec) -> list[dict[str, Any]]:
        place = fleet.placements[group.servers[0].name]
        return [{"name": name, "port": port} for name, port in place.tenants]

    def topology(group: GroupSpec) -> dict[str, Any]:
        if group.kind == "single":
            return {"server": server(group.primary)}
        if group.kind == "ha":
            first = fleet.placements[group.primary.name]
            balancer = group.load_balancer or f"https://{first.address}:{first.comm_port}"
            return {"ha": {"load_balancer": balancer, "servers": [server(s) for s in group.servers]}}
        return {"dr": {"primary": server(group.primary), "secondary": server(group.secondary)}}

    link = write_secret(fleet, "download-link", fleet.download_link())
    data: dict[str, Any] = {
        "inventory_version": 1,
        "deployment": {
            "name": deployment.name,
            "database": deployment.database,
            "communication_port": fleet.ports.communication,
            "tenant_port_base": fleet.ports.tenant_base,
            "profile": "production",
        },
        "ssh": {
            "user": fleet.user,
            "identity_file": str(fleet.identity_file),
            "known_hosts": str(fleet.known_hosts),
            "config_file": str(fleet.ssh_config),
            "connect_timeout": 5,
        },
        "installer": {
            "link": {"file": str(link)},
            "delivery": "server-download",
            "directory": "xsoar-mt",
        },
        "commands": {
            "backup_dir": "xsoar-mt/backup",
            "restore": "rm -rf var/lib/demisto && sudo tar -xzf {archive}",
            "backup": (
                "sudo install -d -m 0700 {backup_dir} && sudo sh -c 'umask 077 && exec tar \"$@\"' tar -czf "
                "{backup_dir}/demisto-{server}-before-{version}-{stamp}.tar.gz etc/demisto.conf var/lib/demisto"
            ),
        },
        "health": {"timeout": 60, "interval": 0.2, "max_interval": 1},
        "main": topology(deployment.main),
        "hosts": [],
    }
    if deployment.database == "elasticsearch":
        data["deployment"]["elasticsearch_url"] = fleet.elasticsearch_url
    if deployment.api_key:
        data["deployment"]["api_key"] = {
            "file": str(write_secret(fleet, f"api-key-{deployment.name}", deployment.api_key))
        }
    if deployment.main.tenants:
        data["main"]["tenants"] = tenants(deployment.main)
    for group in deployment.hosts:
        data["hosts"].append({"name": group.name, **topology(group), "tenants": tenants(group)})
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``; a value of None deletes the key."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def write_inventory(
    fleet: Fleet,
    deployment: DeploymentSpec,
    path: Path | None = None,
    *,
    versions: bool = False,
    **overrides: Any,
) -> Path:
    """Write the inventory (``overrides`` deep-merged at the top level) and return its path."""
    data = merge(inventory_data(fleet, deployment, versions), overrides)
    path = Path(path) if path is not None else fleet.root / f"inventory-{deployment.name}.yaml"
    path.write_text(
        f"# Inventory for the xsoar-mt test fleet at {fleet.root} (deployment {deployment.name}).\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    return path
