"""Estimates for the upgrade night: waves as barriers, each server's own durations, and tenant impact."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.inventories import build, five
from tests.inventories import dr_group as dr
from tests.inventories import ha_group as ha
from tests.inventories import single_group as single
from tests.unit.planning import Case, cases, plan, plan_or_refusal, waved
from xsoar_mt.cli.plan_text import tenant_impact_csv
from xsoar_mt.estimate import Durations, Span, batches, estimate, tenant_impact
from xsoar_mt.inventory import Inventory
from xsoar_mt.plan import Action, Plan, Scope

# Each host phase of a single server: stop 1 + install 6 + start 1 + healthy 2 = 10 minutes.
TEN = {"backup": 0, "fetch": 0, "stop": 1, "install": 6, "start": 1, "healthy": 2, "validate": 1}


def impact(p: Plan, inventory: Inventory, **kwargs: object) -> dict[str, dict[str, object]]:
    timing = estimate(p, TEN, **kwargs)  # type: ignore[arg-type]  # parallel / learned
    groups = [(g.name, [t.name for t in g.tenants]) for g in inventory.groups]
    return {row.tenant: row.to_dict() for row in tenant_impact(p, groups, timing)}


def test_each_wave_is_a_batch_of_its_own_run_whole_unless_parallel_says_otherwise() -> None:
    p = waved(five(), "1,50%,100%")
    shape = [([ph.id for ph in batch], width) for batch, width in batches(p.phases)]
    assert shape == [
        (["prepare"], 16), (["main@6.12"], 1),
        (["h1@6.12"], 1), (["validate:wave-1@6.12"], 1),
        (["h2@6.12", "h3@6.12"], 2), (["validate:wave-2@6.12"], 1),
        (["h4@6.12", "d5@6.12"], 2), (["validate"], 1),
    ]  # fmt: skip
    assert [w for _, w in batches(p.phases, parallel=1)][4] == 1


def test_without_waves_the_host_groups_of_a_hop_are_one_batch_one_at_a_time() -> None:
    p = plan(five())
    assert [(len(b), w) for b, w in batches(p.phases)] == [(1, 16), (1, 1), (5, 1), (1, 1)]


def test_a_wave_starts_when_the_one_before_is_done_and_validated() -> None:
    p = waved(five(), "1,50%,100%")
    timing = estimate(p, TEN)
    assert (
        timing.span("h2@6.12").start
        == timing.span("h3@6.12").start
        == timing.span("validate:wave-1@6.12").end
    )
    assert timing.span("h4@6.12").start == timing.span("validate:wave-2@6.12").end


def test_a_server_s_own_learned_minutes_replace_the_durations_for_it_alone() -> None:
    p = plan(five())
    plain = estimate(p, TEN)
    learned = estimate(p, TEN, learned={"h2-0": {"install": 26}})
    assert learned.span("h2@6.12").end - learned.span("h2@6.12").start == 30
    assert learned.span("h1@6.12") == plain.span("h1@6.12")


def test_measured_tonight_beats_learned_which_beats_the_others_tonight_then_the_durations() -> None:
    durations = Durations.of({"install": 15}, {"a": {"install": 20}, "b": {"install": 30}})
    tonight = durations.tonight({"a": {"install": 4}, "c": {"install": 6}, "d": {"install": 10}})
    assert tonight.on("a", "install") == 4  # its own, tonight
    assert tonight.on("b", "install") == 30  # its own, learned
    assert tonight.on("e", "install") == 6  # the median of what the others took tonight
    assert tonight.on("e", "stop") == 1  # nobody measured a stop: the default


def test_every_tenant_gets_one_entry_main_s_too_with_its_group_and_wave() -> None:
    inventory = five()
    rows = impact(waved(inventory, "1,50%,100%"), inventory)
    assert list(rows) == ["main-t0", "h1-t0", "h2-t0", "h3-t0", "h4-t0", "d5-t0"]
    assert [(r["group"], r["wave"]) for r in rows.values()] == [
        ("main", None), ("h1", 1), ("h2", 2), ("h3", 2), ("h4", 3), ("d5", 3),
    ]  # fmt: skip


def test_a_tenant_is_down_while_its_group_is_and_main_s_tenants_never_lag() -> None:
    inventory = five()
    p = waved(inventory, "1,50%,100%")
    rows = impact(p, inventory)
    timing = estimate(p, TEN)
    main, h2 = timing.span("main@6.12"), timing.span("h2@6.12")
    assert rows["main-t0"]["windows"] == [
        {
            "kind": "down",
            "hop": "6.12",
            "start_minutes": main.start,
            "end_minutes": main.start + 10,
            "minutes": 10,
        }
    ]
    assert rows["main-t0"]["total_down_minutes"] == 10 and rows["main-t0"]["total_degraded_minutes"] == 0
    # a host's tenant lags main from main's upgrade until its own group goes down, then is down
    degraded, down = rows["h2-t0"]["windows"]  # type: ignore[misc]  # a list of two windows
    assert (degraded["kind"], degraded["start_minutes"], degraded["end_minutes"]) == (
        "degraded",
        main.start,
        h2.start,
    )
    assert (down["kind"], down["start_minutes"], down["end_minutes"]) == ("down", h2.start, h2.start + 10)


def test_a_dr_pair_s_tenant_is_down_while_the_primary_is_and_an_ha_group_s_for_the_group_s_outage() -> None:
    bolt = build("bolt", single("main", "6.12"), [dr("d", "6.11", tenants=1)])
    # DR: stop p (1), stop s (1), install s (6), start s (1), healthy s (2), install p (6), start (1), healthy (2)
    assert impact(plan(bolt), bolt)["d-t0"]["total_down_minutes"] == 20
    elastic = build("elasticsearch", single("main", "6.12"), [ha("g", "6.11", "6.11", "6.11", tenants=1)])
    # HA: all stopped (1), the first installed (6), started (1) and healthy (2): the group serves again
    assert impact(plan(elastic), elastic)["g-t0"]["total_down_minutes"] == 10


def test_a_tenant_of_a_group_left_out_of_scope_lags_main_after_the_plan_too() -> None:
    inventory = build(
        "bolt", single("main", "6.11"), [single("a", "6.11", tenants=1), single("b", "6.11", tenants=1)]
    )
    p = plan(inventory, "6.12", Scope(main=True, groups=("a",)))
    rows = impact(p, inventory)
    assert rows["b-t0"]["total_down_minutes"] == 0 and rows["b-t0"]["total_degraded_minutes"] is None
    assert [(w["kind"], w["end_minutes"]) for w in rows["b-t0"]["windows"]] == [("degraded", None)]  # type: ignore[attr-defined]
    assert rows["a-t0"]["total_degraded_minutes"] == 10  # from main's upgrade (10) until its own starts


def test_two_hops_give_a_tenant_two_separate_outages_never_one_merged_window() -> None:
    inventory = build("bolt", single("main", "6.10"), [single("a", "6.10", tenants=1)])
    p = plan(inventory, "6.12")
    timing = estimate(p, TEN)
    (row,) = [r for r in tenant_impact(p, [("main", []), ("a", ["a-t0"])], timing)]
    downs = row.of("down")
    assert [(w.hop, w.start, w.end) for w in downs] == [
        ("6.11", timing.span("a@6.11").start, timing.span("a@6.11").start + 10),
        ("6.12", timing.span("a@6.12").start, timing.span("a@6.12").start + 10),
    ]
    assert row.total_down == 20
    csv_rows = tenant_impact_csv([row]).splitlines()
    assert csv_rows[0] == "tenant,group,hop,wave,kind,start,end,minutes"
    assert [r.split(",")[2] for r in csv_rows[1:] if ",down," in r] == ["6.11", "6.12"]


def _outages(span: Span, durations: Durations) -> tuple[float, float] | None:
    """When the server that serves the group is stopped in this phase until it is healthy again (None when
    the phase stops nothing), worked out from the steps alone."""
    elapsed, stopped, serving = span.start, None, set[str]()
    for step in span.phase.steps:
        if stopped is None and step.action is Action.STOP:
            stopped, serving = elapsed, set(step.servers)
        elapsed += durations.step(step)
        if stopped is not None and step.action is Action.HEALTHY and serving & set(step.servers):
            return stopped, elapsed
    return None if stopped is None else (stopped, elapsed)


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from([None, 1, 2]))
def test_a_tenant_s_windows_are_real_separate_intervals_in_the_night_adding_up_to_its_totals(
    case: Case, parallel: int | None
) -> None:
    p = plan_or_refusal(case)
    if p is None or p.nothing_to_do:
        return
    timing = estimate(p, TEN, parallel)
    groups = [(g.name, [f"{g.name}-t{i}" for i in range(len(g.tenants) or 1)]) for g in case.inventory.groups]
    for row in tenant_impact(p, groups, timing):
        windows = sorted(row.windows, key=lambda w: w.start)
        for before, after in itertools.pairwise(windows):
            assert before.end is not None and before.end <= after.start, (row.tenant, windows)
        for window in windows:
            assert 0 <= window.start <= timing.minutes
            assert window.end is None or window.start < window.end <= timing.minutes
        assert row.total_down == sum(w.minutes or 0 for w in row.of("down"))
        if all(w.end is not None for w in row.of("degraded")):
            assert row.total_degraded == sum(w.minutes or 0 for w in row.of("degraded"))
        for span in timing.spans:
            if span.phase.group != row.group or (stopped := _outages(span, timing.durations)) is None:
                continue
            assert any(w.start <= stopped[0] and w.end is not None and w.end >= stopped[1]
                       for w in row.of("down")), (row.tenant, span.phase.id, stopped, windows)  # fmt: skip
