"""A run's recap per server (its last step and its outcome), derived from the journal's step outcomes only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from xsoar_mt.inventory import Inventory, Role
from xsoar_mt.plan import PhaseKind, Plan
from xsoar_mt.skew import DEGRADED_FUNCTIONS, SkewVerdict, judge_releases

# ok: every step planned for it finished ok; failed: its last step failed on it; interrupted: its last step
# was cut off by the operator; incomplete: some of its steps finished, not all; prepared: only its backup or
# installer delivery finished (nothing was stopped); not started: none of its steps finished; skipped: the
# plan has no step for it.
OUTCOMES = ("ok", "failed", "interrupted", "incomplete", "prepared", "not started", "skipped")


@dataclass(frozen=True)
class ServerRecap:
    last_step: str | None
    outcome: str


def recap(plan: Plan, servers: Iterable[str], records: Iterable[Mapping[str, Any]]) -> dict[str, ServerRecap]:
    """Each server's last step and outcome, from the `step-finished` records of one session (in order)."""
    planned: dict[str, list[str]] = {}
    prepare: set[str] = set()
    for phase in plan.phases:
        for step in phase.steps:
            for server in step.servers:
                planned.setdefault(server, []).append(step.id)
            if phase.kind is PhaseKind.PREPARE:
                prepare.add(step.id)
    finished: dict[str, dict[str, str]] = {}  # server -> step id -> ok | failed | interrupted
    last: dict[str, str] = {}
    for record in records:
        data = record.get("data")
        if record.get("kind") != "step-finished" or not isinstance(data, Mapping):
            continue
        step_id = str(record.get("step") or "")
        failed = {str(s) for s in data.get("failed", ())} if data.get("outcome") == "failed" else set()
        for server in record.get("servers", ()):
            name = str(server)
            cut = "interrupted" if data.get("interrupted") else "failed"
            outcome = cut if name in failed else "ok"
            finished.setdefault(name, {})[step_id] = outcome
            last[name] = step_id
    result: dict[str, ServerRecap] = {}
    for name in servers:
        steps, done = planned.get(name, []), finished.get(name, {})
        last_step = last.get(name)
        if last_step is not None and done[last_step] != "ok":
            outcome = done[last_step]
        elif not steps:
            outcome = "skipped"
        elif all(done.get(s) == "ok" for s in steps):
            outcome = "ok"
        elif not any(v == "ok" for v in done.values()):
            outcome = "not started"
        elif all(s in prepare for s, v in done.items() if v == "ok"):
            outcome = "prepared"
        else:
            outcome = "incomplete"
        result[name] = ServerRecap(last_step, outcome)
    return result


def tenants_down(inventory: Inventory, running: Mapping[str, bool | None]) -> list[str]:
    """The tenants whose group serves nothing now, from what the run last saw of each server: a single
    server stopped, a DR pair's primary stopped (the secondary does not serve), every server of an HA
    group stopped. A server whose state is unknown is not counted as stopped."""
    down: list[str] = []
    for group in inventory.groups:
        serving = [s for s in group.servers if s.role is not Role.SECONDARY]
        if serving and all(running.get(s.name) is False for s in serving):
            down += [t.name for t in group.tenants]
    return down


def lagging_functions(inventory: Inventory, releases: Mapping[str, str]) -> tuple[str, ...]:
    """The functions that do not work now because hosts lag main (the skew rule's degraded verdict on the
    releases the run last saw), else nothing."""
    main = {s.name for s in inventory.main.servers}
    verdict = judge_releases(releases, main, inventory.releases).verdict
    return DEGRADED_FUNCTIONS if verdict is SkewVerdict.DEGRADED else ()
