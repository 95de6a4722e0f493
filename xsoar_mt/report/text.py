"""How the report says moments, lengths and windows, the same in HTML and Markdown."""

from __future__ import annotations

import time
from collections.abc import Sequence

from xsoar_mt.report.model import Interval, Report, TenantWindows

# The tenants table's columns, the same in the HTML and the Markdown report.
TENANT_COLUMNS = (
    "tenant",
    "group",
    "down (measured)",
    "down total",
    "down (estimated)",
    "degraded (measured)",
    "degraded total",
    "degraded (estimated)",
)


def moment(at: float) -> str:
    """`2026-12-06 23:04:11 UTC`."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def time_of_day(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at))


def length(seconds: float) -> str:
    """`12 s`, `4 min 05 s`, `1 h 02 min`."""
    whole = round(max(seconds, 0.0))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def minutes(value: float) -> str:
    """An estimate, to the minute (as `upgrade plan` says it)."""
    from xsoar_mt.estimate import hours_and_minutes

    return hours_and_minutes(value)


def windows(intervals: Sequence[Interval], report: Report) -> str:
    """`23:05:01-23:05:09 (8 s); ...`, or `none`."""
    if not intervals:
        return "none"
    parts = []
    for interval in intervals:
        end = time_of_day(interval.end) if interval.end is not None else "still at the end"
        parts.append(f"{time_of_day(interval.start)}-{end} ({length(interval.seconds(report.ended))})")
    return "; ".join(parts)


def total(intervals: Sequence[Interval], report: Report) -> str:
    """`7 s from +3 s`: how long in all, and from how far into the night (as the estimate says it)."""
    if not intervals:
        return "0 s"
    whole = length(sum(i.seconds(report.ended) for i in intervals))
    return f"{whole} from +{length(intervals[0].start - report.started)}"


def estimated(tenant: TenantWindows) -> tuple[str, str]:
    """(downtime, degraded) as the plan estimated them."""
    if tenant.estimated_down_minutes is None:
        return "no estimate", "no estimate"
    down = minutes(tenant.estimated_down_minutes)
    outages = [
        (start, end) for kind, start, end in tenant.estimated_windows if kind == "down" and end is not None
    ]
    if len(outages) > 1:  # each window on its own: a sum is never passed off as one window
        down += " in " + ", ".join(f"+{minutes(start)} to +{minutes(end)}" for start, end in outages)
    elif tenant.estimated_down_at is not None and tenant.estimated_down_minutes:
        down += f" from +{minutes(tenant.estimated_down_at)}"
    if tenant.estimated_degraded_minutes is None:
        lag = "still lagging after the plan" if tenant.group != "main" else "0 min"
    else:
        lag = minutes(tenant.estimated_degraded_minutes)
    return down, lag


def who(report: Report) -> list[tuple[str, str]]:
    """(label, value) rows: who ran it, from each attempt's start record."""
    rows = []
    for attempt in report.attempts:
        what = "run" if attempt.number == 1 else f"resume {attempt.number - 1}"
        if attempt.resumed and attempt.number == 1:
            what = "resume"
        rows.append(
            (
                f"{what} {attempt.run_id}",
                f"{moment(attempt.started)} to {time_of_day(attempt.ended)}; operator {attempt.operator} on "
                f"{attempt.machine}; xsoar-mt {attempt.xsoar_mt_version}; inventory sha256 "
                f"{attempt.inventory_sha256}; outcome {attempt.outcome}",
            )
        )
    return rows
