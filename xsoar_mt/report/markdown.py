"""The report as Markdown, for a change ticket."""

from __future__ import annotations

from xsoar_mt.report.model import Report
from xsoar_mt.report.text import (
    TENANT_COLUMNS,
    estimated,
    length,
    minutes,
    moment,
    time_of_day,
    total,
    who,
    windows,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _line(text: str) -> str:
    """Server output on one line, so it stays inside its list item."""
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(report: Report) -> str:
    out = _summary(report)
    out += ["## Who ran it", "", *_table(["run", "details"], [list(r) for r in who(report)])]
    out += [
        "## Versions",
        "",
        *_table(
            ["server", "group", "before", "after"],
            [[s.server, s.group, s.before or "unknown", s.after or "unknown"] for s in report.servers],
        ),
    ]
    out += ["## Tenants", "", *_tenants(report)]
    out += ["## Interruptions and resumes", "", *_attempts(report), ""]
    out += ["## Preflight findings ignored with --ignore-preflight-errors", ""]
    out += [f"- {f.check} on {f.server}: {_line(f.detail)} (run {f.attempt})" for f in report.ignored] or [
        "- none"
    ]
    out += ["", "## Final validation", "", *_validation(report)]
    out += ["## Steps", "", *_steps(report)]
    if report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(out)


def _summary(report: Report) -> list[str]:
    """The title, the outcome and when, the plan's estimate and the maintenance window."""
    out = [
        f"# Upgrade {report.upgrade}: {report.deployment} to {report.target}",
        "",
        f"Outcome: **{report.outcome}**. From {moment(report.started)} to {moment(report.ended)} "
        f"({length(report.ended - report.started)}, in {len(report.attempts)} "
        f"run{'s' if len(report.attempts) != 1 else ''}).",
        "",
    ]
    if report.estimated_minutes is not None:
        out += [f"The plan estimated {minutes(report.estimated_minutes)}.", ""]
    if report.window_end is not None:
        out += [f"The maintenance window was set to end at {moment(report.window_end)}.", ""]
    return out


def _tenants(report: Report) -> list[str]:
    """Each tenant's windows down and degraded, measured and estimated."""
    if not report.tenants:
        return ["Tenants are not known for this report (no inventory).", ""]
    rows = []
    for tenant in report.tenants:
        down, lag = estimated(tenant)
        rows.append(
            [
                tenant.tenant,
                tenant.group,
                windows(tenant.outages, report),
                total(tenant.outages, report),
                down,
                windows(tenant.degraded, report),
                total(tenant.degraded, report),
                lag,
            ]
        )
    return _table(list(TENANT_COLUMNS), rows)


def _attempts(report: Report) -> list[str]:
    """One list item per run: its outcome and failures."""
    out = []
    for attempt in report.attempts:
        what = "The run" if attempt.number == 1 else f"Resume {attempt.number - 1}"
        line = f"- {what} ({attempt.run_id}, {time_of_day(attempt.started)}-{time_of_day(attempt.ended)}): {attempt.outcome}"
        out.append(line + "".join(f"; {_line(f)}" for f in attempt.failures))
    return out


def _validation(report: Report) -> list[str]:
    if report.validation is None:
        return ["No validation ran.", ""]
    v = report.validation
    return [f"{v.step}: **{v.outcome}** at {moment(v.at)}" + (f": {_line(v.detail)}" if v.detail else ""), ""]


def _steps(report: Report) -> list[str]:
    """Every step on every run, with its command."""
    rows = [
        [
            str(s.attempt),
            s.step,
            s.kind,
            ", ".join(s.servers),
            time_of_day(s.start),
            time_of_day(s.end),
            length(s.end - s.start),
            s.outcome + (f": {s.error}" if s.error else ""),
            f"`{s.command}`",
        ]
        for s in report.steps
    ]
    return _table(["run", "step", "kind", "servers", "start", "end", "length", "outcome", "command"], rows)
