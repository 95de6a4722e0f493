"""Off a terminal (a pipe, a CI log) nothing is cut: help, errors, hints, warnings and the resume command
appear whole. The real entry point in a subprocess, standard output piped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.piped import piped
from tests.cli.recaps import recap_state
from xsoar_mt.cli import render
from xsoar_mt.engine import RunReport
from xsoar_mt.inventory import load_inventory
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import Version
from xsoar_mt.usecases.run import RunOutcome

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"
GROUPS = ([], ["inventory"], ["upgrade"])
COMMANDS = (["inventory", "validate"], ["upgrade", "plan"], ["upgrade", "run"], ["preflight"], ["status"],
            ["validate"])  # fmt: skip


def cut(text: str) -> list[str]:
    """Lines that look cut short: an ellipsis, or `...` at the end of a line (outside usage lines)."""
    return [
        line
        for line in text.splitlines()
        if "…" in line or (line.rstrip().endswith("...") and not line.startswith("Usage:"))
    ]


@pytest.mark.parametrize("args", [*GROUPS, *COMMANDS], ids=lambda a: " ".join(a) or "xsoar-mt")
def test_help_piped_is_plain_text_with_nothing_cut(args: list[str]) -> None:
    result = piped(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert cut(result.stdout) == []
    assert "╭" not in result.stdout and "│" not in result.stdout


def test_help_piped_names_every_option_whole() -> None:
    result = piped("upgrade", "run", "--help")
    for option in ("--accept-new-host-keys", "--ignore-preflight-errors", "--force-unlock", "--state-dir"):
        assert re.search(rf"(^|\s){option}(\s|$)", result.stdout, re.M), option


def test_dash_h_is_help_too() -> None:
    assert piped("upgrade", "plan", "-h").stdout == piped("upgrade", "plan", "--help").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upgrade", "plan", "-i", "inventory.yaml"], "error: Missing option '--to'."),
        (["upgrade", "plan", "--bogus"], "error: No such option: --bogus"),
        (
            ["upgrade", "plan", "-i", "x.yaml", "--to", "6.12", "-o", "xml"],
            "error: Invalid value for '--output'",
        ),
        (["bogus"], "error: No such command 'bogus'."),
    ],
    ids=["missing-option", "unknown-option", "bad-value", "unknown-command"],
)
def test_a_command_line_mistake_is_one_error_line_and_a_hint_exiting_2(args: list[str], message: str) -> None:
    result = piped(*args)
    assert result.returncode == 2
    first, hint = result.stderr.splitlines()
    assert first.startswith(message)
    assert hint.startswith("hint: `xsoar-mt") and hint.endswith("--help` lists the options")
    assert result.stdout == ""


def test_a_plan_warning_piped_is_one_whole_line(tmp_path: Path) -> None:
    result = piped("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.11", "--only", "main")
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warning.endswith("some functions do not work until they are upgraded too")


def test_the_saved_plan_line_names_the_whole_run_command(tmp_path: Path) -> None:
    saved = tmp_path / ("a-long-directory-name-" * 4) / "plan.json"
    saved.parent.mkdir()
    result = piped("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "--out", str(saved))
    assert f"`xsoar-mt upgrade run -i {EXAMPLE} --plan {saved}`" in result.stdout.splitlines()[-1]


def test_the_console_off_a_terminal_has_no_width_limit_unless_columns_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert render.console().width == render.UNLIMITED
    monkeypatch.setenv("COLUMNS", "77")
    assert render.console().width == 77


def test_the_recap_piped_prints_the_resume_command_and_failures_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    inventory = load_inventory(EXAMPLE)
    plan = plan_upgrade(inventory, inventory.versions(), "6.12")
    deep = tmp_path / ("a-long-directory-name-" * 6) / "inventory.yaml"
    resume = f"xsoar-mt upgrade run -i {deep} --resume 20261123-021654-88a1"
    failure = "step emea@6.12/install/emea-a (install) on emea-a failed: " + "the installer exited 1 " * 8
    report = RunReport(
        "failed",
        {
            "main-a": recap_state(Version.parse("6.12.0"), True, "main@6.12/wait-healthy", "ok"),
            "emea-a": recap_state(Version.parse("6.11.0"), False, "emea@6.12/install", "failed"),
        },
        steps_done=40,
        failures=[failure],
    )
    outcome = RunOutcome(report, plan, "20261123-021654-88a1", tmp_path / "run", resume_command=resume)
    render.render_recap(outcome)  # the real console, writing to captured (not a terminal) standard output
    lines = capsys.readouterr().out.splitlines()
    assert f"to continue once the cause is fixed: {resume}" in lines
    assert f"failed: {failure.rstrip()}" in [line.rstrip() for line in lines]
