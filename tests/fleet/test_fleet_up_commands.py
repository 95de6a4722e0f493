"""`make fleet-up` prints commands to try: each works as printed on the fleet it started, from any directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fleet.__main__ import try_commands
from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet


def test_every_command_fleet_up_prints_works_as_printed_from_another_directory(
    fleet: Fleet, tmp_path: Path
) -> None:
    deployment = fleet.spec.deployments[0]
    inventory = fleet.inventory(deployment.name, tmp_path / "inventory-demo.yaml")  # no `version:` keys
    assert " version:" not in inventory.read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    commands = [c for c in try_commands(fleet, inventory, deployment.main.primary.name, tmp_path / "root")
                if not c.startswith("tail -f")]  # fmt: skip  # tail -f never ends: its file is checked below
    assert any("upgrade plan" in c and "--probe" in c for c in commands)
    for command in commands:
        result = subprocess.run(command, shell=True, cwd=elsewhere, capture_output=True, text=True, timeout=180,
                                check=False)  # fmt: skip
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert fleet.event_log.is_absolute() and fleet.command_log.is_absolute()
    assert list(elsewhere.iterdir()) == []  # nothing left in the directory it was run from
