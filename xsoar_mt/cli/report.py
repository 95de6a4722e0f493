"""The `report` command: arguments, one call into xsoar_mt.report, where the files went."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from xsoar_mt.cli.checks import StateDirOption, resolved_state_dir


def register(app: typer.Typer, boundary: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    @app.command("report", short_help="Write the report of an upgrade night (HTML, Markdown, JSON).")
    @boundary
    def report(
        run: Annotated[str, typer.Argument(help="A run id, or `latest`.", metavar="RUN|latest")],
        inventory: Annotated[
            Path | None,
            typer.Option(
                "--inventory", "-i", help="The inventory (its tenants; default: the one the run recorded)."
            ),
        ] = None,
        state_dir: StateDirOption = None,
        out: Annotated[
            Path, typer.Option("--out", help="Folder for all three files, when none of the three is named.")
        ] = Path("."),
        html: Annotated[Path | None, typer.Option("--html", help="Write the HTML page here.")] = None,
        md: Annotated[Path | None, typer.Option("--md", help="Write the Markdown here.")] = None,
        json_file: Annotated[Path | None, typer.Option("--json", help="Write the JSON here.")] = None,
    ) -> None:
        """Read the journal(s) of one upgrade (the run and its resumes) and write its report.

        Without --html, --md or --json, all three are written under --out as
        xsoar-mt-report-RUN.html, .md and .json; with any of them, only those.
        """
        from xsoar_mt.report import ReportFiles, report_upgrade

        files = ReportFiles(html, md, json_file) if (html or md or json_file) else None
        made, written = report_upgrade(resolved_state_dir(state_dir), run, inventory, files, out)
        typer.echo(f"report of upgrade {made.upgrade} ({len(made.attempts)} run(s), {made.outcome}):")
        for path in written:
            typer.echo(f"  {path}")
