"""Rich rendering of preflight reports, the communication matrix, status and validation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

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


def _console() -> Console:
    return Console(highlight=False)


def render_preflight(report: PreflightReport, out: Console) -> None:
    table = Table(title=f"Preflight checks for {report.target}", title_justify="left", title_style="bold")
    for column in ("check", "server", "verdict", "detail"):
        table.add_column(column, overflow="fold")
    for finding in report.findings:
        style = _VERDICT_STYLE[finding.verdict.value]
        detail = escape(finding.detail) + (
            f"\n[dim]fix: {escape(finding.fix)}[/]" if finding.fix and finding.verdict.value != "pass" else ""
        )
        table.add_row(finding.check, finding.server, f"[{style}]{finding.verdict.value}[/]", detail)
    out.print(table)
    render_matrix(report, out)
    if report.ignored:
        out.print(f"[magenta]Failures of these checks are ignored as asked:[/] {', '.join(report.ignored)}")
    if report.ok:
        out.print(f"[green]Nothing blocks an upgrade to {report.target}.[/] ({report.seconds:.1f} s)")
    else:
        out.print(
            f"[bold red]{len(report.blocking)} finding(s) block the upgrade.[/] Fix them, or ignore skippable "
            "checks with --ignore-preflight-errors=NAME,... (mandatory: ssh, sudo, version)"
        )


def render_matrix(report: PreflightReport, out: Console) -> None:
    if not report.paths:
        return
    sources = list(dict.fromkeys(p.link.source for p in report.paths))
    targets = list(dict.fromkeys(p.link.target for p in report.paths))
    cells = {(p.link.source, p.link.target): p for p in report.paths}
    table = Table(
        title="Communication matrix (from row to column; * = not required)",
        title_justify="left",
        title_style="bold",
    )
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
    table = Table(title=f"Status of {report.deployment}", title_justify="left", title_style="bold")
    for column in ("server", "role", "group", "version", "service", "reachable", "skew", "detail"):
        table.add_column(column, overflow="fold")
    for row in report.servers:
        service = {True: "[green]running[/]", False: "[red]stopped[/]", None: "[yellow]unknown[/]"}[
            row.running
        ]
        reachable = "[green]yes[/]" if row.reachable else "[bold red]no[/]"
        skew = f"[{_SKEW_STYLE[row.skew.value]}]{row.skew.value}[/]" if row.skew else "[yellow]unknown[/]"
        table.add_row(
            row.server,
            row.role,
            row.group,
            f"{row.version} ({row.source})" if row.version else "-",
            service,
            reachable,
            skew,
            escape(row.detail),
        )
    out.print(table)
    verdict = report.skew.value if report.skew else "unknown"
    style = _SKEW_STYLE.get(verdict, "yellow")
    out.print(f"Skew against main: [{style}]{verdict}[/]")
    for reason in report.skew_reasons:
        out.print(f"  - {escape(reason)}")
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
