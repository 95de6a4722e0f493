"""How a run ended: its outcome, each server's own, where the window stopped it, and what it measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import RunReport, StepFailed, ValidationFailed, WindowClosed
from xsoar_mt.engine.skew_guard import judge_known, releases
from xsoar_mt.recap import recap
from xsoar_mt.skew import DEGRADED_FUNCTIONS, SkewVerdict
from xsoar_mt.window import Refusal


@dataclass
class Progress:
    """What the scheduler keeps while it runs: failures, steps done, phases begun, the window."""

    failures: list[StepFailed] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)  # failures outside any step
    steps_done: int = 0
    skipped: bool = False  # something planned was not started
    begun: set[str] = field(default_factory=set)  # phases a step of which started
    finished: set[str] = field(default_factory=set)  # steps finished ok
    window_closed: Refusal | None = None


def outcome(progress: Progress, interrupts: int, total: int) -> str:
    """succeeded, failed, interrupted (nothing failed but what the operator cut off) or window-closed."""
    failures = [f.message for f in progress.failures] + progress.fatal
    cut_off = interrupts > 0 and not progress.fatal and all(f.interrupted for f in progress.failures)
    if failures and not cut_off:
        return "failed"
    if interrupts and (failures or progress.skipped or progress.steps_done < total):
        return "interrupted"
    if progress.window_closed is not None:
        return "window-closed"
    return "succeeded"


def report(run: RunContext, progress: Progress, result: str) -> RunReport:
    settle_outcomes(run)
    learn(run)
    validation_only = (
        bool(progress.failures)
        and not progress.fatal
        and all(isinstance(f, ValidationFailed) for f in progress.failures)
    )
    window = window_report(run, progress) if result == "window-closed" else None
    failures = [f.message for f in progress.failures] + progress.fatal
    return RunReport(result, run.state, progress.steps_done, failures, validation_only, window)


def finished_data(window: WindowClosed | None) -> dict[str, Any]:
    """What the `run-finished` event says of the window, besides the outcome (Any: passed as **data)."""
    if window is None:
        return {}
    return {
        "window": {
            "closes": window.refusal.window_end,
            "not_started": window.refusal.phase.id,
            "done": [p.id for p in window.done],
            "left": [p.id for p in window.left],
            "degraded_functions": list(window.degraded_functions),
        }
    }


def settle_outcomes(run: RunContext) -> None:
    """Every server's last step and outcome, from the step outcomes the journal records (recap.py)."""
    records = run.outcomes()
    for name, settled in recap(run.plan, run.state, records).items():
        run.state[name].last_step, run.state[name].outcome = settled.last_step, settled.outcome


def window_report(run: RunContext, progress: Progress) -> WindowClosed:
    assert progress.window_closed is not None
    groups = [p for p in run.plan.phases if p.group is not None]
    done = tuple(p for p in groups if all(s.id in progress.finished for s in p.steps))
    left = tuple(p for p in groups if p.id not in progress.begun)
    known = releases(run)
    main = {s.name for s in run.inv.main.servers}
    lagging = any(n in main for n in known) and judge_known(run, known).verdict is not SkewVerdict.OK
    return WindowClosed(progress.window_closed, done, left, DEGRADED_FUNCTIONS if lagging else ())


def learn(run: RunContext) -> None:
    """Keep what each server's steps took in the deployment's local record, for the next estimates."""
    if run.known is None or not run.measured:
        return
    try:
        run.known.record_durations(run.measured, run.run_id)
    except OSError as exc:
        run.emit("warning", f"cannot record the measured durations in {run.known.path}: {exc}")
