"""The executor's control flow against scripted servers: order, failure, skew, interrupts, reconnects."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests import inventories as make
from tests.unit.engine_setup import FAST, INVENTORY, LINK, Collected, setup_run
from tests.unit.scripted_servers import ScriptedFleet
from xsoar_mt.engine import Executor, RunOptions, RunSecrets, ServerState
from xsoar_mt.events import Fanout
from xsoar_mt.inventory import parse_inventory
from xsoar_mt.journal import RunDir
from xsoar_mt.observed import resolve
from xsoar_mt.plan import Action
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import Version
from xsoar_mt.remote import ConnectionLost, Result


def test_run_installs_every_server_in_the_plans_order() -> None:
    _, fleet, executor, _ = setup_run()
    report = executor.execute()
    assert report.outcome == "succeeded"
    assert fleet.installs() == ["m2", "m1", "h1", "h2"]
    assert {str(fleet.version(n)) for n in fleet.servers} == {"6.11.0"}


def test_a_successful_run_recaps_every_server_ok_with_its_last_journaled_step() -> None:
    _, _, executor, sink = setup_run()
    report = executor.execute()
    assert report.outcome == "succeeded"
    assert {n: s.outcome for n, s in report.servers.items()} == dict.fromkeys(("m1", "m2", "h1", "h2"), "ok")
    for name, state in report.servers.items():  # a validation step is a step like any other
        (last, *_) = [e.step for e in reversed(sink.kinds("step-finished")) if name in e.servers]
        assert state.last_step == last


def test_two_hop_run_alternates_main_and_hosts() -> None:
    _, fleet, executor, _ = setup_run(target="6.12")
    assert executor.execute().outcome == "succeeded"
    begins = [(n, v) for n, e, v in fleet.events if e == "install-begin"]
    assert begins == [
        ("m2", "6.10.0"), ("m1", "6.10.0"), ("h1", "6.10.0"), ("h2", "6.10.0"),
        ("m2", "6.11.0"), ("m1", "6.11.0"), ("h1", "6.11.0"), ("h2", "6.11.0"),
    ]  # fmt: skip


def test_download_link_goes_on_stdin_normalised_and_never_into_a_command() -> None:
    _, fleet, executor, _ = setup_run()
    executor.execute()
    fetches = [(c, s) for _, c, s in fleet.calls if "read -r link" in c]
    assert fetches
    for command, stdin in fetches:
        assert "s3cr3t-token" not in command
        assert stdin is not None and "download.demisto.com" in stdin and "downloadName=6_11_latest" in stdin


def test_failed_install_starts_nothing_new_and_reports_the_stopped_server() -> None:
    _, fleet, executor, _ = setup_run()
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
    _, fleet, executor, _ = setup_run()
    # The plan was made from the inventory's 6.10, but the run observed h2 on 6.9: main's first install
    # would put h2 two releases behind, so it is refused before anything is installed.
    executor.state["h2"] = ServerState(replace(executor.state["h2"].view, version=Version.parse("6.9.0")))
    report = executor.execute()
    assert report.outcome == "failed"
    assert "main@6.11/install/m2" in report.failures[0]
    assert "h2 runs 6.9, 2 releases behind main (6.11)" in report.failures[0]
    assert fleet.installs() == []


def test_first_interrupt_finishes_the_group_under_way_and_starts_no_other() -> None:
    _, fleet, executor, _ = setup_run()

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
    assert report.servers["h1"].outcome == "prepared"  # its backup finished: never "not started"
    assert (report.servers["h1"].last_step or "").startswith("prepare/")


def test_second_interrupt_stops_waiting_for_the_installer() -> None:
    _, fleet, executor, _ = setup_run()

    def interrupt_twice(server: str, command: str) -> None:
        if server == "m2" and "nohup setsid" in command:
            executor.request_stop()
            executor.request_stop()

    fleet.hooks.append(interrupt_twice)
    report = executor.execute()
    assert report.outcome == "interrupted" and report.exit_code == 130
    assert "second interrupt" in report.failures[0]
    assert str(fleet.version("m2")) == "6.10.0"  # not followed: the installer is left to finish on its own


def test_dropped_connection_while_installing_reconnects_and_the_install_completes() -> None:
    _, fleet, executor, sink = setup_run()
    fleet.servers["m2"].drop_on_poll = 2
    report = executor.execute()
    assert report.outcome == "succeeded"
    assert any("reconnected" in e.message for e in sink.kinds("warning"))
    assert fleet.installs().count("m2") == 1


def test_health_gate_waits_until_the_server_answers_200() -> None:
    _, fleet, executor, _ = setup_run()
    fleet.servers["m2"].unhealthy_polls = 3
    assert executor.execute().outcome == "succeeded"
    health_calls = [c for n, c, _ in fleet.calls if n == "m2" and "http_code" in c and "/health" in c]
    assert len(health_calls) >= 4


def test_health_gate_fails_after_its_timeout() -> None:
    _, fleet, executor, _ = setup_run()
    fleet.servers["m2"].unhealthy_polls = 10**6
    report = executor.execute()
    assert report.outcome == "failed"
    assert "not healthy after" in report.failures[0]
    assert "m1" not in fleet.installs()  # the primary is never installed while the secondary is unhealthy


def test_parallel_host_groups_all_finish_and_main_goes_first() -> None:
    _, fleet, executor, _ = setup_run(options=RunOptions(parallel=4, poll_min=0, poll_max=0))
    assert executor.execute().outcome == "succeeded"
    installs = fleet.installs()
    assert installs[:2] == ["m2", "m1"]
    assert sorted(installs[2:]) == ["h1", "h2"]


def test_run_streams_installer_output_to_a_private_per_server_log(tmp_path: Path) -> None:
    run_dir = RunDir.create(tmp_path, "run-1")
    _, _, executor, _ = setup_run(run_dir=run_dir)
    executor.execute()
    log = run_dir.path / "logs" / "h1.log"
    assert "installing..." in log.read_text()
    assert (log.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("action", [Action.STOP, Action.INSTALL])
def test_every_step_start_and_outcome_is_reported(action: Action) -> None:
    _, _, executor, sink = setup_run()
    executor.execute()
    started = {e.step for e in sink.kinds("step-started")}
    finished = {e.step for e in sink.kinds("step-finished")}
    assert started == finished
    assert any(action.value in (s or "") for s in started)


# -- recovery on the worst night (issue 12) ----------------------------------------------------------


def test_the_signal_handler_only_counts_so_it_cannot_deadlock_on_a_lock_the_run_holds() -> None:
    _, _, executor, _ = setup_run()
    held = threading.Lock()
    executor.events = Fanout(Collected())
    with held, executor.events._lock:  # the run is in the middle of reporting an event
        executor.request_stop()  # what SIGINT's handler calls: returns at once, reports nothing
    assert executor.stopping and not executor.abandon


def test_an_unexpected_error_inside_a_step_is_that_steps_failure_with_a_recap() -> None:
    _, fleet, executor, sink = setup_run()

    def broken(server: str, command: str) -> None:
        if server == "h1" and "service demisto stop" in command:
            raise ValueError("a bug")

    fleet.hooks.append(broken)
    report = executor.execute()
    assert report.outcome == "failed" and report.exit_code == 6
    assert "unexpected error: ValueError: a bug" in report.failures[0]
    assert report.servers["h1"].outcome == "failed"
    assert sink.kinds("run-finished")[0].data["outcome"] == "failed"
    assert "h2" not in fleet.installs()


def test_a_journal_that_cannot_be_written_stops_the_run_with_a_recap(tmp_path: Path) -> None:
    from xsoar_mt.journal import Journal, JournalSink

    _, fleet, executor, sink = setup_run()
    journal = Journal(tmp_path / "journal.jsonl")
    full = [0]

    def append(record: object) -> None:
        full[0] += 1
        if full[0] > 12:
            raise OSError(28, "No space left on device")

    journal.append = append  # type: ignore[method-assign]  # a disk that fills up mid-run
    executor.events = Fanout(sink, JournalSink(journal, executor.fail_run))
    report = executor.execute()
    assert report.outcome == "failed"
    assert any("journal" in f and "No space left" in f for f in report.failures)
    assert sink.kinds("run-finished")  # the other sinks still hear the end
    assert len(fleet.installs()) < 4  # nothing new was started once the record was lost


def drop_first_stop_on(target: str) -> Callable[[str, str], None]:
    """A fleet hook: the connection to `target` drops once, as its stop command is sent."""
    drops = [1]

    def drop_once(server: str, command: str) -> None:
        if server == target and command.endswith("service demisto stop") and drops[0]:
            drops[0] -= 1
            raise ConnectionLost(server, "connection reset by peer")

    return drop_once


def test_a_dropped_connection_during_stop_is_reconnected_and_the_stop_run_again_then_confirmed() -> None:
    _, fleet, executor, _ = setup_run()
    fleet.hooks.append(drop_first_stop_on("h1"))
    report = executor.execute()
    assert report.outcome == "succeeded"
    stops = [c for n, c, _ in fleet.calls if n == "h1" and c.endswith("service demisto stop")]
    assert len(stops) == 2
    assert [c for n, c, _ in fleet.calls if n == "h1" and c.endswith("service demisto status")]  # confirmed


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("- 0 b1 b1\n", "is gone and left no exit code"),
        ("- 0 b2 b1\n", "the server restarted while the installer"),
    ],
)
def test_an_installer_that_vanishes_fails_its_step_saying_what_was_seen(answer: str, said: str) -> None:
    _, fleet, executor, _ = setup_run()
    original = fleet.answer

    def vanished(name: str, command: str, stdin: str | None) -> Result:
        if name == "m2" and "xm_c=$(cat" in command:
            fleet.calls.append((name, command, stdin))
            return Result(name, command, 0, answer)
        return original(name, command, stdin)

    fleet.answer = vanished  # type: ignore[method-assign]  # this server's installer disappears
    report = executor.execute()
    assert report.outcome == "failed"
    assert said in report.failures[0]
    assert report.servers["m2"].version is None and "installer for 6.11" in (
        report.servers["m2"].view.unknown or ""
    )


def test_an_installer_running_past_its_limit_fails_the_step_and_is_left_running() -> None:
    inventory, fleet, executor, _ = setup_run()
    executor.inv = replace(inventory, installer=replace(inventory.installer, max_minutes=0.0001))
    fleet.servers["m2"].polls_left = 10**6
    original = fleet.answer

    def slow(name: str, command: str, stdin: str | None) -> Result:
        if "nohup setsid" in command:
            result = original(name, command, stdin)
            fleet.servers[name].polls_left = 10**6
            return result
        return original(name, command, stdin)

    fleet.answer = slow  # type: ignore[method-assign]
    report = executor.execute()
    assert report.outcome == "failed"
    assert "still runs after" in report.failures[0] and "left running" in report.failures[0]


def test_an_install_that_brings_up_another_release_than_planned_fails_after_the_health_gate() -> None:
    _, fleet, executor, _ = setup_run()
    original = fleet.answer

    def wrong(name: str, command: str, stdin: str | None) -> Result:
        result = original(name, command, stdin)
        if name == "m2" and "/about" in command and result.ok:
            return Result(name, command, 0, '{"demistoVersion": "6.10.0"}')
        return result

    fleet.answer = wrong  # type: ignore[method-assign]
    report = executor.execute()
    assert report.outcome == "failed"
    assert "runs 6.10.0, not 6.11 as planned" in report.failures[0]
    assert fleet.installs() == ["m2"]  # the primary was not installed after it


def test_a_failure_in_one_lane_lets_the_group_under_way_in_another_finish() -> None:
    _, fleet, executor, _ = setup_run(options=RunOptions(parallel=2, poll_min=0, poll_max=0))
    fleet.servers["h1"].install_fails = True
    h2_began = threading.Event()

    def h1_fails_once_h2_is_under_way(server: str, command: str) -> None:
        if "nohup setsid" in command and server == "h2":
            h2_began.set()
        if "nohup setsid" in command and server == "h1":
            assert h2_began.wait(5)

    fleet.hooks.append(h1_fails_once_h2_is_under_way)
    report = executor.execute()
    assert report.outcome == "failed"
    assert str(fleet.version("h2")) == "6.11.0" and fleet.servers["h2"].running  # not left stopped
    assert report.servers["h2"].outcome == "ok"


def test_a_stop_that_fails_in_an_ha_group_starts_the_members_it_stopped_again() -> None:
    inventory = parse_inventory(HA_INVENTORY, "inv.yaml")
    fleet = ScriptedFleet({s.name: "6.10.0" for s in inventory.servers})

    def refuse_stop(server: str, command: str) -> None:
        if server == "g2" and command.endswith("service demisto stop"):
            raise ConnectionLost(server, "gone")  # and it stays gone: the stop cannot be confirmed

    fleet.hooks.append(refuse_stop)
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    shells = {s.name: fleet.shell(s.name) for s in inventory.servers}
    executor = Executor(inventory, plan, shells.__getitem__, Collected(), resolve(inventory, {}, {}),
                        RunSecrets(link=LINK), RunOptions(poll_min=0, poll_max=0, reconnect_timeout=0))  # fmt: skip
    report = executor.execute()
    assert report.outcome == "failed"
    assert fleet.servers["g1"].running and fleet.servers["g3"].running  # started again on 6.10
    assert fleet.installs() == ["m1"]


def test_per_server_outcomes_do_not_blame_a_sibling_for_a_failure_in_a_shared_step() -> None:
    inventory = parse_inventory(HA_INVENTORY, "inv.yaml")
    fleet = ScriptedFleet({s.name: "6.10.0" for s in inventory.servers})
    fleet.servers["g3"].install_fails = True
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    shells = {s.name: fleet.shell(s.name) for s in inventory.servers}
    executor = Executor(inventory, plan, shells.__getitem__, Collected(), resolve(inventory, {}, {}),
                        RunSecrets(link=LINK), FAST)  # fmt: skip
    report = executor.execute()
    assert report.servers["g3"].outcome == "failed"
    assert report.servers["g2"].outcome == "incomplete"  # its install (shared with g3) went fine
    assert str(report.servers["g2"].version) == "6.11.0"


HA_INVENTORY = make.as_yaml(
    make.inventory(
        make.main(make.single(make.server("m1", "127.0.0.1", "6.10.0"))),
        [make.host("g", make.ha(*(make.server(f"g{i}", f"127.0.1.{i}", "6.10.0") for i in (1, 2, 3))))],
        name="t",
        deployment={"database": "elasticsearch", "elasticsearch_url": "https://127.0.0.1:9200"},
        installer={"link": {"env": "XSOAR_TEST_LINK"}},
        health={"timeout": 1, "interval": 0.01, "max_interval": 0.01},
    )
)


def test_the_status_check_after_a_dropped_stop_fills_the_template_like_every_other_command() -> None:
    # `{{` and `}}` are the template's literal braces: the server gets `{}`, as from the plan's own steps
    text = INVENTORY.replace(
        "installer:", "commands: {status: 'true {{}} && sudo service demisto status'}\ninstaller:"
    )
    inventory = parse_inventory(text, "inv.yaml")
    fleet = ScriptedFleet({s.name: "6.10.0" for s in inventory.servers})
    fleet.hooks.append(drop_first_stop_on("h1"))
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    shells = {s.name: fleet.shell(s.name) for s in inventory.servers}
    executor = Executor(inventory, plan, shells.__getitem__, Collected(), resolve(inventory, {}, {}),
                        RunSecrets(link=LINK), FAST)  # fmt: skip
    assert executor.execute().outcome == "succeeded"
    checks = [c for n, c, _ in fleet.calls if n == "h1" and c.endswith("service demisto status")]
    assert checks == ["true {} && sudo service demisto status"]


def answering_launch_on(server: str, stdout: str, fleet: ScriptedFleet) -> None:
    """`server`'s installer launch answers `stdout` (after starting the installer as usual)."""
    original = fleet.answer

    def answer(name: str, command: str, stdin: str | None) -> Result:
        result = original(name, command, stdin)
        if name == server and "nohup setsid" in command:
            return Result(name, command, result.exit_code, stdout)
        return result

    fleet.answer = answer  # type: ignore[method-assign]


def test_a_launch_word_printed_before_the_answer_is_not_taken_for_it() -> None:
    _, fleet, executor, sink = setup_run()
    # a shell start-up file echoes text holding every word the launch script answers with; its last line
    # is the script's own STARTED: the installer started, nothing was attached to or found gone
    answering_launch_on("h1", "motd: ATTACHED VANISHED FINISHED\nATTACHED\nSTARTED\n", fleet)
    report = executor.execute()
    assert report.outcome == "succeeded"
    assert not [e for e in sink.kinds("warning") if "already running" in e.message]


@pytest.mark.parametrize("stdout", ["", "STARTED now\n", "started\n", "VANISHED\nsomething else\n"])
def test_a_launch_answer_that_is_not_one_of_the_scripts_words_fails_the_step_naming_it(stdout: str) -> None:
    _, fleet, executor, _ = setup_run()
    answering_launch_on("h1", stdout, fleet)
    report = executor.execute()
    assert report.outcome == "failed"
    assert "h1" in report.failures[0] and "no answer xsoar-mt knows" in report.failures[0]
    assert "h2" not in fleet.installs()
