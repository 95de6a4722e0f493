"""How long the night takes: minutes per step, downtime per group, the run's timeline, degraded windows."""

from __future__ import annotations

import itertools

from tests.inventories import build, forty_groups
from tests.inventories import dr_group as dr
from tests.inventories import ha_group as ha
from tests.inventories import single_group as single
from tests.unit.planning import plan
from xsoar_mt.estimate import (
    DEFAULT_MINUTES,
    PREPARE_PARALLEL,
    Durations,
    estimate,
    hours_and_minutes,
    schedule,
    timeline,
)
from xsoar_mt.plan import Phase, Plan, Scope

# The generated inventories give install 15 and start 5; stop 1 and healthy 5 are the defaults.
DURATIONS = Durations.of({"install": 15, "start": 5})


def phase(p: Plan, phase_id: str) -> Phase:
    return next(ph for ph in p.phases if ph.id == phase_id)


def test_durations_the_inventory_leaves_out_take_the_documented_defaults() -> None:
    durations = Durations.of({"install": 30})
    assert durations.minutes == {**DEFAULT_MINUTES, "install": 30}
    assert durations.given == {"install"}


def test_a_single_server_is_down_for_its_whole_phase() -> None:
    p = plan(build("bolt", single("main", "6.11"), []))
    assert DURATIONS.downtime(phase(p, "main@6.12")) == 1 + 15 + 5 + 5


def test_a_dr_pair_is_down_until_its_primary_is_healthy_again() -> None:
    p = plan(build("bolt", single("main", "6.12"), [dr("emea", "6.11")]))
    emea = phase(p, "emea@6.12")
    assert DURATIONS.downtime(emea) == DURATIONS.phase(emea) == 2 * 1 + 2 * (15 + 5 + 5)


def test_an_ha_group_serves_again_once_its_first_server_is_healthy() -> None:
    p = plan(build("elasticsearch", single("main", "6.12"), [ha("g", "6.11", "6.11", "6.11")]))
    group = phase(p, "g@6.12")
    assert DURATIONS.downtime(group) == 1 + 15 + 5 + 5  # the other two install while the first serves
    assert DURATIONS.phase(group) == 1 + 2 * (15 + 5 + 5)


def test_schedule_gives_each_job_to_the_first_free_lane_in_order() -> None:
    assert schedule([10, 10, 10], 2) == [(0, 10), (0, 10), (10, 20)]
    assert schedule([5, 1, 1], 1) == [(0, 5), (5, 6), (6, 7)]


def test_prepare_steps_run_sixteen_at_once_and_host_groups_one_after_another() -> None:
    p = plan(build("bolt", single("main", "6.12"), [single(f"h{i}", "6.11") for i in range(20)]))
    spans = timeline(p.phases, DURATIONS)
    prepare = spans[0]
    steps = len(prepare.phase.steps)  # a backup and a fetch per host: 40 steps of 10 or 5 minutes
    assert steps == 40 and PREPARE_PARALLEL == 16
    assert prepare.end == 25  # 20 backups take two rounds of 10 (16 + 4); the fetches fill in beside them
    hosts = [s for s in spans if s.phase.group]
    assert all(b.start == a.end for a, b in itertools.pairwise(hosts))
    assert spans[-1].phase.id == "validate" and spans[-1].start == hosts[-1].end


def test_the_estimate_counts_the_same_prepare_width_as_the_run() -> None:
    from xsoar_mt.engine import RunOptions

    assert RunOptions().prepare_parallel == PREPARE_PARALLEL


def test_parallel_host_groups_shorten_the_night_but_not_main() -> None:
    p = plan(build("bolt", single("main", "6.11"), [single(f"h{i}", "6.11") for i in range(4)]))
    one, two = estimate(p, {}, parallel=1), estimate(p, {}, parallel=2)
    per_host = 1 + 15 + 1 + 5
    assert one.minutes - two.minutes == 2 * per_host
    assert one.span("main@6.12") == two.span("main@6.12")


def test_hosts_lag_main_from_its_upgrade_until_the_last_host_group_of_the_hop() -> None:
    p = plan(build("bolt", single("main", "6.10"), [single("a", "6.10"), dr("b", "6.10")]))
    timing = estimate(p, {"install": 15, "start": 5})
    assert [w.release for w in timing.windows] == ["6.11", "6.12"]
    first = timing.windows[0]
    assert first.start == timing.span("main@6.11").start
    assert first.end == timing.span("b@6.11").end
    assert first.host_groups == 2


def test_hosts_left_out_of_the_scope_lag_after_the_plan_too() -> None:
    p = plan(build("bolt", single("main", "6.10"), [single("a", "6.10")]), "6.11", Scope(groups=()))
    (window,) = estimate(p, {}).windows
    assert window.end is None and window.minutes is None


def test_hosts_that_already_lag_main_do_so_from_the_start_of_the_run() -> None:
    p = plan(build("bolt", single("main", "6.11"), [single("a", "6.10"), single("b", "6.10")]), "6.11")
    (window,) = estimate(p, {}).windows
    assert window.start == 0 and window.end == estimate(p, {}).span("b@6.11").end


def test_a_plan_where_no_host_lags_has_no_degraded_window() -> None:
    p = plan(build("bolt", single("main", "6.11"), []))
    assert estimate(p, {}).windows == ()


def test_the_forty_group_night_takes_each_group_in_turn() -> None:
    inventory = forty_groups()
    p = plan(inventory)
    timing = estimate(p, inventory.durations)
    assert p.step_count == 621
    # from main's upgrade on: main (DR, 52 min), then 20 singles (26 min) and 20 DR pairs (52 min)
    assert timing.windows[0].minutes == 52 + 20 * 26 + 20 * 52


def test_clock_reads_in_hours_and_minutes() -> None:
    assert hours_and_minutes(40) == "40 min"
    assert hours_and_minutes(125.4) == "2 h 05 min"
