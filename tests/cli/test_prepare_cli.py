"""`upgrade prepare` through the CLI where no SSH is needed: its dry run, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from xsoar_mt.cli import app

runner = CliRunner()


def test_prepare_dry_run_fetches_every_hop_s_installer_and_stops_starts_and_backs_up_nothing(
    inventory: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["upgrade", "prepare", "-i", str(inventory), "--to", "6.12", "--dry-run",
                                 "-o", "json", "--state-dir", str(tmp_path / "state")])  # fmt: skip
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    steps = [e["step"] for e in events if e["kind"] == "step-started"]
    assert steps and all(step.startswith("prepare/fetch-installer-") for step in steps)
    assert {step.split("/")[1].removeprefix("fetch-installer-") for step in steps} == {
        "6.11",
        "6.12",
    }  # both hops
    commands = [e["message"] for e in events if e["kind"] == "would-run"]
    assert not [c for c in commands if "service demisto" in c or "tar -czf" in c or "nohup setsid" in c]
    fetched = sum(len(e["servers"]) for e in events if e["kind"] == "step-started")
    assert (
        sum("&& sha256sum /var/lib/xsoar-mt/demisto-6.1" in c for c in commands) == fetched
    )  # each read back
    assert events[-1]["kind"] == "run-finished" and events[-1]["data"]["outcome"] == "succeeded"
    assert not (tmp_path / "state").exists()


def test_prepare_needs_a_target_or_a_run_to_resume(inventory: Path) -> None:
    result = runner.invoke(app, ["upgrade", "prepare", "-i", str(inventory), "--dry-run"])
    assert result.exit_code == 2
    assert "give --to RELEASE" in result.output
