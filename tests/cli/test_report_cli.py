"""`xsoar-mt report` through the CLI: where the files go, its errors and exit codes, and a light start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.cli.piped import REPO, SSH_IMPORTS
from tests.unit.journals import start, step, write
from xsoar_mt.cli import app

runner = CliRunner()
RUN = "20261206-231407-084a"


def night(state: Path) -> None:
    write(state, RUN, [start(100.0, upgrade=RUN), *step(101.0, 102.0, "m@6.12/stop/m1", ["m1"]),
                       {"ts": 103.0, "kind": "run-finished", "data": {"outcome": "succeeded"}}])  # fmt: skip


def test_without_a_file_named_the_report_writes_all_three_under_out_and_says_where(tmp_path: Path) -> None:
    night(tmp_path / "state")
    result = runner.invoke(
        app, ["report", "latest", "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    names = [f"xsoar-mt-report-{RUN}.{suffix}" for suffix in ("html", "md", "json")]
    assert all((tmp_path / name).is_file() for name in names)
    assert result.output.splitlines() == [
        f"report of upgrade {RUN} (1 run(s), succeeded):",
        *(f"  {tmp_path / name}" for name in names),
    ]
    assert json.loads((tmp_path / names[2]).read_text())["steps"][0]["step"] == "m@6.12/stop/m1"


def test_with_md_alone_only_the_markdown_is_written(tmp_path: Path) -> None:
    night(tmp_path / "state")
    result = runner.invoke(app, ["report", RUN, "--state-dir", str(tmp_path / "state"), "--md", str(tmp_path / "t.md"),
                                 "--out", str(tmp_path / "unused")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.md").read_text().startswith(f"# Upgrade {RUN}")
    assert not (tmp_path / "unused").exists()


def test_an_unknown_run_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    night(tmp_path / "state")
    result = runner.invoke(app, ["report", "20990101-000000-ffff", "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 2
    assert "error: report 20990101-000000-ffff: no such run under" in result.stderr
    assert "Traceback" not in result.output


def test_no_run_at_all_is_exit_3_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "latest", "--state-dir", str(tmp_path / "empty")])
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0].startswith("error: no run to report under")


def test_a_journal_line_that_is_not_json_is_exit_3_naming_the_file_and_line(tmp_path: Path) -> None:
    night(tmp_path / "state")
    journal = tmp_path / "state" / "runs" / RUN / "journal.jsonl"
    journal.write_text(journal.read_text().replace('"kind": "step-started"', '"kind" "step-started"', 1))
    result = runner.invoke(
        app, ["report", "latest", "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 3
    assert f"{journal}:2: the journal line is not JSON" in result.stderr


def test_a_report_that_cannot_be_written_is_exit_3_naming_the_file(tmp_path: Path) -> None:
    night(tmp_path / "state")
    (tmp_path / "blocker").write_text("a file, not a folder")
    result = runner.invoke(app, ["report", "latest", "--state-dir", str(tmp_path / "state"),
                                 "--html", str(tmp_path / "blocker" / "r.html")])  # fmt: skip
    assert result.exit_code == 3
    assert f"{tmp_path / 'blocker' / 'r.html'}: cannot write the report" in result.stderr


def test_the_report_never_imports_fabric_or_paramiko(tmp_path: Path) -> None:
    night(tmp_path / "state")
    args = ["report", "latest", "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path)]
    result = subprocess.run([sys.executable, "-c", SSH_IMPORTS, *args], capture_output=True, text=True, timeout=60,
                            cwd=REPO)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
