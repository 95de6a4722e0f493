"""The engine's one waiter: deadlines, back-off between attempts, and a cancellation that ends any wait."""

from __future__ import annotations

from collections.abc import Callable

from xsoar_mt.engine.waiter import Waiter


class FakeTime:
    """A clock that moves only when the waiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def waiter(time: FakeTime, cancelled: list[bool] | None = None, ticks: list[float] | None = None) -> Waiter:
    flag = cancelled if cancelled is not None else [False]
    return Waiter(
        lambda: flag[0],
        lambda: ticks.append(time.now) if ticks is not None else None,
        clock=time.clock,
        sleep=time.sleep,
    )


def pauses(time: FakeTime, pause: Callable[[], None], count: int) -> list[float]:
    """How long each of `count` pauses lasted on the fake clock."""
    out = []
    for _ in range(count):
        before = time.now
        pause()
        out.append(round(time.now - before, 6))
    return out


def test_a_pace_expires_only_once_its_timeout_has_passed() -> None:
    time = FakeTime()
    pace = waiter(time).pace(timeout=10, first=1, most=1)
    time.now += 10
    assert not pace.expired  # at the deadline itself, not yet
    time.now += 0.001
    assert pace.expired


def test_a_pace_without_a_timeout_never_expires() -> None:
    time = FakeTime()
    pace = waiter(time).pace(first=1, most=1)
    time.now += 1e9
    assert not pace.expired


def test_a_pace_can_share_another_s_deadline() -> None:
    time = FakeTime()
    first = waiter(time).pace(timeout=30, first=1, most=1)
    time.now += 20
    second = waiter(time).pace(deadline=first.deadline, first=1, most=1)
    time.now += 10.5
    assert first.expired and second.expired


def test_pauses_double_from_the_first_up_to_the_most() -> None:
    time = FakeTime()
    pace = waiter(time).pace(first=0.5, most=5.0)
    assert pauses(time, pace.pause, 6) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_pause_grows_by_the_factor_given() -> None:
    time = FakeTime()
    pace = waiter(time).pace(first=1, most=100, factor=3)
    assert pauses(time, pace.pause, 3) == [1.0, 3.0, 9.0]


def test_a_proportional_pause_is_a_share_of_the_time_waited_kept_between_first_and_most() -> None:
    time = FakeTime()
    pace = waiter(time).pace(first=0.5, most=5.0, share=0.1)
    assert pace.next_pause() == 0.5  # nothing waited yet: the least
    time.now += 30
    assert pace.next_pause() == 3.0
    time.now += 100
    assert pace.next_pause() == 5.0  # never more than the most


def test_a_sleep_is_taken_in_short_slices_and_reports_at_each() -> None:
    time, ticks = FakeTime(), list[float]()
    waiter(time, ticks=ticks).sleep(1.0)
    assert round(time.now - 100.0, 6) == 1.0
    assert max(time.sleeps) <= Waiter.SLICE
    assert len(ticks) >= 1.0 / Waiter.SLICE


def test_a_cancellation_ends_a_sleep_at_once() -> None:
    time, cancelled = FakeTime(), [False]
    wait = waiter(time, cancelled)

    def sleep_then_cancel(seconds: float) -> None:
        FakeTime.sleep(time, seconds)
        cancelled[0] = True  # the operator's second interrupt, during the first slice

    wait._sleep = sleep_then_cancel
    wait.sleep(600)
    assert time.sleeps == [Waiter.SLICE]


def test_a_cancelled_waiter_does_not_sleep_and_its_paces_say_so() -> None:
    time = FakeTime()
    wait = waiter(time, [True])
    pace = wait.pace(timeout=60, first=5, most=5)
    pace.pause()
    assert time.sleeps == [] and pace.cancelled
