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


def test_the_plans_own_commands_take_a_host_back_to_its_release_and_data_on_a_real_server(
    fleet: Fleet, tmp_path: Path
) -> None:
    """What `rollback run` will do, done by hand: each step of a saved plan (`--group h2`) run on its server
    as written (the per-server placeholders filled in, the download link on stdin), in order. The server
    ends on the release it was backed up on, with the data it had then: the change made since is gone."""
    from xsoar_mt.plan import Action, Plan
    from xsoar_mt.shellwords import fill_per_server

    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    h2 = fleet.server("single-h2")
    backup = fleet.ssh(
        "single-h2",
        "mkdir -p xsoar-mt/backup && sudo tar -czf xsoar-mt/backup/b.tar.gz etc/demisto.conf var/lib/demisto",
    )
    assert backup.returncode == 0, backup.stderr
    archive = h2.home / "xsoar-mt" / "backup" / "b.tar.gz"
    data = archive.read_bytes()
    record = {"release": "6.11", "build": None, "path": str(archive), "size": len(data),
              "sha256": hashlib.sha256(data).hexdigest(), "run_id": "run-1", "taken_at": 1796590800.0}  # fmt: skip
    known = KnownState(tmp_path / "state", load_inventory(inv))
    known.path.parent.mkdir(parents=True, exist_ok=True)
    known.path.write_text(json.dumps({"backup_records": {"single-h2": [record]}}))
    for name in SERVERS:  # the upgrade to 6.12, then something written on the upgraded release
        fleet.server(name).set_version("6.12.0")
    written = h2.home / "var" / "lib" / "demisto" / "tenants" / "acc_gamma" / "incident-after-upgrade"
    written.write_text("lost on the way back\n")

    saved = tmp_path / "rollback.json"
    made = runs.xsoar_mt("rollback", "plan", "-i", str(inv), "--group", "h2", "--probe", "--out", str(saved),
                         "--state-dir", str(tmp_path / "state"), cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    plan = Plan.from_dict(json.loads(saved.read_text()))
    done = []
    for step in plan.steps:
        if step.action is Action.VALIDATE:
            continue
        (server,) = step.servers
        command = fill_per_server(step.command_on(server), {"server": server, "address": h2.address})
        link = fleet.download_link("6_11_latest") + "\n" if step.action is Action.FETCH else None
        result = fleet.ssh(server, command, input=link)
        assert result.returncode == 0, f"{step.id}: {result.stderr}"
        done.append(step.action.value)
    assert done == ["fetch-installer", "stop", "purge", "install", "restore", "start", "wait-healthy"]
    assert (h2.version, h2.running) == ("6.11.0", True)
    assert not written.exists()
    assert (h2.home / "var" / "lib" / "demisto" / "tenants" / "acc_gamma").is_dir()
    assert fleet.server("single-main").version == "6.12.0"  # main stays: h2 is one release behind it
    events = [e["event"] for e in fleet.events() if e["server"] == "single-h2" and e["event"] == "purge"]
    assert events == ["purge"]


def test_the_archive_a_backup_step_made_is_recorded_with_its_absolute_path_size_and_sha256(
    fleet: Fleet, tmp_path: Path
) -> None:
    from xsoar_mt.releases import ReleaseLine
    from xsoar_mt.rollback.backups import BackupRecord, backup_record_command, record_from_answer

    stamp = "20261206T210000Z-ab12"
    took = fleet.ssh(
        "single-h1",
        f"mkdir -p xsoar-mt/backup && sudo tar -czf xsoar-mt/backup/demisto-before-6.12-{stamp}.tar.gz "
        "etc/demisto.conf var/lib/demisto && touch xsoar-mt/backup/demisto-before-6.12-other.tar.gz",
    )
    assert took.returncode == 0, took.stderr
    answer = fleet.ssh("single-h1", backup_record_command("xsoar-mt/backup", stamp))
    assert answer.returncode == 0, answer.stderr
    found = record_from_answer("single-h1", answer.stdout, release="6.11", build=None, run_id="r1",
                               taken_at=1.0, line=ReleaseLine())  # fmt: skip
    archive = fleet.server("single-h1").home / "xsoar-mt" / "backup" / f"demisto-before-6.12-{stamp}.tar.gz"
    assert isinstance(found, BackupRecord)
    assert found.path == str(archive.resolve())
    assert (found.size, found.sha256) == (
        archive.stat().st_size,
        hashlib.sha256(archive.read_bytes()).hexdigest(),
    )
