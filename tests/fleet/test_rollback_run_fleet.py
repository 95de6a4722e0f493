"""`rollback run` on real OpenSSH servers: an upgrade, data changed on the upgraded release, then the way
back. Each shape returns to its pre-upgrade release and data, every tenant answers through main, and the
order checker finds no host ahead of main at any moment. Refusals come before anything is stopped."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import runs
from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet


def rollback(inv: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return runs.xsoar_mt("rollback", "run", "-i", str(inv), "--yes", "--state-dir", str(inv.parent / "state"),
                         *args, cwd=inv.parent, timeout=timeout)  # fmt: skip


def rollback_json(inv: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    result = rollback(inv, *args, "-o", "json")
    return result, runs.events_of(result.stdout)


def tenant_dir(fleet: Fleet, server: str) -> Path:
    return fleet.server(server).home / "var" / "lib" / "demisto" / "tenants"


def upgrade_then_write(fleet: Fleet, deployment: str, tmp_path: Path, overrides: dict[str, Any] | None = None
                       ) -> Path:  # fmt: skip
    """The deployment upgraded 6.11 -> 6.12 by `upgrade run`, then a file written on every upgraded server
    (what rollback must take away)."""
    inv = fleet.inventory(deployment, tmp_path / "inventory.yaml")
    if overrides:
        import yaml

        from tests.fleet.inventory import merge

        inv.write_text(yaml.safe_dump(merge(yaml.safe_load(inv.read_text()), overrides), sort_keys=False))
    upgraded = runs.run(inv, "--to", "6.12")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    for server in fleet.servers(deployment):
        assert server.version.startswith("6.12"), server.name
        written = server.home / "var" / "lib" / "demisto" / "written-after-the-upgrade"
        written.write_text("lost on the way back\n")
    return inv


def assert_back(fleet: Fleet, deployment: str, events: list[dict[str, Any]]) -> None:
    for server in fleet.servers(deployment):
        assert server.version.startswith("6.11"), (server.name, server.version)
        assert server.running, server.name
        assert not (server.home / "var" / "lib" / "demisto" / "written-after-the-upgrade").exists(), (
            server.name
        )
    tenants = [
        e for e in events if e["kind"] == "step-finished" and e.get("step") == "validate/validate/tenants"
    ]
    assert tenants and tenants[-1]["data"]["outcome"] == "ok"  # every tenant answered through main
    assert runs.order_violations(fleet) == []


ES_REPOSITORY = {"deployment": {"elasticsearch_snapshot_repository": "backups"}}


def es(fleet: Fleet, method: str, path: str, body: Any = None) -> Any:
    from xsoar_mt.rollback.snapshots import request

    return request(fleet.elasticsearch_url, method, path, None, body)


@pytest.mark.parametrize("deployment", ["single", "hahosts", "drhosts"])
def test_an_upgrade_is_rolled_back_to_its_release_and_data_with_no_host_ever_ahead_of_main(
    fleet: Fleet, tmp_path: Path, deployment: str
) -> None:
    elastic = fleet.spec.deployment(deployment).database == "elasticsearch"
    index = f"incidents-{deployment}-{tmp_path.name.lower().replace('_', '-')}"[:100]
    if elastic:
        es(fleet, "PUT", f"/{index}/_doc/before", {"written": "before the upgrade"})
    inv = upgrade_then_write(fleet, deployment, tmp_path, ES_REPOSITORY if elastic else None)
    if elastic:
        es(fleet, "PUT", f"/{index}/_doc/after", {"written": "after the upgrade"})
        assert es(fleet, "GET", f"/{index}/_count")["count"] == 2
    result, events = rollback_json(inv)
    if elastic:  # the snapshot the upgrade took before its first stop is back: the later document is gone
        assert es(fleet, "GET", f"/{index}/_count")["count"] == 1
        assert any(e["kind"] == "snapshot-restored" for e in events)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert_back(fleet, deployment, events)
    purged = [e["server"] for e in fleet.events() if e["event"] == "purge"]
    assert sorted(purged) == sorted(s.name for s in fleet.servers(deployment))
