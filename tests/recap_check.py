"""The check that a run's recap agrees with its journal, server by server (tests call it after every run).

Written apart from xsoar_mt/recap.py on purpose: it restates what each outcome promises in terms of the
journal's step records, so a recap that drifts from the journal fails here whatever the code derives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _session(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start = max(
        (i for i, r in enumerate(records) if r.get("kind") in ("run-intent", "run-resumed")), default=0
    )
    return records[start:]


def _names(record: dict[str, Any]) -> list[str]:
    return [str(s) for s in record.get("servers", [])]


def recap_disagreements(run_dir: Path, printed: str | None = None) -> list[str]:
    """Every way the recap of the run in `run_dir` (its run-finished record, and the table in `printed`
    when given) disagrees with the journal's step records of the same session. Empty when they agree."""
    records = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines() if line]
    records = _session(records)
    finished_runs = [r for r in records if r.get("kind") == "run-finished"]
    if not finished_runs:
        return [f"{run_dir}: the journal has no run-finished record: there is no recap to check"]
    run = finished_runs[-1]
    fleet: dict[str, dict[str, Any]] = run["data"]["fleet"]
    plans = sorted(run_dir.glob("plan-*.json"))
    planned: dict[str, set[str]] = {}
    if plans:
        plan = json.loads(plans[-1].read_text())
        for phase in plan["phases"]:
            for step in phase["steps"]:
                for server in step["servers"]:
                    planned.setdefault(server, set()).add(step["id"])
    started = [r for r in records if r.get("kind") == "step-started"]
    ends = [r for r in records if r.get("kind") == "step-finished"]
    problems: list[str] = []
    for name, state in fleet.items():
        mine = [r for r in ends if name in _names(r)]
        ok_steps = {r["step"] for r in mine if name not in r["data"].get("failed", [])}
        last = mine[-1]["step"] if mine else None
        outcome = state["outcome"]
        said = f"{name}: recap says last step {state['last_step']!r}, {outcome!r}"
        if state["last_step"] != last:
            problems.append(f"{said}; the journal's last finished step of it is {last!r}")
        if mine and name in mine[-1]["data"].get("failed", []) and outcome not in ("failed", "interrupted"):
            problems.append(f"{said}; its last step {last} failed on it")
        if outcome in ("failed", "interrupted") and not (mine and name in mine[-1]["data"].get("failed", [])):
            problems.append(f"{said}; no step failed on it last in the journal")
        if outcome == "not started" and ok_steps:
            problems.append(f"{said}; the journal has these steps of it done: {sorted(ok_steps)}")
        if outcome == "ok" and not planned.get(name, set()) <= ok_steps:
            problems.append(
                f"{said}; steps planned for it never finished: {sorted(planned[name] - ok_steps)}"
            )
        if outcome == "skipped" and any(name in _names(r) for r in started):
            problems.append(f"{said}; the journal has steps started on it")
        if run["data"]["outcome"] == "succeeded" and outcome not in ("ok", "skipped"):
            problems.append(f"{said}; the run succeeded")
    if printed is not None:
        rows = {}
        for line in printed.splitlines():
            cells = [c.strip() for c in line.split("│")]
            if len(cells) == 7 and cells[1] in fleet:
                rows[cells[1]] = (cells[4], cells[5])
        for name, state in fleet.items():
            shown = rows.get(name)
            expected = (state["last_step"] or "-", state["outcome"] or "-")
            if shown is not None and shown != expected:
                problems.append(
                    f"{name}: the printed recap shows {shown}, the run-finished record {expected}"
                )
    return problems


def latest_run_dir(state_dir: Path) -> Path | None:
    """The run directory whose journal changed last under `state_dir` (None when no run was recorded)."""
    journals = list((state_dir / "runs").glob("*/journal.jsonl")) if (state_dir / "runs").exists() else []
    if not journals:
        return None
    return max(journals, key=lambda p: p.stat().st_mtime_ns).parent


def assert_recap_agrees_with_journal(state_dir: Path, printed: str | None = None) -> None:
    """After a run that reached its recap: the recap agrees with the journal, server by server."""
    run_dir = latest_run_dir(state_dir)
    assert run_dir is not None, f"no run journal under {state_dir}"
    problems = recap_disagreements(run_dir, printed)
    assert not problems, "the recap disagrees with the journal:\n" + "\n".join(problems)
