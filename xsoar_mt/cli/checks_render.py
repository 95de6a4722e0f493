"""Rich rendering of preflight reports, the communication matrix, status and validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from xsoar_mt.checks.model import Finding, FindingVerdict, PathResult, PathState
from xsoar_mt.cli.render import names

if TYPE_CHECKING:
    from xsoar_mt.checks import PreflightReport
    from xsoar_mt.status import StatusReport
    from xsoar_mt.validation import ValidationReport

_VERDICT_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "ignored": "magenta"}
_SKEW_STYLE = {"ok": "green", "degraded": "yellow", "unsupported": "bold red"}
_PATH_STYLE = {
    "open": "green",
    "refused": "bold red",
    "timeout": "bold red",
    "untested": "yellow",
    "stopped": "yellow",
}


def render_preflight(
    report: PreflightReport, out: Console, *, verbose: bool = False, matrix: bool = False
) -> None:
    """Short by default: one line per check with its counts, then each warning and failure, identical
    ones across servers on one line naming them. `verbose`: every finding on every server."""
    servers = len({f.server for f in report.findings if f.check == "ssh"})
    out.print(
        Text.assemble(("Preflight checks for ", "bold"), (report.target, "bold"), f" on {servers} servers")
    )
    if verbose:
        _every_finding(report, out)
    else:
        _counts(report, out)
        _problems(report, out)
    closed = [p for p in report.paths if p.link.required and p.state is not PathState.OPEN]
    if matrix or verbose:
        render_matrix(report.paths, out)
    elif closed:
        sources, targets = {p.link.source for p in closed}, {p.link.target for p in closed}
        shown = [p for p in report.paths if p.link.source in sources and p.link.target in targets]
        render_matrix(shown, out, "Communication matrix: the paths not open (every path: --matrix)")
    if report.ignored:
        out.print(f"[magenta]Failures of these checks are ignored as asked:[/] {', '.join(report.ignored)}")
    if report.ok:
        out.print(f"[green]Nothing blocks an upgrade to {report.target}.[/] ({report.seconds:.1f} s)")
    else:
        out.print(
            f"[bold red]{len(report.blocking)} finding(s) block the upgrade.[/] Fix them, or ignore skippable "
            "checks with --ignore-preflight-errors=NAME,... (mandatory: ssh, sudo, version, working-directory)"
        )


def _counts(report: PreflightReport, out: Console) -> None:
    counts: dict[str, dict[str, int]] = {}
    for finding in report.findings:
        row = counts.setdefault(finding.check, {})
        row[finding.verdict.value] = row.get(finding.verdict.value, 0) + 1
    verdicts = ["pass", "warn", "fail"] + (["ignored"] if report.ignored else [])
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    table.add_column("check")
    for verdict in verdicts:
        table.add_column(verdict, justify="right")
    for check, row in counts.items():
        table.add_row(
            check,
            *(f"[{_VERDICT_STYLE[v]}]{row[v]}[/]" if row.get(v) else "[dim]-[/]" for v in verdicts),
        )
    out.print(table)


def _problems(report: PreflightReport, out: Console) -> None:
    """Each warning, failure and ignored failure; those with the same check, verdict, headline and fix
    on several servers are one line naming the servers."""
    grouped: dict[tuple[str, str, str, str], list[Finding]] = {}
    for finding in report.findings:
        if finding.verdict is not FindingVerdict.PASS:
            key = (finding.verdict.value, finding.check, finding.headline, finding.fix)
            grouped.setdefault(key, []).append(finding)
    order = {"fail": 0, "ignored": 1, "warn": 2}
    for (verdict, check, headline, fix), findings in sorted(grouped.items(), key=lambda kv: order[kv[0][0]]):
        detail = findings[0].detail if len(findings) == 1 else headline
        where = names([f.server for f in findings])
        out.print(Text.assemble((verdict, _VERDICT_STYLE[verdict]), " ", (check, "bold"), f" on {where}"))
        out.print(Text(f"  {detail}"))
        if fix:
            out.print(Text(f"  fix: {fix}", style="dim"))
    if any(len(f) > 1 and any(x.detail != x.headline for x in f) for f in grouped.values()):
        out.print(Text("(each server's own facts: --verbose)", style="dim"))


def _every_finding(report: PreflightReport, out: Console) -> None:
    table = Table(title_justify="left")
    for column in ("check", "server", "verdict", "detail"):
        table.add_column(column, overflow="fold")
    for finding in report.findings:
        style = _VERDICT_STYLE[finding.verdict.value]
        detail = Text(finding.detail)
        if finding.fix and finding.verdict is not FindingVerdict.PASS:
            detail.append(f"\nfix: {finding.fix}", style="dim")
        table.add_row(finding.check, finding.server, f"[{style}]{finding.verdict.value}[/]", detail)
    out.print(table)


def render_matrix(paths: Sequence[PathResult], out: Console, title: str = "Communication matrix") -> None:
    if not paths:
        return
    sources = list(dict.fromkeys(p.link.source for p in paths))
    targets = list(dict.fromkeys(p.link.target for p in paths))
    cells = {(p.link.source, p.link.target): p for p in paths}
    out.print(Text(title, style="bold"))
    out.print(Text("from row to column; * = not required", style="dim"))
    table = Table()
    table.add_column("from \\ to")
    for target in targets:
        table.add_column(target, overflow="fold")
    for source in sources:
        row = [source]
        for target in targets:
            path = cells.get((source, target))
            if path is None:
                row.append("[dim]-[/]")
                continue
            mark = "" if path.link.required else "*"
            style = _PATH_STYLE[path.state.value] if path.link.required else "dim"
            row.append(f"[{style}]{path.state.value}{mark}[/]\n[dim]{path.link.port}[/]")
        table.add_row(*row)
    out.print(table)


def render_status(report: StatusReport, out: Console) -> None:
    """One row per server. The version's source (api, marker, state, inventory) when the report has it;
    skew `unknown` when the report has no verdict for the server (its version is not known)."""
    sourced = any(row.source for row in report.servers)
    out.print(Text(f"Status of {report.deployment}", style="bold"))
    table = Table()
    columns = ["server", "role", "group", "version", *(["source"] if sourced else []), "service", "reachable"]
    for column in (*columns, "skew", "detail"):
        table.add_column(column, overflow="fold")
    for row in report.servers:
        service = {True: "[green]running[/]", False: "[red]stopped[/]", None: "[yellow]unknown[/]"}[
            row.running
        ]
        reachable = "[green]yes[/]" if row.reachable else "[bold red]no[/]"
        skew = f"[{_SKEW_STYLE[row.skew.value]}]{row.skew.value}[/]" if row.skew else "[yellow]unknown[/]"
        source = [row.source or "-"] if sourced else []
        table.add_row(
            row.server,
            row.role,
            row.group,
            str(row.version or "-"),
            *source,
            service,
            reachable,
            skew,
            Text(row.detail),
        )
    out.print(table)
    verdict = report.skew.value if report.skew else "unknown"
    style = _SKEW_STYLE.get(verdict, "yellow")
    out.print(f"Skew against main: [{style}]{verdict}[/]")
    for reason in report.skew_reasons:
        out.print(Text(f"  - {reason}"))
    if report.degraded_functions:
        out.print("[yellow]While a host lags main, these do not work:[/]")
        for function in report.degraded_functions:
            out.print(f"  - {function}")


def render_validation(report: ValidationReport, out: Console) -> None:
    table = Table(
        title=f"Validation of {report.deployment} (expected {report.expected or 'unknown'})",
        title_justify="left",
        title_style="bold",
    )
    for column in ("check", "subject", "result", "detail"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        mark = "[green]ok[/]" if result.ok else "[bold red]fail[/]"
        table.add_row(result.check, result.subject, mark, escape(result.detail))
    out.print(table)
    out.print("[green]Every check passed.[/]" if report.ok else "[bold red]Validation failed.[/]")
