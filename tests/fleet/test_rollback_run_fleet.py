"""`rollback run` on real OpenSSH servers: an upgrade, data changed on the upgraded release, then the way
back. Each shape returns to its pre-upgrade release and data, every tenant answers through main, and the
order checker finds no host ahead of main at any moment. Refusals come before anything is stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fleet import runs
from tests.fleet.fleet import Fleet
from tests.fleet.rollbacks import (
    ES_REPOSITORY,
    assert_back,
    es,
    rollback,
    rollback_json,
    stops,
    tenant_dir,
    upgrade_then_write,
)

pytestmark = pytest.mark.fleet


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


def test_one_group_whose_upgrade_failed_goes_back_alone_while_main_stays_on_the_target(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    fleet.server("single-h2").set_fault(installer_fails=True)
    failed = runs.run(inv, "--to", "6.12")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    fleet.server("single-h2").clear_faults()
    written = tenant_dir(fleet, "single-h2") / "written-after-the-failed-upgrade"
    written.write_text("lost on the way back\n")

    result, events = rollback_json(inv, "--group", "h2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    h2 = fleet.server("single-h2")
    assert (h2.version, h2.running) == ("6.11.0", True)
    assert not written.exists()
    assert runs.versions(fleet, "single")["single-main"] == "6.12.0"  # main stays on the target
    assert runs.versions(fleet, "single")["single-h1"] == "6.12.0"
    started = {s for e in events if e["kind"] == "step-started" for s in e.get("servers", ())}
    assert started == {"single-h2", "single-main"}  # h2's way back, then validation through main
    assert runs.order_violations(fleet) == []
    as_upgrade = runs.run(inv, "--resume", "latest")  # the latest run is the rollback: not an upgrade's
    assert as_upgrade.returncode == 3, as_upgrade.stdout + as_upgrade.stderr
    assert "is a rollback" in as_upgrade.stderr


def test_a_server_without_a_recorded_backup_is_refused_with_exit_7_before_anything_stops(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    for server in fleet.servers("single"):  # upgraded by hand: xsoar-mt took no backup
        server.set_version("6.12.0")
    before = stops(fleet)
    result = rollback(inv)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "no backup recorded" in result.stderr
    assert stops(fleet) == before


def test_a_backup_changed_since_the_upgrade_is_refused_with_exit_7_before_anything_stops(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    (archive,) = (fleet.server("single-h1").home / "xsoar-mt" / "backup").glob("*.tar.gz")
    with archive.open("ab") as tampered:
        tampered.write(b"x")
    before = stops(fleet)
    result = rollback(inv)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "single-h1" in result.stderr and "has changed since it was taken" in result.stderr
    assert stops(fleet) == before
    assert all(s.version == "6.12.0" and s.running for s in fleet.servers("single"))


def test_a_rollback_of_main_alone_that_would_leave_hosts_ahead_of_main_is_refused_with_exit_4(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    before = stops(fleet)
    result = rollback(inv, "--only", "main")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "ahead" in result.stderr
    assert stops(fleet) == before


def test_elasticsearch_without_a_snapshot_repository_is_refused_with_exit_4_unless_release_only(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "hahosts", tmp_path)
    before = stops(fleet)
    result = rollback(inv)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "snapshot repository" in result.stderr and "--release-only" in result.stderr
    assert stops(fleet) == before


def test_a_saved_rollback_plan_is_refused_by_upgrade_run_and_when_edited_by_rollback_run(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    saved = tmp_path / "rollback.json"
    made = runs.xsoar_mt("rollback", "plan", "-i", str(inv), "--probe", "--out", str(saved),
                         "--state-dir", str(tmp_path / "state"), cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    as_upgrade = runs.run(inv, "--plan", str(saved))
    assert as_upgrade.returncode == 2, as_upgrade.stdout + as_upgrade.stderr
    assert "rollback plan" in as_upgrade.stderr
    data = json.loads(saved.read_text())
    data["phases"][1]["steps"][0]["command"] += " ; true"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    before = stops(fleet)
    refused = rollback(inv, "--plan", str(edited))
    assert refused.returncode == 8, refused.stdout + refused.stderr
    assert stops(fleet) == before
    dry = runs.xsoar_mt("rollback", "run", "-i", str(inv), "--dry-run", "--plan", str(saved), "-o", "json",
                        "--state-dir", str(tmp_path / "state"), cwd=tmp_path)  # fmt: skip
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr
    would = [e["message"] for e in runs.events_of(dry.stdout) if e["kind"] == "would-run"]
    assert any("-purge" in m for m in would) and any("want=" in m for m in would)
    assert stops(fleet) == before  # a dry run changes nothing
    ran = rollback(inv, "--plan", str(saved))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr
    assert all(s.version == "6.11.0" for s in fleet.servers("single"))


def test_the_backup_record_beside_the_marker_serves_a_machine_without_the_local_record_and_is_read_strictly(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    elsewhere = tmp_path / "elsewhere"  # another operator's machine: no local record of the backups
    record = fleet.server("single-h1").home / "xsoar-mt" / "backup-record.json"
    kept = json.loads(record.read_text())
    assert kept["release"] == "6.11" and kept["run_id"] and len(kept["sha256"]) == 64
    record.write_text(json.dumps({**kept, "restore_as": "root"}) + "\n")  # a field xsoar-mt never writes
    before = stops(fleet)
    refused = runs.xsoar_mt(
        "rollback", "run", "-i", str(inv), "--yes", "--state-dir", str(elsewhere), cwd=tmp_path
    )
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert "single-h1" in refused.stderr and "a field xsoar-mt does not write" in refused.stderr
    assert stops(fleet) == before
    record.write_text(json.dumps(kept) + "\n")
    ran = runs.xsoar_mt(
        "rollback", "run", "-i", str(inv), "--yes", "--state-dir", str(elsewhere), cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr
    assert all(s.version == "6.11.0" and s.running for s in fleet.servers("single"))
