"""`rollback plan --probe` on real OpenSSH servers: each recorded backup is checked on its server (size and
sha256, read only) and a backup changed since it was taken is refused before anything is stopped."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.fleet import runs
from tests.fleet.fleet import Fleet
from xsoar_mt.inventory import load_inventory
from xsoar_mt.known import KnownState

pytestmark = pytest.mark.fleet

SERVERS = ("single-main", "single-h1", "single-h2")


def upgraded_with_backups(fleet: Fleet, tmp_path: Path) -> Path:
    """The `single` deployment after an upgrade from 6.11 to 6.12: each server on 6.12.0, holding the archive
    xsoar-mt took before, which the local record describes."""
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    records = {}
    for name in SERVERS:
        server = fleet.server(name)
        server.set_version("6.12.0")
        archive = server.home / "backup" / "demisto-before-6.12.tar.gz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.write_bytes(f"the data of {name} on 6.11\n".encode() * 100)
        data = archive.read_bytes()
        records[name] = [
            {"release": "6.11", "build": None, "path": str(archive), "size": len(data),
             "sha256": hashlib.sha256(data).hexdigest(), "run_id": "run-1", "taken_at": 1796590800.0}
        ]  # fmt: skip
    known = KnownState(tmp_path / "state", load_inventory(inv))
    known.path.parent.mkdir(parents=True, exist_ok=True)
    known.path.write_text(json.dumps({"backup_records": records}))
    return inv


def rollback_plan(inv: Path) -> subprocess.CompletedProcess[str]:
    return runs.xsoar_mt("rollback", "plan", "-i", str(inv), "--probe", "--state-dir", str(inv.parent / "state"),
                         cwd=inv.parent)  # fmt: skip


def test_a_probed_rollback_plan_checks_every_backup_on_its_server_and_plans_hosts_before_main(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgraded_with_backups(fleet, tmp_path)
    result = rollback_plan(inv)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "every backup's size and sha256 checked on its server" in out
    assert out.index("host group h1 (single): 6.12 -> 6.11") < out.index("main (single): 6.12 -> 6.11")
    assert all(fleet.server(name).running for name in SERVERS)  # read only: nothing stopped


def test_a_backup_changed_since_it_was_taken_or_gone_is_refused_with_exit_7(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgraded_with_backups(fleet, tmp_path)
    with (fleet.server("single-h2").home / "backup" / "demisto-before-6.12.tar.gz").open("ab") as archive:
        archive.write(b"x")
    (fleet.server("single-h1").home / "backup" / "demisto-before-6.12.tar.gz").unlink()
    result = rollback_plan(inv)
    assert result.returncode == 7, result.stdout
    err = result.stderr
    assert "error: single-h1: the backup " in err and "is gone (not a regular file on the server)" in err
    assert "error: single-h2: the backup " in err and "has changed since it was taken" in err
    assert "single-main" not in err
    assert all(fleet.server(name).version == "6.12.0" and fleet.server(name).running for name in SERVERS)
