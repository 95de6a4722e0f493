"""The night as a picture: inline SVG, one row per server, a bar per step coloured by its kind.

Each attempt (the run, each resume) gets its own stretch of the time axis, in proportion to its length;
the hours between them (a failed night and the resume the next one) are drawn as a break, not to scale.
Bars carry their step, server, attempt, start and end (epoch seconds) as data attributes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from xsoar_mt.report.model import Report, StepRun

# One colour per kind of step; a failure is drawn in red over its bar, so no kind is red.
KIND_COLOURS = {
    "backup": "#7e57c2",
    "fetch-installer": "#42a5f5",
    "stop": "#fb8c00",
    "install": "#00897b",
    "start": "#7cb342",
    "wait-healthy": "#c0ca33",
    "validate": "#5c6bc0",
}
OTHER_COLOUR = "#9e9e9e"
FAILED = "#d32f2f"
WIDTH = 1100
LABELS = 190  # the server names' column
ROW = 24
TOP = 46
BREAK = 28  # the gap drawn between two attempts


@dataclass(frozen=True)
class Axis:
    """Time to x: each attempt's stretch [start, end] maps linearly onto its own part of the width."""

    stretches: tuple[tuple[float, float, float, float], ...]  # (t0, t1, x0, x1)

    @classmethod
    def of(cls, spans: Sequence[tuple[float, float]]) -> Axis:
        spans = [(a, max(b, a + 1.0)) for a, b in spans]  # a stretch of at least a second
        usable = WIDTH - LABELS - 20 - BREAK * (len(spans) - 1)
        total = sum(b - a for a, b in spans) or 1.0
        x = float(LABELS)
        out = []
        for a, b in spans:
            width = usable * (b - a) / total
            out.append((a, b, x, x + width))
            x += width + BREAK
        return cls(tuple(out))

    def x(self, at: float) -> float:
        for t0, t1, x0, x1 in self.stretches:
            if at <= t1 or (t0, t1, x0, x1) == self.stretches[-1]:
                at = min(max(at, t0), t1)
                return x0 + (x1 - x0) * (at - t0) / (t1 - t0)
        return self.stretches[-1][3]  # pragma: no cover  # the loop always returns on the last stretch

    def right_edge(self, at: float) -> float:
        """Where the stretch holding `at` ends on the page."""
        return next((x1 for _, t1, _, x1 in self.stretches if at <= t1), self.stretches[-1][3])

    def covers(self, at: float) -> bool:
        return any(t0 <= at <= t1 for t0, t1, _, _ in self.stretches)


def _time_of_day(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at))


def _tick_step(seconds: float, pixels: float) -> float:
    """A round tick interval leaving about 90 pixels between ticks over a stretch `pixels` wide."""
    most = max(1.0, pixels / 90)
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800):
        if seconds / step <= most:
            return float(step)
    return 3600.0 * math.ceil(seconds / 3600 / most)


def render_timeline(report: Report) -> str:
    """The SVG element (no XML prolog: it is inlined in the HTML)."""
    rows = [s.server for s in report.servers]
    for step in report.steps:
        rows += [s for s in step.servers if s not in rows]
    axis = _axis(report)
    height = TOP + ROW * len(rows) + 44
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="timeline of the upgrade">',
        '<defs><pattern id="failed-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="3" height="6" fill="{FAILED}" opacity="0.55"/></pattern></defs>',
    ]
    bottom = TOP + ROW * len(rows)
    for index, server in enumerate(rows):
        y = TOP + ROW * index
        if index % 2:
            out.append(f'<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="#f4f6f8"/>')
        out.append(f'<text x="8" y="{y + ROW - 8}" class="row-label">{escape(server)}</text>')
    out += _stretches(axis, bottom)
    for step in report.steps:
        out += _bars(step, axis, rows)
    out += _marks(report, axis, bottom)
    out.append("</svg>")
    return "\n".join(out)


def _axis(report: Report) -> Axis:
    """A stretch per attempt; the last one drawn on to the window's end when that comes soon after."""
    spans = [(a.started, a.ended) for a in report.attempts]
    if report.window_end is not None and spans and spans[-1][0] <= report.window_end:
        last = spans[-1]
        if report.window_end - last[1] <= 0.25 * (last[1] - last[0]) + 60:
            spans[-1] = (last[0], max(last[1], report.window_end))
    return Axis.of(spans)


def _stretches(axis: Axis, bottom: int) -> list[str]:
    """Each attempt's label and ticks, and the break before each resume."""
    out = []
    for number, (t0, t1, x0, x1) in enumerate(axis.stretches, 1):
        label = "run" if number == 1 else f"resume {number - 1}"
        out.append(f'<text x="{x0:.1f}" y="14" class="stretch">{label}, from {_time_of_day(t0)} UTC</text>')
        tick = _tick_step(t1 - t0, x1 - x0)
        at = math.ceil(t0 / tick) * tick
        while at <= t1:
            x = axis.x(at)
            out.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{bottom}" class="tick"/>')
            out.append(
                f'<text x="{x:.1f}" y="{bottom + 14}" class="tick-label" text-anchor="middle">{_time_of_day(at)}</text>'
            )
            at += tick
        if number > 1:
            gap = x0 - BREAK / 2
            out.append(f'<path d="M{gap - 4:.1f} {TOP - 8} l8 6 l-8 6 l8 6" class="break"/>')
            out.append(
                f'<line x1="{gap:.1f}" y1="{TOP}" x2="{gap:.1f}" y2="{bottom}" class="break-line" '
                f'data-mark="resume" data-at="{t0:.3f}"/>'
            )
    return out


def _bars(step: StepRun, axis: Axis, rows: list[str]) -> list[str]:
    """The step's bar on each of its servers' rows; a failed one hatched and labelled."""
    out = []
    x0, x1 = axis.x(step.start), axis.x(step.end)
    width = max(x1 - x0, 2.0)
    colour = KIND_COLOURS.get(step.kind, OTHER_COLOUR)
    for server in step.servers:
        y = TOP + ROW * rows.index(server) + 4
        failed = step.outcome == "failed" and (not step.failed_on or server in step.failed_on)
        outcome = "failed" if failed else ("unfinished" if step.outcome == "unfinished" else "ok")
        title = f"{step.step} on {server}: {step.kind}, {_time_of_day(step.start)}-{_time_of_day(step.end)} UTC, {outcome}"
        if failed and step.error:
            title += f": {step.error}"
        dash = ' stroke-dasharray="3 2"' if outcome == "unfinished" else ""
        stroke = f' stroke="{FAILED}" stroke-width="2"' if failed else f' stroke="#37474f"{dash}'
        out.append(
            f'<rect class="bar {outcome}" x="{x0:.2f}" y="{y}" width="{width:.2f}" height="{ROW - 8}" '
            f'fill="{colour}"{stroke} data-step="{escape(step.step)}" data-server="{escape(server)}" '
            f'data-kind="{escape(step.kind)}" data-attempt="{step.attempt}" data-outcome="{outcome}" '
            f'data-start="{step.start:.3f}" data-end="{step.end:.3f}"><title>{escape(title)}</title></rect>'
        )
        if failed:
            out.append(
                f'<rect x="{x0:.2f}" y="{y}" width="{width:.2f}" height="{ROW - 8}" fill="url(#failed-hatch)"/>'
            )
            if x0 + width + 40 <= axis.right_edge(step.start):  # the word beside the bar, else before it
                where = f'x="{x0 + width + 3:.2f}"'
            else:
                where = f'x="{x0 - 3:.2f}" text-anchor="end"'
            out.append(f'<text {where} y="{y + ROW - 12}" class="failed-label">failed</text>')
    return out


def _marks(report: Report, axis: Axis, bottom: int) -> list[str]:
    """The waves and a closed window where they happened, and the maintenance window's end."""
    out = []
    for mark in report.marks:
        if mark.kind == "resume" or not axis.covers(mark.at):
            continue
        x = axis.x(mark.at)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP - 14}" x2="{x:.1f}" y2="{bottom}" class="mark {mark.kind}" '
            f'data-mark="{mark.kind}" data-at="{mark.at:.3f}"/>'
        )
        out.append(f'<text x="{x + 3:.1f}" y="{TOP - 16}" class="mark-label">{escape(mark.label)}</text>')
    if report.window_end is None:
        return out
    if axis.covers(report.window_end):
        x = axis.x(report.window_end)
        out.append(
            f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{bottom}" class="window-end" data-mark="window-end" '
            f'data-at="{report.window_end:.3f}"/>'
        )
        out.append(
            f'<text x="{x - 4:.1f}" y="30" class="window-label" text-anchor="end">window ends '
            f"{_time_of_day(report.window_end)}</text>"
        )
    else:
        out.append(
            f'<text x="{WIDTH - 8}" y="{bottom + 32}" class="window-label" text-anchor="end" '
            f'data-mark="window-end" data-at="{report.window_end:.3f}">the window ends at '
            f"{_time_of_day(report.window_end)} UTC, outside the runs drawn</text>"
        )
    return out


def legend() -> str:
    """The colours, as HTML to set under the picture."""
    items = [
        f'<span class="key"><span class="swatch" style="background:{colour}"></span>{escape(kind)}</span>'
        for kind, colour in KIND_COLOURS.items()
    ]
    items.append(
        f'<span class="key"><span class="swatch" style="background:{FAILED}"></span>failed (hatched, red edge)</span>'
    )
    items.append('<span class="key"><span class="swatch dashed"></span>cut off (no end recorded)</span>')
    return '<p class="legend">' + " ".join(items) + "</p>"
