"""What `run_upgrade` leaves open on this machine once a run is over (scripted servers: their survey
reports no version, so the inventory gives it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import inventories as make
from tests.unit.scripted_servers import ScriptedFleet
from xsoar_mt.events import Event
from xsoar_mt.run import RunRequest, ShellPool, run_upgrade

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
    monkeypatch.setattr("xsoar_mt.run.ssh_pool", lambda *args, **kwargs: ShellPool(fleet.shell))
    events: list[Event] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append(event)

    request = RunRequest(inventory, target="6.12", state_dir=tmp_path / "state", yes=True,
                         ignore_preflight_errors="all")  # fmt: skip
    outcome = run_upgrade(request, Sink(), prompt=None, confirm=lambda plan: True)
    assert outcome.report is not None and outcome.report.outcome == ("failed" if fails else "succeeded")
    assert outcome.run_dir is not None and (outcome.run_dir / "journal.jsonl").exists()
    assert _open_journals(tmp_path) == []
