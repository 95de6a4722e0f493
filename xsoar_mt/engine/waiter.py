"""The one way the run engine waits: a deadline, a growing pause between attempts, and a cancellation
(the operator's second interrupt) that wakes any wait at once.

Every loop that waits (for a reconnect, an installer, a health gate, a version, a command to run again)
takes a `Pace` from the run's `Waiter`, and asks it whether time is up, whether to give up, and to pause.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Waiter:
    """Sleeps in short slices so that a cancellation ends a sleep at once (nothing is signalled to wake
    it); `on_tick` runs at every slice (the run reports the interrupts it has counted there)."""

    SLICE = 0.05

    def __init__(
        self,
        cancelled: Callable[[], bool] = lambda: False,
        on_tick: Callable[[], None] = lambda: None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cancelled = cancelled
        self._on_tick = on_tick
        self.clock = clock
        self._sleep = sleep

    @property
    def cancelled(self) -> bool:
        return self._cancelled()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when cancelled."""
        deadline = self.clock() + seconds
        while True:
            self._on_tick()
            left = deadline - self.clock()
            if left <= 0 or self.cancelled:
                return
            self._sleep(min(self.SLICE, left))

    def pace(
        self,
        *,
        first: float,
        most: float,
        timeout: float | None = None,
        deadline: float | None = None,
        factor: float = 2.0,
        share: float | None = None,
    ) -> Pace:
        """A wait that ends `timeout` seconds from now (or at the clock's `deadline`, or never), pausing
        `first` seconds, then each time `factor` times longer up to `most`; with `share`, each pause is
        that share of the time waited so far instead, kept between `first` and `most`."""
        if timeout is not None:
            deadline = self.clock() + timeout
        return Pace(self, deadline, first, most, factor, share)


class Pace:
    """One wait under way: see `Waiter.pace`."""

    def __init__(
        self,
        waiter: Waiter,
        deadline: float | None,
        first: float,
        most: float,
        factor: float,
        share: float | None,
    ) -> None:
        self.waiter = waiter
        self.deadline = deadline
        self.started = waiter.clock()
        self._first, self._most, self._factor, self._share = first, most, factor, share
        self._delay = first

    @property
    def elapsed(self) -> float:
        return self.waiter.clock() - self.started

    @property
    def expired(self) -> bool:
        """The deadline has passed (never, without one)."""
        return self.deadline is not None and self.waiter.clock() > self.deadline

    @property
    def cancelled(self) -> bool:
        return self.waiter.cancelled

    def next_pause(self) -> float:
        """How long the next `pause` sleeps."""
        if self._share is not None:
            return max(self._first, min(self._most, self.elapsed * self._share))
        return self._delay

    def pause(self) -> None:
        """Sleep the next pause (cut short by a cancellation); the one after grows."""
        seconds = self.next_pause()
        if self._share is None:
            self._delay = min(self._most, self._delay * self._factor)
        self.waiter.sleep(seconds)
