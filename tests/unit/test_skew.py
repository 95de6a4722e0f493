"""The version skew rule judged on fleet states, and the incremental FleetState agreeing with it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xsoar_mt.releases import ReleaseLine
from xsoar_mt.skew import DEGRADED_FUNCTIONS, FleetState, Judgement, SkewVerdict, judge

LINE = ReleaseLine()


def test_hosts_on_mains_release_are_ok() -> None:
    judgement = judge({"main": "6.11"}, {"h1": "6.11", "h2": "6.11"}, LINE)
    assert judgement.verdict is SkewVerdict.OK
    assert judgement.faults == ()
    assert judgement.degraded_functions == ()


def test_a_host_one_release_behind_is_degraded_and_named() -> None:
    judgement = judge({"main": "6.11"}, {"h1": "6.10", "h2": "6.11"}, LINE)
    assert judgement.verdict is SkewVerdict.DEGRADED
    assert [(f.server, f.verdict) for f in judgement.faults] == [("h1", SkewVerdict.DEGRADED)]
    assert "one release behind main (6.11)" in judgement.faults[0].reason


def test_a_degraded_fleet_lists_the_functions_that_stop_working() -> None:
    judgement = judge({"main": "6.11"}, {"h1": "6.10"}, LINE)
    assert judgement.degraded_functions == DEGRADED_FUNCTIONS
    assert any("content sync" in f for f in judgement.degraded_functions)
    assert any("host management" in f for f in judgement.degraded_functions)


def test_one_behind_counts_steps_in_the_release_list_so_6_5_under_6_6_is_degraded() -> None:
    assert judge({"main": "6.5"}, {"h": "6.2"}, LINE).verdict is SkewVerdict.DEGRADED


def test_a_host_two_releases_behind_is_unsupported_and_named() -> None:
    judgement = judge({"main": "6.11"}, {"h1": "6.9", "h2": "6.10"}, LINE)
    assert judgement.verdict is SkewVerdict.UNSUPPORTED
    faults = {f.server: f.verdict for f in judgement.faults}
    assert faults == {"h1": SkewVerdict.UNSUPPORTED, "h2": SkewVerdict.DEGRADED}
    assert "2 releases behind main (6.11)" in judgement.faults[0].reason


def test_a_host_ahead_of_main_is_unsupported_and_named() -> None:
    judgement = judge({"main": "6.10"}, {"h1": "6.11"}, LINE)
    assert judgement.verdict is SkewVerdict.UNSUPPORTED
    assert judgement.faults[0].server == "h1"
    assert "ahead of main (6.10)" in judgement.faults[0].reason


def test_with_mixed_main_versions_lag_is_judged_against_the_newest_main_server() -> None:
    # main-b already runs 6.11; a host on 6.10 lags it by one, one on 6.9 by two.
    main = {"main-a": "6.10", "main-b": "6.11"}
    assert judge(main, {"h": "6.10"}, LINE).verdict is SkewVerdict.DEGRADED
    assert judge(main, {"h": "6.9"}, LINE).verdict is SkewVerdict.UNSUPPORTED


def test_with_mixed_main_versions_ahead_is_judged_against_the_oldest_main_server() -> None:
    judgement = judge({"main-a": "6.10", "main-b": "6.11"}, {"h": "6.11"}, LINE)
    assert judgement.verdict is SkewVerdict.UNSUPPORTED
    assert "ahead of main (6.10)" in judgement.faults[0].reason


def test_a_fleet_without_hosts_is_ok() -> None:
    assert judge({"main": "6.11"}, {}, LINE).verdict is SkewVerdict.OK


def test_no_main_server_known_judges_ok_with_no_fault() -> None:
    # e.g. status with main unreachable: nothing to judge a host against
    assert judge({}, {"h1": "6.9"}, LINE) == Judgement(SkewVerdict.OK, ())


def test_one_unsupported_host_makes_the_fleet_unsupported_whatever_order_the_faults_come_in() -> None:
    for hosts in ({"h1": "6.9", "h2": "6.10"}, {"h1": "6.10", "h2": "6.9"}, {"h1": "6.10", "h2": "6.12"}):
        assert judge({"main": "6.11"}, hosts, LINE).verdict is SkewVerdict.UNSUPPORTED, hosts


def test_fleet_state_follows_servers_as_they_change() -> None:
    state = FleetState({"main": "6.10"}, {"h": "6.10"}, LINE)
    state.set("main", "6.11")
    assert state.verdict() is SkewVerdict.DEGRADED
    state.set("main", "6.12")
    assert state.verdict() is SkewVerdict.UNSUPPORTED
    state.set("h", "6.12")
    assert state.verdict() is SkewVerdict.OK
    assert state.release_of("h") == "6.12"


RELEASES = st.sampled_from(LINE.releases[4:10])


@st.composite
def states_and_updates(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str]]]:
    main = {f"m{i}": draw(RELEASES) for i in range(draw(st.integers(1, 3)))}
    hosts = {f"h{i}": draw(RELEASES) for i in range(draw(st.integers(0, 5)))}
    names = sorted(main.keys() | hosts.keys())
    updates = draw(st.lists(st.tuples(st.sampled_from(names), RELEASES), max_size=12))
    return main, hosts, updates


@settings(max_examples=300, deadline=None)
@given(states_and_updates())
def test_fleet_state_verdict_always_equals_judge_on_the_same_versions(
    case: tuple[dict[str, str], dict[str, str], list[tuple[str, str]]],
) -> None:
    main, hosts, updates = case
    state = FleetState(main, hosts, LINE)
    assert state.verdict() is judge(main, hosts, LINE).verdict
    for server, release in updates:
        state.set(server, release)
        (main if server in main else hosts)[server] = release
        assert state.verdict() is judge(main, hosts, LINE).verdict
        assert state.judge() == judge(main, hosts, LINE)


def test_a_host_ahead_of_main_is_marked_ahead_and_one_behind_is_not() -> None:
    from xsoar_mt.releases import ReleaseLine
    from xsoar_mt.skew import judge

    faults = {
        f.server: f
        for f in judge({"m": "6.11"}, {"a": "6.12", "b": "6.10", "c": "6.9"}, ReleaseLine()).faults
    }
    assert faults["a"].ahead
    assert not faults["b"].ahead and not faults["c"].ahead
