"""The report as Markdown, for a change ticket."""

from __future__ import annotations

from xsoar_mt.report.model import Report
from xsoar_mt.report.text import clock, estimated, length, minutes, moment, total, who, windows


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
    out += ["## Who ran it", "", *_table(["run", "details"], [list(r) for r in who(report)])]
    out += [
        "## Versions",
        "",
        *_table(
            ["server", "group", "before", "after"],
            [[s.server, s.group, s.before or "unknown", s.after or "unknown"] for s in report.servers],
        ),
    ]
    out += ["## Tenants", ""]
    if report.tenants:
        rows = []
        for tenant in report.tenants:
            down, lag = estimated(tenant)
            rows.append(
                [tenant.tenant, tenant.group, windows(tenant.outages, report), total(tenant.outages, report),
                 down, windows(tenant.degraded, report), total(tenant.degraded, report), lag]
            )  # fmt: skip
        out += _table(
            ["tenant", "group", "down (measured)", "down total", "down (estimated)", "degraded (measured)",
             "degraded total", "degraded (estimated)"],
            rows,
        )  # fmt: skip
    else:
        out += ["Tenants are not known for this report (no inventory).", ""]
    out += ["## Interruptions and resumes", ""]
    for attempt in report.attempts:
        what = "The run" if attempt.number == 1 else f"Resume {attempt.number - 1}"
        line = (
            f"- {what} ({attempt.run_id}, {clock(attempt.started)}-{clock(attempt.ended)}): {attempt.outcome}"
        )
        out.append(line + "".join(f"; {_line(f)}" for f in attempt.failures))
    out += [""]
    out += ["## Preflight findings ignored with --ignore-preflight-errors", ""]
    out += [f"- {f.check} on {f.server}: {_line(f.detail)} (run {f.attempt})" for f in report.ignored] or [
        "- none"
    ]
    out += ["", "## Final validation", ""]
    if report.validation is None:
        out += ["No validation ran.", ""]
    else:
        v = report.validation
        out += [
            f"{v.step}: **{v.outcome}** at {moment(v.at)}" + (f": {_line(v.detail)}" if v.detail else ""),
            "",
        ]
    steps = [
        [str(s.attempt), s.step, s.kind, ", ".join(s.servers), clock(s.start), clock(s.end),
         length(s.end - s.start), s.outcome + (f": {s.error}" if s.error else ""), f"`{s.command}`"]
        for s in report.steps
    ]  # fmt: skip
    out += ["## Steps", "", *_table(["run", "step", "kind", "servers", "start", "end", "length", "outcome",
                                     "command"], steps)]  # fmt: skip
    if report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(out)
