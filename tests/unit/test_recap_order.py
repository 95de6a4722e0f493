"""The recap's step outcomes are kept in the order the journal receives them, even when two lanes finish
steps at the same moment (a fleet test saw a recap disagree with its journal about a server's last step)."""

from __future__ import annotations

import threading

from tests.unit.engine_setup import setup_run
from xsoar_mt.events import Event


class SlowJournal:
    """A sink that holds the first step-finished record until a second emit has begun (or 2 s passed), as
    a journal busy writing would; it keeps the order records arrive in."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.second_began = threading.Event()

    def emit(self, event: Event) -> None:
        if event.kind == "step-finished" and not self.order:
            self.second_began.wait(timeout=2)
        if event.kind == "step-finished":
            self.order.append(str(event.step))


def test_step_outcomes_keep_the_order_the_journal_receives_them_in() -> None:
    _, _, executor, _ = setup_run()
    run, journal = executor.run, SlowJournal()
    run.events = journal
    steps = list(executor.plan.steps)
    first, second = steps[0], steps[1]

    def finish(step_index: int) -> None:
        step = steps[step_index]
        if step_index == 1:
            journal.second_began.set()
        run.emit("step-finished", "done", step, step.servers, outcome="ok")

    lane_a = threading.Thread(target=finish, args=(0,))
    lane_a.start()
    while not run.step_outcomes and lane_a.is_alive():  # lane A has kept its record, and is in the journal
        threading.Event().wait(0.01)
    lane_b = threading.Thread(target=finish, args=(1,))
    lane_b.start()
    lane_a.join(timeout=10)
    lane_b.join(timeout=10)
    kept = [str(r["step"]) for r in run.outcomes()]
    assert kept == journal.order == [first.id, second.id]
