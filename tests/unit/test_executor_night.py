"""The executor on the upgrade night, against scripted servers: waves, the window, measured durations."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import inventories as make
from tests.unit.engine_setup import FAST, LINK, Collected
from tests.unit.scripted_servers import ScriptedFleet
from xsoar_mt.engine import Executor, RunOptions, RunReport, RunSecrets
from xsoar_mt.errors import UsageError
from xsoar_mt.estimate import Durations
from xsoar_mt.events import Event
from xsoar_mt.inventory import Inventory, parse_inventory
from xsoar_mt.journal import Journal, RunDir
from xsoar_mt.known import KnownState
from xsoar_mt.observed import resolve
from xsoar_mt.plan import Phase, Waves
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.usecases.run import RunRequest, _intent
from xsoar_mt.waves import WaveSpec
from xsoar_mt.window import WindowGuard

INVENTORY = make.as_yaml(
    make.inventory(
        make.main(make.single(make.server("m", "127.0.0.1", "6.10.0")), ["ops"]),
        [
            make.host(f"g{i}", make.single(make.server(f"h{i}", f"127.0.1.{i}", "6.10.0")), [tenant])
            for i, tenant in ((1, "acme"), (2, "beta"), (3, "gamma"))
        ],
        name="night",
        installer={"link": {"env": "XSOAR_TEST_LINK"}},
        health={"timeout": 1, "interval": 0.01, "max_interval": 0.01},
        durations={
            "backup": 0,
            "fetch": 0,
            "stop": 0,
            "install": 10,
            "start": 0,
            "healthy": 0,
            "validate": 0,
        },
    )
)


def night(
    window_minutes: float | None = None,
    options: RunOptions = FAST,
    known: KnownState | None = None,
    learned: dict[str, dict[str, float]] | None = None,
) -> tuple[Inventory, ScriptedFleet, Executor, Collected]:
    """Waves 1,100%. The clock moves ten minutes with every installer started, and at no other time."""
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    fleet = ScriptedFleet({s.name: "6.10.0" for s in inventory.servers})
    plan = plan_upgrade(inventory, inventory.versions(), "6.11", waves=WaveSpec.parse("1,100%"))

    def clock() -> float:
        return 600.0 * len(fleet.installs())

    window = None
    if window_minutes is not None:
        window = WindowGuard(window_minutes * 60, Durations.of(inventory.durations, learned), clock)
    sink = Collected()
    shells = {s.name: fleet.shell(s.name) for s in inventory.servers}
    executor = Executor(inventory, plan, shells.__getitem__, sink, resolve(inventory, {}, {}),
                        RunSecrets(link=LINK), options, known=known, run_id="r1", window=window,
                        clock=clock)  # fmt: skip
    return inventory, fleet, executor, sink


def position(events: list[Event], kind: str, step_part: str) -> int:
    return next(i for i, e in enumerate(events) if e.kind == kind and step_part in (e.step or ""))


def test_the_next_wave_begins_only_once_the_canary_is_healthy_and_its_tenants_answer() -> None:
    _, _, executor, sink = night()
    report = executor.execute()
    assert report.outcome == "succeeded"
    events = sink.events
    validated = position(events, "step-finished", "validate:wave-1@6.11/")
    assert position(events, "step-finished", "g1@6.11/wait-healthy/") < validated
    assert (
        validated
        < position(events, "step-started", "g2@6.11/")
        < position(events, "step-started", "validate/")
    )
    assert validated < position(events, "step-started", "g3@6.11/")
    assert [e.data["wave"] for e in sink.kinds("wave-started")] == [1, 2]
    assert sink.kinds("wave-started")[1].data["parallel"] == 2  # the whole wave at once


def test_a_wave_s_validation_asks_only_that_wave_s_tenants() -> None:
    _, fleet, executor, _ = night()
    executor.execute()
    asked = [c for _, c, _ in fleet.calls if "for t in" in c]
    wave_check, final_check = asked
    assert "acc_acme" in wave_check and "acc_beta" not in wave_check and "acc_ops" not in wave_check
    assert all(f"acc_{t}" in final_check for t in ("ops", "acme", "beta", "gamma"))


def test_a_window_that_closes_starts_no_more_groups_and_leaves_nothing_stopped() -> None:
    # main and the canary take ten minutes each: 20 of 25; wave 2 would end at 30
    _, fleet, executor, sink = night(window_minutes=25)
    report = executor.execute()
    assert report.outcome == "window-closed" and report.exit_code == 11
    assert fleet.installs() == ["m", "h1"]
    assert all(server.running for server in fleet.servers.values())
    assert report.window is not None
    assert [p.id for p in report.window.done] == ["main@6.11", "g1@6.11"]
    assert [p.id for p in report.window.left] == ["g2@6.11", "g3@6.11"]
    assert report.window.degraded_functions  # g2 and g3 lag main until the next window
    (closed,) = sink.kinds("window-closed")
    assert closed.data["phase"] in ("g2@6.11", "g3@6.11")
    assert [report.servers[n].outcome for n in ("h2", "h3")] == [
        "prepared",
        "prepared",
    ]  # backed up, not stopped


def test_in_a_wave_started_at_once_the_groups_before_the_one_that_does_not_fit_still_start() -> None:
    # wave 2 (g2, g3) starts at 20 minutes of 35: g2 takes 10, but h3 took 100 to install last time
    _, fleet, executor, _ = night(window_minutes=35, learned={"h3": {"install": 100}})
    run_lane = executor._run_lane

    def slow_g2(phase: Phase, *rest: object) -> None:  # were each lane to ask for itself, g3 would ask first
        if phase.id == "g2@6.11":
            time.sleep(0.3)
        run_lane(phase, *rest)  # type: ignore[arg-type]  # the lane's own arguments, passed through

    executor._run_lane = slow_g2  # type: ignore[method-assign]  # a lane that is slow to start
    report = executor.execute()
    assert report.outcome == "window-closed"
    assert fleet.installs() == ["m", "h1", "h2"]
    assert report.window is not None and [p.id for p in report.window.left] == ["g3@6.11"]
    assert all(server.running for server in fleet.servers.values())


def test_main_is_never_started_when_its_estimate_does_not_fit() -> None:
    _, fleet, executor, _ = night(window_minutes=9)
    report = executor.execute()
    assert report.outcome == "window-closed"
    assert fleet.installs() == [] and not [e for e in fleet.events if e[1] == "stop"]
    assert not [c for _, c, _ in fleet.calls if "tar -czf" in c]  # not even the backups
    assert report.window is not None and report.window.done == ()


def test_what_each_server_s_steps_took_is_kept_in_the_local_record(tmp_path: Path) -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    known = KnownState(tmp_path, inventory)
    _, _, executor, _ = night(known=known)
    report: RunReport = executor.execute()
    assert report.outcome == "succeeded"
    learned = KnownState(tmp_path, inventory).durations()
    assert set(learned) == {"m", "h1", "h2", "h3"}
    assert learned["h1"]["install"] == 10  # ten minutes on the run's clock
    assert set(learned["h1"]) == {"stop", "install", "start", "healthy"}


# -- a resume keeps the waves ---------------------------------------------------------------------


def recorded(tmp_path: Path, waves: dict[str, object] | None) -> tuple[Inventory, RunDir]:
    inventory = parse_inventory(INVENTORY, str(tmp_path / "inventory.yaml"))
    run_dir = RunDir.create(tmp_path / "state", "20261201-010000-abcd")
    intent: dict[str, object] = {
        "kind": "run-intent",
        "target": "6.11",
        "scope": {"main": True, "groups": None},
    }
    if waves is not None:
        intent["waves"] = waves
    Journal(run_dir.journal_path).append(intent)
    return inventory, run_dir


def test_a_resume_plans_with_the_waves_its_journal_recorded(tmp_path: Path) -> None:
    inventory, run_dir = recorded(tmp_path, {"spec": "1,100%", "groups": {"g1": 1, "g2": 2, "g3": 2}})
    request = RunRequest(resume=run_dir.run_id)
    assert _intent(request, run_dir, inventory, None).waves == Waves("1,100%", {"g1": 1, "g2": 2, "g3": 2})


@pytest.mark.parametrize("journal_waves", [None, {"spec": "2", "groups": {"g1": 1, "g2": 1, "g3": 2}}])
def test_other_waves_on_a_resume_are_a_usage_error(
    tmp_path: Path, journal_waves: dict[str, object] | None
) -> None:
    inventory, run_dir = recorded(tmp_path, journal_waves)
    request = RunRequest(resume=run_dir.run_id, waves=WaveSpec.parse("1,100%"))
    with pytest.raises(
        UsageError, match=r"^--waves 1,100%: run 20261201-010000-abcd started .*a resume keeps them"
    ):
        _intent(request, run_dir, inventory, None)


def test_waves_with_a_saved_plan_are_a_usage_error(tmp_path: Path) -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    saved = plan_upgrade(inventory, inventory.versions(), "6.11")
    request = RunRequest(waves=WaveSpec.parse("1"))
    with pytest.raises(UsageError, match=r"^--waves goes with --to"):
        _intent(request, None, inventory, saved)
