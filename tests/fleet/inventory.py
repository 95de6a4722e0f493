"""Writes an xsoar-mt inventory (docs/reference/inventory.md) for one deployment of a running fleet: a thin
wrapper of tests/inventories.py that fills in the fleet's addresses, ports, keys and secret files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.fleet.spec import DeploymentSpec, GroupSpec, ServerSpec
from tests.inventories import dr, ha, host, inventory, main, merge, server, single, write

if TYPE_CHECKING:
    from tests.fleet.fleet import Fleet


def write_secret(fleet: Fleet, name: str, value: str) -> Path:
    """A secret file (mode 0600, as the inventory's `file` source demands)."""
    path = fleet.root / "secrets" / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def inventory_data(fleet: Fleet, deployment: DeploymentSpec, versions: bool = False) -> dict[str, Any]:
    """The inventory as a plain dict (tests/inventories.py's pieces): every server, tenant port, key and
    secret file of the fleet.

    Like an operator's first inventory it gives no `version:` (xsoar-mt reads the servers), unless a test
    asks for `versions` (each server's current version) or writes its own through overrides.
    """

    def member(spec: ServerSpec) -> dict[str, Any]:
        place = fleet.placements[spec.name]
        version = fleet.server(spec.name).version if versions else None
        fields: dict[str, Any] = {"ssh_port": place.ssh_port}
        password = spec.sudo_password
        if password is None and fleet.server(spec.name).faults.wrong_sudo_password:
            password = "operators-password"
        if password is not None:
            secret = write_secret(fleet, f"sudo-{spec.name}", password)
            fields["ssh"] = {"sudo_password": {"file": str(secret)}}
        return server(spec.name, place.address, version, **fields)

    def tenants(group: GroupSpec) -> list[dict[str, Any]]:
        place = fleet.placements[group.servers[0].name]
        return [{"name": name, "port": port} for name, port in place.tenants]

    def shape(group: GroupSpec) -> dict[str, Any]:
        if group.kind == "single":
            return single(member(group.primary))
        if group.kind == "ha":
            first = fleet.placements[group.primary.name]
            balancer = group.load_balancer or f"https://{first.address}:{first.comm_port}"
            return ha(*(member(s) for s in group.servers), load_balancer=balancer)
        return dr(member(group.primary), member(group.secondary))

    link = write_secret(fleet, "download-link", fleet.download_link())
    settings: dict[str, Any] = {
        "database": deployment.database,
        "communication_port": fleet.ports.communication,
        "tenant_port_base": fleet.ports.tenant_base,
        "profile": "production",
    }
    if deployment.database == "elasticsearch":
        settings["elasticsearch_url"] = fleet.elasticsearch_url
    if deployment.api_key:
        settings["api_key"] = {
            "file": str(write_secret(fleet, f"api-key-{deployment.name}", deployment.api_key))
        }
    return inventory(
        main(shape(deployment.main), tenants(deployment.main)),
        [host(g.name, shape(g), tenants(g)) for g in deployment.hosts],
        name=deployment.name,
        deployment=settings,
        ssh={
            "user": fleet.user,
            "identity_file": str(fleet.identity_file),
            "known_hosts": str(fleet.known_hosts),
            "config_file": str(fleet.ssh_config),
            "connect_timeout": 5,
        },
        installer={"link": {"file": str(link)}, "delivery": "server-download", "directory": "xsoar-mt"},
        commands={
            "backup_dir": "xsoar-mt/backup",
            "restore": "rm -rf var/lib/demisto && sudo tar -xzf {archive}",
            "backup": (
                "sudo install -d -m 0700 {backup_dir} && sudo sh -c 'umask 077 && exec tar \"$@\"' tar -czf "
                "{backup_dir}/demisto-{server}-before-{version}-{stamp}.tar.gz etc/demisto.conf var/lib/demisto"
            ),
        },
        health={"timeout": 60, "interval": 0.2, "max_interval": 1},
    )


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
    header = f"# Inventory for the xsoar-mt test fleet at {fleet.root} (deployment {deployment.name}).\n"
    return write(path, data, header)
