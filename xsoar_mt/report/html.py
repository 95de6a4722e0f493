"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""

from __future__ import annotations

from html import escape

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
from xsoar_mt.report.timeline import legend, render_timeline

# Nothing but inline styles and data: the page can load nothing from anywhere, even if edited later.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1c2833; max-width: 1180px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #cfd8dc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eceff1; } tr.failed td { background: #fdecea; } tr.unfinished td { background: #fff8e1; }
code { font-size: 12px; word-break: break-all; }
.outcome { font-weight: 600; } .outcome.succeeded { color: #2e7d32; } .outcome.bad { color: #c62828; }
.timeline text { font-size: 11px; fill: #263238; } .timeline .row-label { font-size: 12px; }
.timeline .tick { stroke: #cfd8dc; stroke-width: 1; } .timeline .tick-label { fill: #607d8b; }
.timeline .stretch { font-weight: 600; } .timeline .break { stroke: #455a64; fill: none; stroke-width: 2; }
.timeline .break-line { stroke: #455a64; stroke-dasharray: 2 3; }
.timeline .mark { stroke: #1565c0; stroke-dasharray: 5 3; stroke-width: 1.5; }
.timeline .mark-label { fill: #1565c0; } .timeline .failed-label { fill: #c62828; font-weight: 600; }
.timeline .window-end { stroke: #c62828; stroke-width: 2; stroke-dasharray: 6 3; }
.timeline .window-label { fill: #c62828; font-weight: 600; }
.legend { font-size: 12px; } .key { margin-right: 14px; white-space: nowrap; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
.swatch.dashed { border: 1px dashed #37474f; }
.notes { color: #6d4c41; }
"""


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """A table of already escaped cells."""
    out = ["<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for index, row in enumerate(rows):
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        out.append(f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render_html(report: Report) -> str:
    e = escape
    parts = _head(report)
    parts += ["<h2>Timeline</h2>", render_timeline(report), legend()]
    parts += ["<h2>Who ran it</h2>", _table(["run", "details"], [[e(a), e(b)] for a, b in who(report)])]
    parts += [
        "<h2>Versions</h2>",
        _table(
            ["server", "group", "before", "after"],
            [
                [e(s.server), e(s.group), e(s.before or "unknown"), e(s.after or "unknown")]
                for s in report.servers
            ],
        ),
    ]
    parts += ["<h2>Tenants</h2>", _tenants(report)]
    parts += _runs(report)
    parts += ["<h2>Steps</h2>", _steps(report)]
    if report.notes:
        parts.append('<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in report.notes))
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _head(report: Report) -> list[str]:
    """The page's head, the title and the summary: the outcome, when, the estimate and the window."""
    e = escape
    bad = "succeeded" if report.outcome == "succeeded" else "bad"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        f"<title>xsoar-mt report: {e(report.deployment)} to {e(report.target)} ({e(report.upgrade)})</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Upgrade of {e(report.deployment)} to {e(report.target)}</h1>",
        f'<p>Upgrade {e(report.upgrade)}: <span class="outcome {bad}">{e(report.outcome)}</span>. '
        f"From {e(moment(report.started))} to {e(moment(report.ended))} "
        f"({e(length(report.ended - report.started))}, in {len(report.attempts)} "
        f"run{'s' if len(report.attempts) != 1 else ''}).",
    ]
    if report.estimated_minutes is not None:
        parts.append(f" The plan estimated {e(minutes(report.estimated_minutes))}.")
    if report.window_end is not None:
        parts.append(f" The maintenance window was set to end at {e(moment(report.window_end))}.")
    parts.append("</p>")
    return parts


def _tenants(report: Report) -> str:
    """Each tenant's windows down and degraded, measured and estimated."""
    e = escape
    if not report.tenants:
        return "<p>Tenants are not known for this report (no inventory).</p>"
    rows = []
    for t in report.tenants:
        down, lag = estimated(t)
        rows.append(
            [
                e(t.tenant),
                e(t.group),
                e(windows(t.outages, report)),
                e(total(t.outages, report)),
                e(down),
                e(windows(t.degraded, report)),
                e(total(t.degraded, report)),
                e(lag),
            ]
        )
    return _table(list(TENANT_COLUMNS), rows)


def _runs(report: Report) -> list[str]:
    """The runs and their failures, the preflight findings ignored, and the final validation."""
    e = escape
    parts = ["<h2>Interruptions and resumes</h2><ul>"]
    for a in report.attempts:
        what = "The run" if a.number == 1 else f"Resume {a.number - 1}"
        failures = "".join(f"; {e(f)}" for f in a.failures)
        parts.append(
            f"<li>{what} ({e(a.run_id)}, {time_of_day(a.started)}-{time_of_day(a.ended)} UTC): "
            f"<b>{e(a.outcome)}</b>{failures}</li>"
        )
    parts.append("</ul><h2>Preflight findings ignored with --ignore-preflight-errors</h2><ul>")
    parts += [
        f"<li>{e(f.check)} on {e(f.server)}: {e(f.detail)} (run {f.attempt})</li>" for f in report.ignored
    ]
    parts.append("" if report.ignored else "<li>none</li>")
    parts.append("</ul><h2>Final validation</h2>")
    if report.validation is None:
        parts.append("<p>No validation ran.</p>")
    else:
        v = report.validation
        detail = f": {e(v.detail)}" if v.detail else ""
        parts.append(f"<p>{e(v.step)}: <b>{e(v.outcome)}</b> at {e(moment(v.at))}{detail}</p>")
    return parts


def _steps(report: Report) -> str:
    """Every step on every run, with its command; a failed or unfinished one marked."""
    e = escape
    return _table(
        ["run", "step", "kind", "servers", "start", "end", "length", "outcome", "command"],
        [
            [
                str(s.attempt),
                e(s.step),
                e(s.kind),
                e(", ".join(s.servers)),
                time_of_day(s.start),
                time_of_day(s.end),
                e(length(s.end - s.start)),
                e(s.outcome + (f": {s.error}" if s.error else "")),
                f"<code>{e(s.command)}</code>",
            ]
            for s in report.steps
        ],
        [s.outcome if s.outcome != "ok" else "" for s in report.steps],
    )
