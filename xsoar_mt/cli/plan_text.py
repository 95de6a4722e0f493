"""The plan as text: a summary first (its size, the night's length, how long hosts lag main, where the
window closes), then one line per group per hop (per wave) and each command once; or, with --detail, every
step with its command. Also the tenant-impact table and CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain, groupby
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from xsoar_mt.bulk import without_gc_passes
from xsoar_mt.cli.render import names
from xsoar_mt.estimate import (
    MAIN,
    PREPARE_PARALLEL,
    Estimate,
    ImpactWindow,
    TenantImpact,
    Window,
    estimate,
    hours_and_minutes,
)
from xsoar_mt.installer import upload_source
from xsoar_mt.inventory import Inventory, Topology
from xsoar_mt.observed import Prepared, stamp
from xsoar_mt.plan import Action, Phase, PhaseKind, Plan, Step
from xsoar_mt.releases import Version
from xsoar_mt.skew import SkewVerdict
from xsoar_mt.window import Closing

VERDICT_STYLE = {SkewVerdict.OK: "green", SkewVerdict.DEGRADED: "yellow", SkewVerdict.UNSUPPORTED: "bold red"}
_KIND = {Topology.SINGLE: "single", Topology.HA: "HA group", Topology.DR: "DR pair"}
_MINUTE_LABELS = {"healthy": "wait-healthy"}  # durations keys shown as the plan's action names


@without_gc_passes
def render_plan(
    plan: Plan,
    inventory: Inventory,
    out: Console,
    *,
    saved_to: Path | None = None,
    detail: bool = False,
    timing: Estimate | None = None,
    window: tuple[datetime, datetime, Closing | None] | None = None,
    prepared: Sequence[Prepared] = (),
) -> None:
    """Summary first; then per group and hop one line (or every step, `detail`); commands whole.

    `timing` is the estimate to show (by default from the inventory's durations, one group at a time);
    `window` (now, when the window ends, where it closes) adds where the window closes; `prepared`, the
    installers `upgrade prepare` left that the plan's fetches will find."""
    timing = timing or estimate(plan, inventory.durations)
    _summary(out, plan, inventory, timing)
    for record in prepared:
        out.print(
            Text(
                f"{record.server}: installer for {record.release} prepared at {stamp(record.at)} "
                f"(sha256 {record.sha256[:12]}…)"
            )
        )
    if window is not None and not plan.nothing_to_do:
        _window_end(out, timing, *window)
    closes = window[2] if window is not None else None
    if not plan.nothing_to_do:
        first = _first_numbers(plan)
        if detail:
            _every_step(out, plan, first)
        else:
            _by_group(out, plan, inventory, timing, first, closes)
            out.print("Every step with its command: [bold]--detail[/]; as data: [bold]-o json[/] or -o yaml.")
    if saved_to is not None:
        run = f"xsoar-mt upgrade run -i {inventory.path} --plan {saved_to}"
        out.print(Text(f"Plan saved to {saved_to}; run exactly it with `{run}`."))


# -- summary ----------------------------------------------------------------------------------------


def render_plan_summary(plan: Plan, inventory: Inventory, out: Console, timing: Estimate) -> None:
    """The plan's summary alone, as `upgrade run` shows it before the first change."""
    _summary(out, plan, inventory, timing)


def _summary(out: Console, plan: Plan, inventory: Inventory, timing: Estimate) -> None:
    start = _start_release(plan, inventory)
    scope = f"scope: {plan.scope.describe()}"
    if plan.hops:
        path = " -> ".join(([start] if start else []) + list(plan.hops))
        head = f"{path} ({_count(len(plan.hops), 'hop')}; {scope})"
    else:
        head = f"to {plan.target} ({scope})"
    out.print(Text.assemble(("Upgrade plan", "bold"), f" for {plan.deployment}: {head}"))
    if plan.nothing_to_do:
        out.print(f"Nothing to do: every server in scope already runs {plan.target}.")
        _skipped_and_warnings(out, plan)
        return
    groups = list(dict.fromkeys(p.group for p in plan.phases if p.group is not None))
    tenants = sum(len(inventory.group(g).tenants) for g in groups)
    upgrading = plan.servers_to_upgrade
    out.print(
        f"  {_count(len(upgrading), 'server')} to upgrade in {_count(len(groups), 'group')} "
        f"({_shapes(inventory, groups)}), {_count(tenants, 'tenant')}; {plan.step_count} steps ({_step_split(plan)})"
    )
    out.print(
        f"  expected length of the night: [bold]{hours_and_minutes(timing.minutes)}[/], {pace(plan, timing)}"
    )
    minutes = timing.durations.minutes
    given = sorted(timing.durations.given, key=list(minutes).index)
    out.print(
        "    minutes per step: "
        + ", ".join(f"{_MINUTE_LABELS.get(k, k)} {v:g}" for k, v in minutes.items())
        + (
            f" ({', '.join(given)} from the inventory's durations, the rest defaults)"
            if given
            else " (defaults)"
        )
    )
    learned = [s for s in timing.durations.own if s in {x.name for x in inventory.servers}]
    if learned:
        out.print(
            f"    learned durations: {_count(len(learned), 'server')}'s own stop, install, start and wait-healthy "
            "minutes, measured by earlier runs (the local record), are used for them"
        )
    for window in timing.windows:
        out.print(f"  {_window(window)}")
    if timing.windows and plan.degraded_functions:
        out.print("  [yellow]while hosts lag main (skew degraded), these do not work:[/]")
        for function in plan.degraded_functions:
            out.print(f"    - {function}")
    _skipped_and_warnings(out, plan)


def pace(plan: Plan, timing: Estimate) -> str:
    """How the host groups go: one at a time, up to N at once, or in waves."""
    parallel = timing.parallel
    if plan.waves is None:
        return (
            "host groups one at a time" if parallel in (None, 1) else f"up to {parallel} host groups at once"
        )
    sizes = [len(plan.waves.members(n)) for n in sorted(set(plan.waves.groups.values()))]
    listed = ", ".join(str(n) for n in sizes[:-1]) + (" and " if len(sizes) > 1 else "") + str(sizes[-1])
    at_once = (
        "each wave all at once"
        if parallel is None
        else "one at a time"
        if parallel == 1
        else f"up to {parallel} at once"
    )
    return f"host groups in {_count(len(sizes), 'wave')} of {listed} (--waves {plan.waves.spec}), {at_once}"


def _window_end(out: Console, timing: Estimate, now: datetime, end: datetime, where: Closing | None) -> None:
    """Where the window closes on the estimate, or that the whole run fits in it."""
    left = (end - now).total_seconds() / 60
    head = f"  window: ends at {end.strftime('%H:%M')} ({hours_and_minutes(left)} from now)"
    if where is None:
        spare = left - timing.minutes
        out.print(
            f"{head}; by the estimate the whole run fits, with [bold]{hours_and_minutes(spare)}[/] to spare"
        )
        return
    if where.before_prepare:
        out.print(
            f"{head}; [bold red]by the estimate not even {where.phase.id} fits[/] (it would end at "
            f"{_at(where.ends)}): the run would change nothing"
        )
        return
    wave = f" (wave {where.phase.wave})" if where.phase.wave is not None else ""
    out.print(
        f"{head}; [bold yellow]by the estimate the run stops before {where.phase.id}{wave}[/], which would "
        f"start at {_at(where.starts)} and end at {_at(where.ends)}: {_count(len(where.done), 'group upgrade')} "
        f"done, {len(where.left)} left for another night (--resume)"
    )


def _start_release(plan: Plan, inventory: Inventory) -> str | None:
    """The oldest release among the servers the plan upgrades, as the plan's basis records them."""
    versions = plan.basis.versions
    written = {versions[s] for s in plan.servers_to_upgrade if s in versions}  # a few, for many servers
    releases = {Version.parse(v).release for v in written}
    return min(releases, key=inventory.releases.index) if releases else None


def _shapes(inventory: Inventory, groups: Sequence[str]) -> str:
    parts = []
    if MAIN in groups:
        parts.append(f"main: {_KIND[inventory.group(MAIN).topology]}")
    counts: dict[str, int] = {}
    for name in groups:
        if name != MAIN:
            kind = _KIND[inventory.group(name).topology]
            counts[kind] = counts.get(kind, 0) + 1
    if counts:
        plural = {"single": "single", "HA group": "HA groups", "DR pair": "DR pairs"}
        parts.append("hosts: " + ", ".join(f"{n} {plural[k] if n > 1 else k}" for k, n in counts.items()))
    return "; ".join(parts)


def _step_split(plan: Plan) -> str:
    counts: dict[str, int] = {}
    for phase in plan.phases:
        kind = "upgrade" if phase.group is not None else "validate" if phase.wave is not None else phase.id
        counts[kind] = counts.get(kind, 0) + len(phase.steps)
    return ", ".join(f"{k} {n}" for k, n in counts.items())


def _window(window: Window) -> str:
    lag = f"hop {window.release}: hosts lag main (skew degraded)"
    if window.end is None:
        return f"{lag} from {_at(window.start)} on, after this plan too, until they are upgraded as well"
    assert window.minutes is not None
    since = f"from main's upgrade at {_at(window.start)}" if window.start else "from the start of the run"
    return (
        f"{lag} for [bold]{hours_and_minutes(window.minutes)}[/]: {since} until the last of "
        f"{_count(window.host_groups, 'host group')} is upgraded at {_at(window.end)}"
    )


def _skipped_and_warnings(out: Console, plan: Plan) -> None:
    reasons: dict[str, list[str]] = {}
    for skipped in plan.skipped:
        reasons.setdefault(skipped.reason, []).append(skipped.server)
    for reason, servers in reasons.items():
        out.print(Text(f"  skipped ({reason}): {names(servers)}"))
    for warning in plan.warnings:
        out.print(Text.assemble(("warning:", "yellow"), f" {warning}"))


# -- one line per group per hop ---------------------------------------------------------------------


def _by_group(
    out: Console,
    plan: Plan,
    inventory: Inventory,
    timing: Estimate,
    first: dict[str, int],
    closes: Closing | None = None,
) -> None:
    """Phases outside any group collapsed; each run of group phases of one hop (one wave) as a table; the
    commands once, after the last group phase; where the window closes, a line."""
    last_group = next((p for p in reversed(plan.phases) if p.group is not None), None)
    for hop, run in groupby(plan.phases, key=_hop_of):
        phases = list(run)
        if hop is None:
            for phase in phases:
                _collapsed(out, phase, inventory, timing, first[phase.id])
            continue
        _hop_rows(out, plan, inventory, timing, first, closes, hop, phases)
        if phases[-1] is last_group:
            _commands(out, plan)


def _hop_of(phase: Phase) -> tuple[str | None, int | None] | None:
    """The (release, wave) of a group phase; None for a phase outside any group."""
    return None if phase.group is None else (phase.release, phase.wave)


def _hop_rows(
    out: Console,
    plan: Plan,
    inventory: Inventory,
    timing: Estimate,
    first: dict[str, int],
    closes: Closing | None,
    hop: tuple[str | None, int | None],
    phases: Sequence[Phase],
) -> None:
    """One table row per group phase; where the window closes, the rows so far, the line, then the rest."""
    table = _hop_table(plan, hop, timing.parallel)
    rows: list[tuple[str | Text, ...]] = []
    spans = {s.phase.id: s for s in timing.spans}  # one look-up per row: a dict, not Estimate.span's scan
    for phase in phases:
        assert phase.group is not None
        if closes is not None and phase.id == closes.phase.id:
            if rows:
                _print_table(out, table, rows)
                table, rows = _hop_table(plan, hop, timing.parallel, titled=False), []
            out.print(
                Text(
                    f"-- the window closes here: {closes.phase.id} and {_count(len(closes.left) - 1, 'group upgrade')} "
                    "after it are left for another night --",
                    style="bold yellow",
                )
            )
        span = spans[phase.id]
        steps = phase.steps
        servers = _servers(steps)
        rows.append(
            (
                _numbers(first[phase.id], len(steps)),
                _group_label(inventory, phase.group),
                _literal(names(servers)),
                _literal(sequence(phase, servers)),
                _VERDICT_MARKUP[steps[-1].verdict_after],
                _at(span.start),
                hours_and_minutes(span.down),
            )
        )
    _print_table(out, table, rows)


def _hop_table(
    plan: Plan, hop: tuple[str | None, int | None], parallel: int | None = None, titled: bool = True
) -> Table:
    release, wave = hop
    phases = [p for p in plan.phases if p.group is not None and (p.release, p.wave) == hop]
    hosts = sum(1 for p in phases if p.group != MAIN)
    pace = "one at a time" if parallel in (None, 1) else f"up to {parallel} at once"
    if wave is not None:
        pace = "all at once" if parallel is None or parallel >= hosts else pace
    parts = ["main"] if any(p.group == MAIN for p in phases) else []
    if hosts:
        parts.append(_count(hosts, "host group") + (f", {pace}" if hosts > 1 or wave is None else ""))
    title = f"To {release}: {', then '.join(parts)}"
    if wave is not None and plan.waves is not None:
        title = f"Wave {wave} of {plan.waves.count} to {release}: {', then '.join(parts)}"
    table = Table(
        title=title if titled else None,
        box=None,
        padding=(0, 1),
        pad_edge=False,
    )
    # The last column is right-justified, so no line ends in padding.
    for column in ("steps", "group", "servers", "in order", "skew after", "starts", "down"):
        right = column in ("steps", "starts", "down")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    return table


_VERDICT_MARKUP = {verdict: f"[{style}]{verdict.value}[/]" for verdict, style in VERDICT_STYLE.items()}


def _literal(text: str) -> str | Text:
    """`text` to be shown as it is: as a string when Rich would read nothing in it (no markup `[`, no
    `:emoji:` colon), else as Text. A string is cheaper to lay out, and a thousand rows have two each."""
    return text if "[" not in text and ":" not in text else Text(text)


def _group_label(inventory: Inventory, group: str) -> str:
    return f"{group} ({_KIND[inventory.group(group).topology]})"


def sequence(phase: Phase, servers: Sequence[str] | None = None) -> str:
    """The phase's actions in order. A step on every server of the phase (`servers`, when the caller has
    them already) is its action alone; consecutive steps on the same part of the group are joined with +
    and name those servers."""
    everyone = set(_servers(phase.steps) if servers is None else servers)
    size = len(everyone)
    parts: list[str] = []
    steps = phase.steps
    i = 0
    while i < len(steps):
        if len(steps[i].servers) == size and set(steps[i].servers) == everyone:
            parts.append(_ACTION_NAME[steps[i].action])
            i += 1
            continue
        j = i
        while j < len(steps) and steps[j].servers == steps[i].servers:
            j += 1
        parts.append("+".join(_ACTION_NAME[s.action] for s in steps[i:j]) + " " + ", ".join(steps[i].servers))
        i = j
    return " -> ".join(parts)


_ACTION_NAME = {action: action.value for action in Action}  # an enum's .value is slow, read per step


def _commands(out: Console, plan: Plan) -> None:
    """Each command of the group phases once, labelled by action (and release where they differ)."""
    seen: dict[tuple[Action, str], str] = {}
    own: dict[tuple[Action, str, str], list[str]] = {}
    for phase in plan.phases:
        if phase.group is None:
            continue
        for step in phase.steps:
            seen.setdefault((step.action, step.command), step.release)
            for server, command in step.per_server.items():
                own.setdefault((step.action, step.release, command), []).append(server)
    if not seen:
        return
    per_action: dict[Action, int] = {}
    for action, _ in seen:
        per_action[action] = per_action.get(action, 0) + 1
    rows = [(a.value + (f" {r}" if per_action[a] > 1 else ""), c) for (a, c), r in seen.items()]
    rows += [(f"{a.value} {r} on {names(servers)}", c) for (a, r, c), servers in own.items()]
    width = max(len(label) for label, _ in rows)
    out.print(Text("Commands (each shown once; {server} and {address} are each server's own)", style="bold"))
    for label, command in rows:
        out.print(Text(f"  {label:<{width}}  {command}"))


# -- phases outside any group: prepare, validate, recovery ------------------------------------------


def _collapsed(out: Console, phase: Phase, inventory: Inventory, timing: Estimate, first: int) -> None:
    """Identical steps (same action, release and command) on different servers as one line naming the
    servers, with the command once beneath."""
    lines: dict[tuple[Action, str, str, tuple[tuple[str, str], ...]], list[Step]] = {}
    for step in phase.steps:
        key = (step.action, step.release, step.command, tuple(sorted(step.per_server.items())))
        lines.setdefault(key, []).append(step)
    span = timing.span(phase.id)
    at_once = f", up to {PREPARE_PARALLEL} at once" if phase.kind is PhaseKind.PREPARE else ""
    when = f"from {_at(span.start)}, about {hours_and_minutes(span.end - span.start)}"
    out.print(
        Text.assemble(
            (phase.title, "bold"),
            f" ({'step' if len(phase.steps) == 1 else 'steps'} {_numbers(first, len(phase.steps))}{at_once}; {when})",
        )
    )
    upload = inventory.installer.delivery == "upload"
    for (action, release, command, per_server), steps in lines.items():
        servers = _servers(steps)
        label = action.value + (f" {release}" if action in (Action.FETCH, Action.INSTALL) else "")
        count = f" ({len(steps)} steps)" if len(steps) > 1 else ""
        out.print(Text(f"  {label}{count} on {names(servers)}"))
        if action is Action.FETCH and upload:
            source = upload_source(inventory.installer, inventory.path, release)
            out.print(
                Text(
                    f"      upload of {source} over SFTP unless the server holds it already, then the sha256 check:"
                )
            )
        out.print(Text(f"      {command}"))
        for server, own in per_server:
            out.print(Text(f"      on {server}: {own}"))


# -- every step (--detail) --------------------------------------------------------------------------


def _every_step(out: Console, plan: Plan, first: dict[str, int]) -> None:
    for phase in plan.phases:
        table = Table(title=phase.title, expand=False)
        table.add_column("#", justify="right")
        table.add_column("action")
        table.add_column("server(s)", overflow="fold")
        table.add_column("why", overflow="fold")
        table.add_column("command", overflow="fold")
        table.add_column("skew after")
        for number, step in enumerate(phase.steps, first[phase.id]):
            table.add_row(
                str(number),
                step.action.value,
                ", ".join(step.servers),
                Text(step.why),
                _command_cell(step),
                f"[{VERDICT_STYLE[step.verdict_after]}]{step.verdict_after.value}[/]",
            )
        _print_table(out, table)


def _command_cell(step: Step) -> Text:
    """The step's command (as text, never markup), then any server's own command beneath it."""
    cell = Text(step.command)
    for server, own in sorted(step.per_server.items()):
        cell.append(f"\non {server}: ", style="italic")
        cell.append(own)
    return cell


# -- small pieces -----------------------------------------------------------------------------------


def _print_table(out: Console, table: Table, rows: Sequence[Sequence[str | Text]] = ()) -> None:
    """The title on a line of its own (Rich would pad it to the table's width), then the table with `rows`
    added."""
    if table.title:
        out.print(Text(str(table.title), style="bold"))
        table.title = None
    lines = _plain_lines(out, table, rows)
    if lines is not None:
        out.print(_Lines(lines), crop=False)  # they fit the console already: no line-by-line crop pass
        return
    for row in rows:
        table.add_row(*row)
    out.print(table)


class _Lines:
    """Lines of text printed as they are: no markup, no wrapping (they fit, see _plain_lines)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        newline = Segment.line()
        for line in self.lines:
            yield Segment(line)
            yield newline


def _plain_lines(out: Console, table: Table, more: Sequence[Sequence[str | Text]] = ()) -> list[str] | None:
    """The lines Rich would print for a borderless table (with the rows `more`) of one-line cells that fits
    the console without colour, laid out directly; None for any other table (Rich lays it out).

    Rich measures and wraps every cell, about a millisecond per row: a 1,000-server plan spent most of
    its time there. This gives the same text: each column as wide as its widest cell, cells left- or
    right-justified, two spaces between columns (padding 1 on each inner side, none at the edges)."""
    if out.color_system is not None or not _plain_shape(table):
        return None
    markup: dict[str, str] = {}  # a column's markup repeats (the verdicts): each read once
    rows = [[c.header for c in table.columns], *zip(*(c.cells for c in table.columns), strict=True), *more]
    plain: list[list[str]] = []
    for row in rows:
        cells = [_plain_cell(out, cell, markup) for cell in row]
        if any(c is None for c in cells):
            return None
        plain.append([c for c in cells if c is not None])
    lengths = [[len(c) if c.isascii() else cell_len(c) for c in row] for row in plain]
    widths = [max(column) for column in zip(*lengths, strict=True)]
    if sum(widths) + 2 * (len(widths) - 1) > out.width or 0 in widths:
        return None
    right = [c.justify == "right" for c in table.columns]
    return [
        "  ".join(
            " " * (w - n) + cell if r else cell + " " * (w - n)
            for cell, n, w, r in zip(row, row_lengths, widths, right, strict=True)
        )
        for row, row_lengths in zip(plain, lengths, strict=True)
    ]


def _plain_shape(table: Table) -> bool:
    """Whether `table` is laid out as _plain_lines assumes: no box, no footer, padding 1 between columns
    only, no row styles, every column at its natural width and justified left or right."""
    return (
        table.box is None
        and table.show_header
        and not table.show_footer
        and not table.show_lines
        and not table.caption
        and not table.expand
        and table.width is None
        and table.min_width is None
        and table.padding == (0, 1, 0, 1)
        and not table.pad_edge
        and not table.collapse_padding
        and not table.leading
        and not table.row_styles
        and not any(row.style or row.end_section for row in table.rows)
        and all(
            c.justify in ("left", "right")
            and c.width is None
            and c.min_width is None
            and c.max_width is None
            and c.ratio is None
            and not c.style
            and not c.footer
            for c in table.columns
        )
    )


_EMOJI_CODE = re.compile(r":\S*?:")  # what Rich may read as an emoji code


def _plain_cell(out: Console, cell: object, markup: dict[str, str]) -> str | None:
    """A cell's text (markup and :emoji: codes read as Rich reads them); None when Rich might wrap or trim
    it."""
    if isinstance(cell, str):
        text = cell
        if "[" in cell or (":" in cell and _EMOJI_CODE.search(cell)):
            text = markup.get(cell) or markup.setdefault(cell, out.render_str(cell).plain)
    elif isinstance(cell, Text) and cell.justify is None and cell.overflow is None:
        text = cell.plain
    else:
        return None
    if text != text.strip() or not text.isprintable():
        return None
    return text


def _servers(steps: Iterable[Step]) -> list[str]:
    return list(dict.fromkeys(chain.from_iterable(step.servers for step in steps)))


def _first_numbers(plan: Plan) -> dict[str, int]:
    """The number of each phase's first step, counting from 1 over the whole plan."""
    out, number = {}, 1
    for phase in plan.phases:
        out[phase.id] = number
        number += len(phase.steps)
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _numbers(first: int, count: int) -> str:
    return str(first) if count == 1 else f"{first}-{first + count - 1}"


def _at(minutes: float) -> str:
    """A moment of the run, `h:mm` after it starts."""
    whole = round(minutes)
    return f"{whole // 60}:{whole % 60:02d}"


# -- tenant impact ----------------------------------------------------------------------------------

IMPACT_COLUMNS = ("tenant", "group", "hop", "wave", "kind", "start", "end", "minutes")


def render_tenant_impact(impact: Sequence[TenantImpact], plan: Plan, out: Console) -> None:
    """One row per tenant: its group (and wave), each window it is down and each it is degraded (per hop,
    h:mm from the start of the run), and the total of each kind, labelled as a total."""
    out.print(
        Text.assemble(
            ("Tenant impact", "bold"),
            f" for {plan.deployment} to {plan.target}: {_count(len(impact), 'tenant')}; times from the start "
            "of the run, each window on its own (hop: start-end); degraded: its host lags main, so some "
            "functions do not work",
        )
    )
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    for column, justify in (("tenant", "left"), ("group", "left"), ("wave", "right"), ("down", "left"),
                            ("down, total", "right"), ("degraded", "left"), ("degraded, total", "right")):  # fmt: skip
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]  # literal above
    for row in impact:
        degraded = row.total_degraded
        table.add_row(
            row.tenant,
            row.group,
            "" if row.wave is None else str(row.wave),
            _windows(row.of("down")),
            hours_and_minutes(row.total_down) if row.of("down") else "-",
            _windows(row.of("degraded")),
            "-" if not row.of("degraded") else "open" if degraded is None else hours_and_minutes(degraded),
        )
    out.print(table)


def _windows(windows: Sequence[ImpactWindow]) -> str:
    """`6.11 0:54-1:16, 6.12 3:06-3:28`; a window still open after the plan: `6.12 from 0:10, after the plan`."""
    if not windows:
        return "-"
    return ", ".join(
        f"{w.hop} {_at(w.start)}-{_at(w.end)}"
        if w.end is not None
        else f"{w.hop} from {_at(w.start)}, after the plan"
        for w in windows
    )


def tenant_impact_csv(impact: Sequence[TenantImpact]) -> str:
    """The tenant impact as CSV, one row per window (minutes from the start of the run), for customer
    notices; a window still open after the plan has no end and no minutes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(IMPACT_COLUMNS)
    for row in impact:
        for window in row.windows:
            data = window.to_dict()
            writer.writerow(
                [
                    row.tenant,
                    row.group,
                    window.hop,
                    "" if row.wave is None else row.wave,
                    window.kind,
                    data["start_minutes"],
                    "" if data["end_minutes"] is None else data["end_minutes"],
                    "" if data["minutes"] is None else data["minutes"],
                ]
            )
    return buffer.getvalue()
