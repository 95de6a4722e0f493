"""The maintenance window: `--window-end` read, where the estimate closes it, and the run's check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.inventories import build, five
from tests.inventories import single_group as single
from tests.unit.planning import waved
from xsoar_mt.errors import UsageError
from xsoar_mt.estimate import Durations, estimate
from xsoar_mt.plan import Phase, Plan
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.window import EstimatedWindow, WindowGuard, closing, parse_window_end

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("+90m", 90),
        ("+2h", 120),
        ("+1.5h", 90),
        ("+45min", 45),
        ("23:30", 90),
        ("06:00", 480),
        ("22:00", 1440),
    ],
)
def test_a_relative_time_or_a_time_of_day_ends_the_window_that_long_from_now(text: str, minutes: int) -> None:
    assert parse_window_end(text, NOW) - NOW == timedelta(minutes=minutes)


def test_an_iso_time_with_an_offset_is_taken_as_given() -> None:
    end = parse_window_end("2026-12-02T05:30:00+01:00", NOW)
    assert end - NOW == timedelta(hours=7, minutes=30)


def test_an_iso_time_without_an_offset_is_local_time() -> None:
    local_now = datetime.now().astimezone()
    naive = (local_now + timedelta(hours=3)).replace(tzinfo=None, microsecond=0)
    end = parse_window_end(naive.isoformat(), local_now)
    assert end == naive.astimezone()


@pytest.mark.parametrize(
    "text", ["tomorrow", "25:00", "12:75", "+0m", "+5", "2026-12-01T21:00+01:00", "+-5m"]
)
def test_a_bad_or_past_window_end_is_a_usage_error_naming_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--window-end "):
        parse_window_end(text, NOW)


# -- where the window closes on the estimate -----------------------------------------------------------


def night() -> tuple[Plan, Durations]:
    """Main and four single hosts, each phase 10 minutes (stop 1, install 6, start 1, healthy 2), no prepare."""
    inventory = build("bolt", single("main"), [single(f"h{i}") for i in range(1, 5)])
    p = plan_upgrade(inventory, inventory.versions(), "6.12")
    return p, Durations.of({"backup": 0, "fetch": 0, "stop": 1, "install": 6, "start": 1, "healthy": 2})


def test_the_whole_run_fits_a_window_long_enough() -> None:
    p, durations = night()
    timing = estimate(p, durations.minutes)
    assert timing.span("h4@6.12").end == 50
    assert closing(timing, 52) is None


def test_the_window_closes_before_the_first_group_that_would_end_after_it() -> None:
    p, durations = night()
    where = closing(estimate(p, durations.minutes), 35)
    assert where is not None
    assert (where.phase.id, where.starts, where.ends) == ("h3@6.12", 30, 40)
    assert [ph.id for ph in where.done] == ["main@6.12", "h1@6.12", "h2@6.12"]
    assert [ph.id for ph in where.left] == ["h3@6.12", "h4@6.12"]
    assert not where.before_prepare


def test_main_is_never_started_when_it_would_not_fit() -> None:
    p, durations = night()
    where = closing(estimate(p, durations.minutes), 9)
    assert where is not None and where.phase.id == "main@6.12" and where.before_prepare and where.done == ()


def test_in_a_wave_run_side_by_side_the_first_group_that_would_not_fit_closes_it() -> None:
    p = waved(five(), "1,100%")  # main, h1, validation, then h2, h3, h4 and d5 together
    timing = estimate(
        p, {"backup": 0, "fetch": 0, "stop": 1, "install": 6, "start": 1, "healthy": 2, "validate": 0}
    )
    assert timing.span("d5@6.12").end == 40  # a DR pair: two installs
    where = closing(timing, 35)
    assert where is not None and where.phase.id == "d5@6.12"
    assert [ph.id for ph in where.done] == ["main@6.12", "h1@6.12", "h2@6.12", "h3@6.12", "h4@6.12"]


# -- the run's check ---------------------------------------------------------------------------------


def phase(p: Plan, phase_id: str) -> Phase:
    return next(ph for ph in p.phases if ph.id == phase_id)


def test_the_guard_lets_a_group_start_only_if_it_would_end_before_the_window() -> None:
    p, durations = night()
    now = [1000.0]
    guard = WindowGuard(end=1000.0 + 15 * 60, durations=durations, clock=lambda: now[0])
    assert guard.check([phase(p, "main@6.12")], {}) is None  # 10 minutes of 15
    now[0] += 6 * 60
    refused = guard.check([phase(p, "h1@6.12")], {})
    assert refused is not None and refused.phase.id == "h1@6.12" and refused.ends == now[0] + 10 * 60
    assert "would end about" in refused.message and "starting nothing more" in refused.message


def test_the_guard_prefers_what_this_run_measured_to_the_durations() -> None:
    p, durations = night()
    guard = WindowGuard(end=6 * 60, durations=durations, clock=lambda: 0.0)
    assert guard.check([phase(p, "h1@6.12")], {}) is not None  # 10 minutes by the durations
    tonight = {"main-0": {"stop": 0.5, "install": 2, "start": 0.5, "healthy": 1}}  # main took 4
    assert guard.check([phase(p, "h1@6.12")], tonight) is None


def test_the_guard_counts_prepare_with_the_group_after_it() -> None:
    inventory = build("bolt", single("main"), [single("h1")])
    p = plan_upgrade(inventory, inventory.versions(), "6.12")
    durations = Durations.of({"backup": 10, "fetch": 5, "stop": 1, "install": 6, "start": 1, "healthy": 2})
    guard = WindowGuard(end=19 * 60, durations=durations, clock=lambda: 0.0)
    assert guard.check([phase(p, "main@6.12")], {}) is None  # main alone: 10 minutes
    refused = guard.check([phase(p, "prepare"), phase(p, "main@6.12")], {})
    # prepare: the backups (10) and the fetches (5) side by side, then main's 10
    assert refused is not None and refused.phase.id == "main@6.12" and refused.ends == 20 * 60


def test_a_dry_run_stops_where_the_estimate_closes_the_window() -> None:
    p, durations = night()
    where = closing(estimate(p, durations.minutes), 35)
    check = EstimatedWindow(end=100 + 35 * 60, started=100, where=where)
    assert check.check([phase(p, "h2@6.12")], {}) is None
    refused = check.check([phase(p, "h3@6.12")], {})
    assert refused is not None and refused.now == 100 + 30 * 60 and refused.ends == 100 + 40 * 60
