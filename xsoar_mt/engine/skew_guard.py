"""The skew rule on what the servers really run, checked before every install."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.observed import Service
from xsoar_mt.plan import Action, Step
from xsoar_mt.skew import Judgement, SkewVerdict, judge_releases


def releases(run: RunContext) -> dict[str, str]:
    """Each server's release as the run now knows it (servers it cannot tell left out)."""
    with run.lock:
        return {n: v.release for n, s in run.state.items() if (v := s.view.planning_version) is not None}


def judge_known(run: RunContext, known: dict[str, str]) -> Judgement:
    """The skew rule on `known` (server -> release), main's servers told from the hosts'."""
    main = {s.name for s in run.inv.main.servers}
    return judge_releases(known, main, run.inv.releases)


def check_skew(run: RunContext, step: Step) -> None:
    """Refuse an install that would leave the deployment unsupported, given what the servers run now."""
    verdict = judge_known(run, releases(run) | dict.fromkeys(step.servers, step.release))
    if verdict.verdict is SkewVerdict.UNSUPPORTED:
        reasons = "; ".join(f.reason for f in verdict.faults if f.verdict is SkewVerdict.UNSUPPORTED)
        raise StepFailed(
            step,
            None,
            f"refused: it would leave the deployment unsupported ({reasons})",
            hint="the servers do not run what the plan expected; check them and plan again",
        )


def check_rollback_skew(run: RunContext, step: Step) -> None:
    """Before each step of a rollback: refuse it if, after it, the deployment would be unsupported by the
    rollback's rule (rollback/planner.py `rollback_judgement`): a host kept stopped may lag main by more
    than one release while main is not back yet; a host ahead of main never passes."""
    from xsoar_mt.rollback.planner import rollback_judgement

    after = releases(run)
    if step.action is Action.INSTALL:
        after |= dict.fromkeys(step.servers, step.release)
    main = {s.name for s in run.inv.main.servers}
    with run.lock:
        stopped = {n for n, s in run.state.items() if n not in main and s.view.service is not Service.RUNNING}
    if step.action is Action.START:
        stopped -= set(step.servers)
    verdict = rollback_judgement(
        {n: r for n, r in after.items() if n in main},
        {n: r for n, r in after.items() if n not in main},
        stopped,
        run.inv.releases,
    )
    if verdict.verdict is SkewVerdict.UNSUPPORTED:
        reasons = "; ".join(f.reason for f in verdict.faults if f.verdict is SkewVerdict.UNSUPPORTED)
        raise StepFailed(
            step,
            None,
            f"refused: it would leave the deployment unsupported ({reasons})",
            hint="the servers do not run what the rollback plan expected; check them and plan again",
        )
