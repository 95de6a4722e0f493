"""The maintenance window: `--window-end` read, where a plan's estimate says the window closes, and the
run's check, before it starts a group, that the group would end before the window does."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from xsoar_mt.errors import UsageError
from xsoar_mt.estimate import Durations, Estimate, timeline
from xsoar_mt.plan import Phase

_RELATIVE = re.compile(r"^\+(\d+(?:\.\d+)?)\s*(m|min|h)$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_window_end(text: str, now: datetime) -> datetime:
    """When the window ends: `+90m` or `+2h` from `now`; `HH:MM`, the next such local time; or an ISO 8601
    time (`2026-12-02T05:30`, local unless it gives an offset). `now` must carry its time zone."""
    raw = text.strip()
    if found := _RELATIVE.match(raw):
        amount = float(found[1]) * (60 if found[2] == "h" else 1)
        if amount <= 0:
            raise UsageError(f"--window-end {text}: the window must end after now")
        return now + timedelta(minutes=amount)
    if found := _CLOCK.match(raw):
        hour, minute = int(found[1]), int(found[2])
        if hour > 23 or minute > 59:
            raise UsageError(f"--window-end {text}: not a time of day (00:00 to 23:59)")
        end = now.replace(hour=hour, minute=minute, second=0, microsecond=0)  # `now` is local
        return end if end > now else end + timedelta(days=1)
    try:
        end = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(
            f"--window-end {text}: not a time; give an ISO 8601 time (2026-12-02T05:30), HH:MM in local "
            "time, or +90m / +2h from now"
        ) from None
    end = end.astimezone()  # a time without an offset is local
    if end <= now:
        raise UsageError(f"--window-end {text}: that time has passed")
    return end


def at(epoch: float) -> str:
    """A moment as local `HH:MM`."""
    return time.strftime("%H:%M", time.localtime(epoch))


@dataclass(frozen=True)
class Closing:
    """Where the window closes by a plan's estimate: the first group phase that would end after it, which
    the run does not start, nor anything after it. Minutes are from the start of the run."""

    phase: Phase
    starts: float
    ends: float
    before_prepare: bool  # not even the first group fits: nothing is prepared either
    done: tuple[Phase, ...]  # group phases the run finishes first
    left: tuple[Phase, ...]  # group phases it leaves for another night, `phase` first


def closing(timing: Estimate, minutes: float) -> Closing | None:
    """Where a window `minutes` long closes on the estimated run, or None when the whole run fits in it."""
    groups = [span for span in timing.spans if span.phase.group is not None]
    for index, span in enumerate(groups):
        if span.end > minutes:
            return Closing(
                span.phase,
                span.start,
                span.end,
                index == 0,
                tuple(s.phase for s in groups[:index]),
                tuple(s.phase for s in groups[index:]),
            )
    return None


@dataclass(frozen=True)
class Refusal:
    """A group the run does not start because, by the estimate, it would end after the window."""

    phase: Phase
    now: float  # epoch seconds
    ends: float
    window_end: float

    @property
    def message(self) -> str:
        what = "main" if self.phase.group == "main" else f"host group {self.phase.group}"
        return (
            f"{what} ({self.phase.id}) would end about {at(self.ends)}, after the window closes at "
            f"{at(self.window_end)}: starting nothing more; the groups under way finish"
        )


class WindowGuard:
    """In a run: before a group starts, is there time for it? Its expected length comes from what this run
    measured, then what earlier runs learned, then the inventory's durations (Durations.tonight)."""

    def __init__(self, end: float, durations: Durations, clock: Callable[[], float] = time.time) -> None:
        self.end = end
        self.durations = durations
        self.clock = clock

    def check(self, phases: Sequence[Phase], measured: Mapping[str, Mapping[str, float]]) -> Refusal | None:
        """`phases` run back to back from now (prepare with the first group, or one group)."""
        now = self.clock()
        minutes = timeline(phases, self.durations.tonight(measured))[-1].end
        ends = now + minutes * 60
        return None if ends <= self.end else Refusal(phases[-1], now, ends, self.end)


class EstimatedWindow:
    """In a dry run, which takes no time: the window closes where the plan's estimate says (`closing`)."""

    def __init__(self, end: float, started: float, where: Closing | None) -> None:
        self.end = end
        self.started = started
        self.where = where

    def check(self, phases: Sequence[Phase], measured: Mapping[str, Mapping[str, float]]) -> Refusal | None:
        where = self.where
        if where is None or phases[-1].id != where.phase.id:
            return None
        return Refusal(
            where.phase, self.started + where.starts * 60, self.started + where.ends * 60, self.end
        )
