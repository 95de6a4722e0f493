"""The deployment lock's commands, run by a real local `sh` in a directory whose name is hostile."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.inventories import GroupSpec, inventory_dict, parsed
from xsoar_mt.inventory import Inventory
from xsoar_mt.lock import DeploymentLock, LockHeld
from xsoar_mt.remote import Result


class LocalShell:
    """Runs each command with this machine's `sh`, as a server's shell would, and counts the round trips."""

    server = "main-0"

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, **_: Any) -> Result:
        self.commands.append(command)
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False, timeout=30)
        return Result(self.server, command, done.returncode, done.stdout, done.stderr)


def inventory(directory: Path) -> Inventory:
    data = inventory_dict("bolt", GroupSpec("main", "single", ("6.11",)), [])
    data["installer"] = {"directory": str(directory)}
    return parsed(data)


def test_a_held_lock_is_refused_in_one_round_trip_naming_its_holder_and_a_hostile_path_stays_literal(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "x $(touch PWNED) 'q"
    inv = inventory(directory)
    first = DeploymentLock(inv, LocalShell(), "run-1")  # type: ignore[arg-type]  # a local shell
    first.acquire()
    assert (directory / "run.lock" / "owner.json").is_file()

    shell = LocalShell()
    with pytest.raises(LockHeld, match=r"run run-1 by .*last heartbeat [0-9]+ s ago"):
        DeploymentLock(inv, shell, "run-2").acquire()  # type: ignore[arg-type]  # a local shell
    assert len(shell.commands) == 1

    first.release()
    assert not (directory / "run.lock").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [directory.name]  # nothing ran: no PWNED
