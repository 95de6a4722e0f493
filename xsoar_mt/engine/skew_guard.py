"""The skew rule on what the servers really run, checked before every install."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.plan import Step
from xsoar_mt.skew import Judgement, Verdict, judge_releases


def releases(run: RunContext) -> dict[str, str]:
    """Each server's release as the run now knows it (servers it cannot tell left out)."""
    with run.lock:
        return {n: v.release for n, s in run.state.items() if (v := s.view.planning_version) is not None}


def judge(run: RunContext, known: dict[str, str]) -> Judgement:
    """The skew rule on `known` (server -> release), main's servers told from the hosts'."""
    main = {s.name for s in run.inv.main.servers}
    return judge_releases(known, main, run.inv.releases)


def check_skew(run: RunContext, step: Step) -> None:
    """Refuse an install that would leave the deployment unsupported, given what the servers run now."""
    verdict = judge(run, releases(run) | dict.fromkeys(step.servers, step.release))
    if verdict.verdict is Verdict.UNSUPPORTED:
        reasons = "; ".join(f.reason for f in verdict.faults if f.verdict is Verdict.UNSUPPORTED)
        raise StepFailed(step, None, f"refused: it would leave the deployment unsupported ({reasons})",
                         hint="the servers do not run what the plan expected; check them and plan again")  # fmt: skip
