"""`xsoar-mt report`: the night told from the journal(s) of one upgrade, as HTML, Markdown and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xsoar_mt.report.model import Report, read_report


@dataclass(frozen=True)
class ReportFiles:
    """Where each output goes; None: not written."""

    html: Path | None = None
    markdown: Path | None = None
    json: Path | None = None

    @classmethod
    def under(cls, folder: Path, upgrade: str) -> ReportFiles:
        """The default: all three side by side, named after the upgrade."""
        stem = folder / f"xsoar-mt-report-{upgrade}"
        return cls(stem.with_suffix(".html"), stem.with_suffix(".md"), stem.with_suffix(".json"))


def report_upgrade(
    state_dir: Path,
    which: str,
    inventory_path: Path | None,
    files: ReportFiles | None = None,
    out: Path = Path("."),
) -> tuple[Report, list[Path]]:
    """Read the upgrade `which` (a run id, or `latest`) and write its report; the report and the files."""
    from xsoar_mt.report.html import render_html
    from xsoar_mt.report.markdown import render_markdown
    from xsoar_mt.report.model import report_json
    from xsoar_mt.secrets import REDACTOR

    report = read_report(state_dir, which, inventory_path)
    chosen = files or ReportFiles.under(out, report.upgrade)
    written: list[Path] = []
    for path, render in (
        (chosen.html, render_html),
        (chosen.markdown, render_markdown),
        (chosen.json, report_json),
    ):
        if path is None:
            continue
        text = REDACTOR.redact(render(report))  # the journal is redacted already; this is the second lock
        _write(path, text)
        written.append(path)
    return report, written


def _write(path: Path, text: str) -> None:
    from xsoar_mt.errors import InvalidInput

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(
            f"{path}: cannot write the report: {exc.strerror or exc}",
            hint="give --out DIR (or --html/--md/--json FILE) in a folder you can write to",
        ) from None
