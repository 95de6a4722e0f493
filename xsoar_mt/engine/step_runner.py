"""One step of a run: the skew rule checked before it (the rollback's own rule for a rollback's steps),
its start and outcome reported, its handler run, and each of its servers marked with how it went."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.outcome import Progress
from xsoar_mt.engine.skew_guard import check_rollback_skew, check_skew
from xsoar_mt.engine.steps.base import StepHandler
from xsoar_mt.plan import Action, Step


def run_step(run: RunContext, progress: Progress, handlers: Mapping[Action, StepHandler], step: Step) -> None:
    """Carry out `step` with the handler of its action; a failure is reported and raised again."""
    if run.rollback:
        check_rollback_skew(run, step)
    elif step.action is Action.INSTALL:
        check_skew(run, step)
    own: dict[str, Any] = {"per_server": dict(step.per_server)} if step.per_server else {}
    phase = run.phase_of(step)
    if phase is not None and phase.wave is not None:
        own["wave"] = phase.wave
    where = ", ".join(step.servers)
    run.emit(
        "step-started",
        f"{step.action.value} on {where} ({step.id})",
        step,
        step.servers,
        command=step.command,
        **own,
    )
    started = time.monotonic()
    try:
        handlers[step.action].run(run, step)
    except StepFailed as failure:
        failed = set(failure.servers)
        mark(run, step, [s for s in step.servers if s not in failed], "ok")
        mark(run, step, [s for s in step.servers if s in failed], "failed")
        run.emit(
            "step-finished",
            failure.message,
            step,
            step.servers,
            outcome="failed",
            error=failure.message,
            failed=sorted(failed),
            interrupted=failure.interrupted,
            seconds=round(time.monotonic() - started, 3),
        )
        raise
    mark(run, step, step.servers, "ok")
    with run.lock:
        progress.steps_done += 1
        progress.finished.add(step.id)
    versions = {s: str(run.state[s].version) for s in step.servers if run.state[s].version}
    run.emit(
        "step-finished",
        f"done: {step.action.value} on {where}",
        step,
        step.servers,
        outcome="ok",
        seconds=round(time.monotonic() - started, 3),
        versions=versions,
    )


def mark(run: RunContext, step: Step, servers: list[str] | tuple[str, ...], outcome: str) -> None:
    """Each server's last step and how it went (the recap settles the outcomes from the journal)."""
    with run.lock:
        for server in servers:
            run.state[server].last_step = step.id
            run.state[server].outcome = outcome
