"""What `run_upgrade` leaves open on this machine once a run is over (scripted servers: their survey
reports no version, so the inventory gives it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests import inventories as make
from tests.unit.scripted_servers import ScriptedFleet
from xsoar_mt.events import Event
from xsoar_mt.usecases.run import RunRequest, run_upgrade
from xsoar_mt.usecases.session import Session

INVENTORY = make.as_yaml(
    make.inventory(
        make.main(make.single(make.server("m1", "127.0.0.1", "6.11.0"))),
        [make.host("h1", make.single(make.server("h1", "127.0.0.2", "6.11.0")))],
        name="t",
        deployment={"communication_port": 1},
        installer={"link": {"env": "XSOAR_TEST_LINK"}},
    )
)


def _open_journals(under: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue
    return [t for t in targets if t.startswith(str(under)) and t.endswith("journal.jsonl")]


@pytest.mark.parametrize("fails", [False, True], ids=["succeeded", "failed"])
def test_a_run_closes_its_journal_when_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    monkeypatch.setenv("XSOAR_TEST_LINK", "https://download.demisto.works/download-params/?token=t")
    fleet = ScriptedFleet({"m1": "6.11.0", "h1": "6.11.0"})
    fleet.servers["h1"].install_fails = fails
    events: list[Event] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append(event)

    request = RunRequest(target="6.12", yes=True, ignore_preflight_errors="all")
    with Session(inventory, tmp_path / "state", shells=fleet.shell) as session:
        outcome = run_upgrade(session, request, Sink(), confirm=lambda plan: True)
    assert outcome.report is not None and outcome.report.outcome == ("failed" if fails else "succeeded")
    assert outcome.run_dir is not None and (outcome.run_dir / "journal.jsonl").exists()
    assert _open_journals(tmp_path) == []


def test_a_runs_start_record_says_who_ran_it_and_keeps_the_preflight_findings_it_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass
    import hashlib
    import json
    import socket

    from xsoar_mt import __version__

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    monkeypatch.setenv("XSOAR_TEST_LINK", "https://download.demisto.works/download-params/?token=t")
    fleet = ScriptedFleet({"m1": "6.11.0", "h1": "6.11.0"})
    fleet.servers["h1"].install_fails = True

    class Sink:
        def emit(self, event: Event) -> None:
            pass

    def run(**more: Any) -> list[dict[str, Any]]:
        request = RunRequest(yes=True, ignore_preflight_errors="all", **more)
        with Session(inventory, tmp_path / "state", shells=fleet.shell) as session:
            outcome = run_upgrade(session, request, Sink(), confirm=lambda plan: True)
        assert outcome.run_dir is not None
        lines = (outcome.run_dir / "journal.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    records = run(target="6.12")
    intent = records[0]
    assert intent["kind"] == "run-intent"
    run_id = (tmp_path / "state" / "runs").iterdir().__next__().name
    assert intent["upgrade"] == run_id
    assert intent["operator"] == getpass.getuser() and intent["machine"] == socket.gethostname()
    assert intent["xsoar_mt_version"] == __version__
    assert intent["inventory_sha256"] == hashlib.sha256(INVENTORY.encode()).hexdigest()
    ignored = [r for r in records if r["kind"] == "warning" and r.get("data", {}).get("verdict") == "ignored"]
    assert ignored and all(r["ts"] <= intent["ts"] for r in ignored)  # kept with the time they were said
    assert records.index(ignored[0]) > 0  # written after the run-intent, which stays the first record

    resumed = run(resume="latest")
    (again,) = [r for r in resumed if r["kind"] == "run-resumed"]
    assert again["upgrade"] == run_id and again["operator"] == intent["operator"]


def test_a_link_on_the_old_host_is_named_as_rewritten_in_the_run_s_first_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    monkeypatch.setenv("XSOAR_TEST_LINK", "https://download.demisto.works/download-params/?token=s3cret")
    fleet = ScriptedFleet({"m1": "6.11.0", "h1": "6.11.0"})
    events: list[Event] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append(event)

    request = RunRequest(target="6.12", yes=True, ignore_preflight_errors="all")
    with Session(inventory, tmp_path / "state", shells=fleet.shell) as session:
        run_upgrade(session, request, Sink(), confirm=lambda plan: True)
    first = events[0]
    assert (
        first.kind == "warning"
        and "download.demisto.works is rewritten to download.demisto.com" in first.message
    )
    assert all("s3cret" not in e.message for e in events)
