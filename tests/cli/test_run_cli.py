"""`upgrade run` through the CLI where no SSH is needed: dry runs, saved plans, refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xsoar_mt.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.example.yaml"
runner = CliRunner()


def test_dry_run_prints_every_command_in_plan_order_and_changes_nothing(
    inventory: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), "--to", "6.11", "--dry-run",
                                 "--state-dir", str(tmp_path / "state")])  # fmt: skip
    assert result.exit_code == 0, result.output
    would = [
        line.split(" ", 1)[1]
        for line in result.output.splitlines()
        if re.match(r"\d\d:\d\d:\d\d \S+: ", line)
    ]
    installs = [line.split(":")[0] for line in would if "nohup setsid" in line]
    assert installs == ["main-b", "main-a", "emea-b", "emea-a", "use-b", "use-a", "apac-1"]
    assert not (tmp_path / "state").exists()


def test_dry_run_of_upload_from_a_link_names_the_one_download_and_fetches_nothing(
    inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory.write_text(inventory.read_text().replace("delivery: server-download", "delivery: upload"))
    monkeypatch.delenv("XSOAR_DOWNLOAD_LINK", raising=False)  # a dry run reads no secret
    result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), "--to", "6.12", "--dry-run",
                                 "--state-dir", str(tmp_path / "state")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("would be downloaded once on this machine") == 2  # 6.11, then 6.12
    puts = [line for line in result.output.splitlines() if "sftp put demisto-6_12_latest.sh" in line]
    assert len(puts) == 7  # every server gets it
    assert not (tmp_path / "state").exists()


def test_dry_run_json_emits_one_event_per_line_with_would_run_commands(inventory: Path) -> None:
    result = runner.invoke(
        app, ["upgrade", "run", "-i", str(inventory), "--to", "6.11", "--dry-run", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    kinds = {e["kind"] for e in events}
    assert {"run-started", "step-started", "step-finished", "would-run", "run-finished"} <= kinds
    assert events[-1]["kind"] == "run-finished" and events[-1]["data"]["outcome"] == "succeeded"


def test_saved_plan_is_refused_as_stale_naming_what_changed(inventory: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    made = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.11", "--out", str(plan)])
    assert made.exit_code == 0, made.output
    inventory.write_text(inventory.read_text().replace(
        "secondary: {name: main-b, address: 10.20.0.11, version: 6.10.0}",
        "secondary: {name: main-b, address: 10.20.0.11, version: 6.11.0}"))  # fmt: skip
    result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), "--plan", str(plan), "--dry-run"])
    assert result.exit_code == 8, result.output
    assert "the inventory file changed" in result.output
    assert "main-b: planned from 6.10.0, now 6.11.0" in result.output


def test_saved_plan_that_still_matches_runs_exactly_as_saved(inventory: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.12", "--out", str(plan)])
    result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), "--plan", str(plan), "--dry-run"])
    assert result.exit_code == 0, result.output
    saved = json.loads(plan.read_text())
    assert f"run: {sum(len(p['steps']) for p in saved['phases'])} steps to 6.12" in result.output


def test_run_without_a_terminal_or_yes_is_refused_before_any_connection(inventory: Path) -> None:
    result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), "--to", "6.11"])
    assert result.exit_code == 2
    assert "pass --yes" in result.output


def test_probe_without_dry_run_is_a_usage_error(inventory: Path) -> None:
    result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), "--to", "6.11", "--probe", "--yes"])
    assert result.exit_code == 2
    assert "--probe goes with --dry-run" in result.output


def test_secret_flag_on_the_command_line_is_refused_with_a_pointer_to_env_or_file(inventory: Path) -> None:
    # The real entry point, as a shell runs it: the refusal happens before Typer parses the options.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xsoar_mt",
            "upgrade",
            "run",
            "-i",
            str(inventory),
            "--to",
            "6.11",
            "--sudo-password=hunter2-xxxx",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(EXAMPLE.parent)},
    )
    assert result.returncode == 2
    assert "--sudo-password: secrets are never taken on the command line" in result.stderr
    assert "ssh.sudo_password" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
