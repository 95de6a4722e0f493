"""`xsoar-mt upgrade prepare` by day, then `upgrade run` on the night, against the fleet of real OpenSSH
servers: the night fetches nothing that was prepared, fetches again what changed since, and keeps the
vendor's order; a prepare changes no service, is idempotent, and resumes after a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.runs import (
    REPO,
    events_of,
    interrupt_when,
    nothing_changed,
    order_violations,
    run_json,
    versions,
    xsoar_mt,
)

pytestmark = pytest.mark.fleet


@pytest.fixture(autouse=True)
def installers(fleet: Fleet) -> None:
    for release in ("6.11", "6.12"):
        fleet.add_installer(release)


def prepare(inv: Path, *args: str) -> tuple[Any, list[dict[str, Any]]]:
    """`upgrade prepare -o json` with the inventory's own state directory: the process and its events."""
    result = xsoar_mt("upgrade", "prepare", "-i", str(inv), "--yes", "--state-dir", str(inv.parent / "state"),
                      "-o", "json", *args, cwd=inv.parent)  # fmt: skip
    return result, events_of(result.stdout)


def fetched(event: dict[str, Any]) -> bool:
    """An installer download that landed in the installer directory (the preflight's link check writes
    nowhere: it is not a fetch)."""
    return event["event"] == "download" and "/demisto-" in f"/{event.get('file') or ''}"


def downloads(fleet: Fleet, since: int = 0) -> list[str]:
    """The server of every installer fetched, from the fleet's event log (from event `since` on)."""
    return [e["server"] for e in fleet.events()[since:] if fetched(e)]


def kinds(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def installer_file(fleet: Fleet, server: str, release: str = "6.12") -> Path:
    return fleet.server(server).home / "xsoar-mt" / f"demisto-{release}.sh"


def test_prepare_then_run_fetches_no_installer_on_the_night_and_keeps_vendor_order(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    names = sorted(s.name for s in fleet.servers("single"))
    prepared, events = prepare(inv, "--to", "6.12")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert nothing_changed(fleet)  # no stop, no installer began
    assert not [c for c in fleet.commands() if "tar -czf" in c["command"]]  # no backup taken
    assert sorted(downloads(fleet)) == names
    recorded = kinds(events, "installer-prepared")
    assert sorted(e["servers"][0] for e in recorded) == names
    sha = fleet.installer_sha256("6.12")
    assert {e["data"]["sha256"] for e in recorded} == {sha}
    for name in names:  # the record on each server, and the same in the local record
        on_server = json.loads((fleet.server(name).home / "xsoar-mt" / "prepared-6.12.json").read_text())
        assert (on_server["server"], on_server["release"], on_server["sha256"]) == (name, "6.12", sha)
    (local,) = (inv.parent / "state" / "deployments").glob("*/servers.json")
    assert sorted(json.loads(local.read_text())["prepared"]) == names

    fetched_by_day = len(fleet.events())
    night, night_events = run_json(inv, "--to", "6.12")
    assert night.returncode == 0, night.stdout + night.stderr
    assert downloads(fleet, fetched_by_day) == []
    assert sorted(e["servers"][0] for e in kinds(night_events, "installer-in-place")) == names
    assert sorted(e["servers"][0] for e in kinds(night_events, "prepared")) == names  # the run's summary
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert order_violations(fleet) == []


@pytest.mark.parametrize("change", ["changed", "removed"])
def test_a_prepared_installer_changed_or_removed_before_the_night_is_fetched_again_with_a_note(
    fleet: Fleet, tmp_path: Path, change: str
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    prepared, _ = prepare(inv, "--to", "6.12")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    tampered = installer_file(fleet, "single-h1")
    if change == "changed":
        with tampered.open("a") as handle:
            handle.write("# changed after it was prepared\n")
    else:
        tampered.unlink()
    before = len(fleet.events())
    night, events = run_json(inv, "--to", "6.12")
    assert night.returncode == 0, night.stdout + night.stderr
    assert downloads(fleet, before) == ["single-h1"]
    notes = [e for e in kinds(events, "warning") if e["data"].get("refetch")]
    assert [e["servers"] for e in notes] == [["single-h1"]]
    assert ("changed since it was prepared" if change == "changed" else "no longer at") in notes[0]["message"]
    assert sorted(e["servers"][0] for e in kinds(events, "installer-in-place")) == [
        "single-h2",
        "single-main",
    ]
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert order_violations(fleet) == []


def test_prepare_twice_fetches_nothing_the_second_time(fleet: Fleet, tmp_path: Path) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    first, _ = prepare(inv, "--to", "6.12")
    assert first.returncode == 0, first.stdout + first.stderr
    before = len(fleet.events())
    second, events = prepare(inv, "--to", "6.12")
    assert second.returncode == 0, second.stdout + second.stderr
    assert downloads(fleet, before) == []
    assert len(kinds(events, "installer-in-place")) == len(fleet.servers("single"))
    assert nothing_changed(fleet)


@pytest.mark.parametrize("fault", ["fail", "drop"])
def test_prepare_with_a_fetch_fault_on_one_server_resumes_and_fetches_only_what_is_missing(
    fleet: Fleet, tmp_path: Path, fault: str
) -> None:
    rule: dict[str, Any] = {"match": r"read -r link", "action": fault}
    if fault == "drop":
        rule["seconds"] = 2
    fleet.server("single-h1").set_fault(commands=[rule])
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    first, events = prepare(inv, "--to", "6.12")
    if fault == "fail":  # the prepare fails on that server, then resumes
        assert first.returncode == 6, first.stdout + first.stderr
        assert "single-h1" not in [e["servers"][0] for e in kinds(events, "installer-prepared")]
        fleet.server("single-h1").clear_faults()
        before = len(fleet.events())
        resumed, again = prepare(inv, "--resume", "latest")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert downloads(fleet, before) == ["single-h1"]
        assert sorted(e["servers"][0] for e in kinds(again, "installer-in-place")) == [
            "single-h2",
            "single-main",
        ]
    else:  # the connection drops during the fetch: reconnected, fetched again, prepared
        assert first.returncode == 0, first.stdout + first.stderr
        assert any("reconnected" in e["message"] for e in kinds(events, "warning"))
        assert "single-h1" in [e["servers"][0] for e in kinds(events, "installer-prepared")]
    assert nothing_changed(fleet)
    before = len(fleet.events())
    night, _ = run_json(inv, "--to", "6.12")
    assert night.returncode == 0, night.stdout + night.stderr
    assert downloads(fleet, before) == []
    assert order_violations(fleet) == []


def test_plan_probe_from_another_machine_reads_each_server_s_prepared_record_and_a_bad_one_is_not_prepared(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    prepared, _ = prepare(inv, "--to", "6.12")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    (fleet.server("single-h2").home / "xsoar-mt" / "prepared-6.12.json").write_text(
        '{"server": "single-h2"}\n'
    )
    elsewhere = str(tmp_path / "another-machine")  # no local record: only what the servers hold
    plan = xsoar_mt("upgrade", "plan", "-i", str(inv), "--to", "6.12", "--probe", "--state-dir", elsewhere,
                    cwd=inv.parent)  # fmt: skip
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "single-main: installer for 6.12 prepared at" in plan.stdout
    assert "single-h1: installer for 6.12 prepared at" in plan.stdout
    assert "single-h2: installer for 6.12 prepared" not in plan.stdout
    before = len(fleet.events())
    night, events = run_json(inv, "--to", "6.12", "--state-dir", elsewhere)
    assert night.returncode == 0, night.stdout + night.stderr
    assert downloads(fleet, before) == ["single-h2"]
    assert sorted(e["servers"][0] for e in kinds(events, "installer-in-place")) == [
        "single-h1",
        "single-main",
    ]
    assert order_violations(fleet) == []


def test_a_prepare_interrupted_twice_exits_130_and_its_resume_fetches_only_what_was_cut_off(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h1").set_fault(
        commands=[{"match": r"read -r link", "action": "slow", "seconds": 60}]
    )
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    argv = [sys.executable, "-m", "xsoar_mt", "upgrade", "prepare", "-i", str(inv), "--yes", "--to", "6.12",
            "--state-dir", str(inv.parent / "state"), "-o", "json"]  # fmt: skip
    records = [fleet.server(n).home / "xsoar-mt" / "prepared-6.12.json" for n in ("single-main", "single-h2")]

    def recorded() -> bool:  # the two other servers' fetches are done: their records are written last
        return all(r.exists() for r in records)

    process = subprocess.Popen(argv, cwd=inv.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    out, err = interrupt_when(process, recorded, times=2)
    assert process.returncode == 130, out + err
    assert "single-h1" not in [e["servers"][0] for e in kinds(events_of(out), "installer-prepared")]
    before = len(fleet.events())
    fleet.server("single-h1").clear_faults()
    resumed, events = prepare(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert downloads(fleet, before) == ["single-h1"]
    assert sorted(e["servers"][0] for e in kinds(events, "installer-in-place")) == [
        "single-h2",
        "single-main",
    ]
    assert nothing_changed(fleet)
