"""The executor's control flow against scripted servers: order, failure, skew, interrupts, reconnects."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.scripted_servers import ScriptedFleet
from xsoar_mt.events import Event
from xsoar_mt.executor import Executor, RunOptions, RunSecrets, ServerState
from xsoar_mt.inventory import Inventory, parse_inventory
from xsoar_mt.journal import RunDir
from xsoar_mt.observed import resolve
from xsoar_mt.plan import Action
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import Version

INVENTORY = """
inventory_version: 1
deployment: {name: t}
installer:
  link: {env: XSOAR_TEST_LINK}
health: {timeout: 1, interval: 0.01, max_interval: 0.01}
main:
  dr:
    primary: {name: m1, address: 127.0.0.1, version: 6.10.0}
    secondary: {name: m2, address: 127.0.0.2, version: 6.10.0}
hosts:
  - name: g1
    server: {name: h1, address: 127.0.1.1, version: 6.10.0}
    tenants: [{name: acme}]
  - name: g2
    server: {name: h2, address: 127.0.1.2, version: 6.10.0}
"""

LINK = "https://download.demisto.works/download-params/?token=s3cr3t-token&email=a@b.c"
FAST = RunOptions(poll_min=0, poll_max=0)


class Collected:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


def _setup(
    target: str = "6.11", options: RunOptions = FAST, run_dir: RunDir | None = None
) -> tuple[Inventory, ScriptedFleet, Executor, Collected]:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    fleet = ScriptedFleet({s.name: "6.10.0" for s in inventory.servers})
    plan = plan_upgrade(inventory, inventory.versions(), target)
    observed = resolve(inventory, {}, {})
    sink = Collected()
    shells = {s.name: fleet.shell(s.name) for s in inventory.servers}
    executor = Executor(
        inventory, plan, shells.__getitem__, sink, observed, RunSecrets(link=LINK), options, run_dir
    )
    return inventory, fleet, executor, sink


def test_run_installs_every_server_in_the_plans_order() -> None:
    _, fleet, executor, _ = _setup()
    report = executor.execute()
    assert report.outcome == "succeeded"
    assert fleet.installs() == ["m2", "m1", "h1", "h2"]
    assert {str(fleet.version(n)) for n in fleet.servers} == {"6.11.0"}


def test_two_hop_run_alternates_main_and_hosts() -> None:
    _, fleet, executor, _ = _setup(target="6.12")
    assert executor.execute().outcome == "succeeded"
    begins = [(n, v) for n, e, v in fleet.events if e == "install-begin"]
    assert begins == [
        ("m2", "6.10.0"), ("m1", "6.10.0"), ("h1", "6.10.0"), ("h2", "6.10.0"),
        ("m2", "6.11.0"), ("m1", "6.11.0"), ("h1", "6.11.0"), ("h2", "6.11.0"),
    ]  # fmt: skip


def test_download_link_goes_on_stdin_normalised_and_never_into_a_command() -> None:
    _, fleet, executor, _ = _setup()
    executor.execute()
    fetches = [(c, s) for _, c, s in fleet.calls if "read -r link" in c]
    assert fetches
    for command, stdin in fetches:
        assert "s3cr3t-token" not in command
        assert stdin is not None and "download.demisto.com" in stdin and "downloadName=6_11_latest" in stdin


def test_failed_install_starts_nothing_new_and_reports_the_stopped_server() -> None:
    _, fleet, executor, _ = _setup()
    fleet.servers["h1"].install_fails = True
    report = executor.execute()
    assert report.outcome == "failed"
    assert report.exit_code == 6
    assert "disk full" in report.failures[0]
    assert "h2" not in fleet.installs()
    assert report.servers["h1"].running is False
    assert report.servers["h1"].outcome == "failed"
    assert str(report.servers["m1"].version) == "6.11.0"


def test_install_is_refused_when_observed_versions_would_leave_the_fleet_unsupported() -> None:
    _, fleet, executor, _ = _setup()
    # The plan was made from the inventory's 6.10, but the run observed h2 on 6.9: main's first install
    # would put h2 two releases behind, so it is refused before anything is installed.
    executor.state["h2"] = ServerState(replace(executor.state["h2"].view, version=Version.parse("6.9.0")))
    report = executor.execute()
    assert report.outcome == "failed"
    assert "main@6.11/install/m2" in report.failures[0]
    assert "h2 runs 6.9, 2 releases behind main (6.11)" in report.failures[0]
    assert fleet.installs() == []


def test_first_interrupt_finishes_the_group_under_way_and_starts_no_other() -> None:
    _, fleet, executor, _ = _setup()

    def interrupt_during_first_main_install(server: str, command: str) -> None:
        if server == "m2" and "nohup setsid" in command:
            executor.request_stop()

    fleet.hooks.append(interrupt_during_first_main_install)
    report = executor.execute()
    assert report.outcome == "interrupted"
    assert report.exit_code == 130
    assert fleet.installs() == ["m2", "m1"]  # main's DR pair is finished, so it is not left stopped
    assert {str(fleet.version(n)) for n in ("m1", "m2")} == {"6.11.0"}
    assert all(fleet.servers[n].running for n in fleet.servers)
    assert report.servers["h1"].outcome == "not started"


def test_second_interrupt_stops_waiting_for_the_installer() -> None:
    _, fleet, executor, _ = _setup()

    def interrupt_twice(server: str, command: str) -> None:
        if server == "m2" and "nohup setsid" in command:
            executor.request_stop()
            executor.request_stop()

    fleet.hooks.append(interrupt_twice)
    report = executor.execute()
    assert report.outcome == "failed"
    assert "second interrupt" in report.failures[0]
    assert str(fleet.version("m2")) == "6.10.0"  # not followed: the installer is left to finish on its own


def test_dropped_connection_while_installing_reconnects_and_the_install_completes() -> None:
    _, fleet, executor, sink = _setup()
    fleet.servers["m2"].drop_on_poll = 2
    report = executor.execute()
    assert report.outcome == "succeeded"
    assert any("reconnected" in e.message for e in sink.kinds("warning"))
    assert fleet.installs().count("m2") == 1


def test_health_gate_waits_until_the_server_answers_200() -> None:
    _, fleet, executor, _ = _setup()
    fleet.servers["m2"].unhealthy_polls = 3
    assert executor.execute().outcome == "succeeded"
    health_calls = [c for n, c, _ in fleet.calls if n == "m2" and "http_code" in c and "/health" in c]
    assert len(health_calls) >= 4


def test_health_gate_fails_after_its_timeout() -> None:
    _, fleet, executor, _ = _setup()
    fleet.servers["m2"].unhealthy_polls = 10**6
    report = executor.execute()
    assert report.outcome == "failed"
    assert "not healthy after" in report.failures[0]
    assert "m1" not in fleet.installs()  # the primary is never installed while the secondary is unhealthy


def test_parallel_host_groups_all_finish_and_main_goes_first() -> None:
    _, fleet, executor, _ = _setup(options=RunOptions(parallel=4, poll_min=0, poll_max=0))
    assert executor.execute().outcome == "succeeded"
    installs = fleet.installs()
    assert installs[:2] == ["m2", "m1"]
    assert sorted(installs[2:]) == ["h1", "h2"]


def test_run_streams_installer_output_to_a_private_per_server_log(tmp_path: Path) -> None:
    run_dir = RunDir.create(tmp_path, "run-1")
    _, _, executor, _ = _setup(run_dir=run_dir)
    executor.execute()
    log = run_dir.path / "logs" / "h1.log"
    assert "installing..." in log.read_text()
    assert (log.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("action", [Action.STOP, Action.INSTALL])
def test_every_step_start_and_outcome_is_reported(action: Action) -> None:
    _, _, executor, sink = _setup()
    executor.execute()
    started = {e.step for e in sink.kinds("step-started")}
    finished = {e.step for e in sink.kinds("step-finished")}
    assert started == finished
    assert any(action.value in (s or "") for s in started)
