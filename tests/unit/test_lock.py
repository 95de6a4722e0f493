"""The deployment lock's commands, run by a real local `sh` in a directory whose name is hostile."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.inventories import GroupSpec, inventory_dict, parsed
from xsoar_mt.inventory import Inventory
from xsoar_mt.lock import OWNER_CAP, PID_CAP, STALE_AFTER, DeploymentLock, Holder, LockHeld, lock_server
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


# -- where the lock lives ---------------------------------------------------------------------------


def _main_inventory(shape: str, names: tuple[str, str], primary_first: bool = True) -> Inventory:
    data = inventory_dict(
        "elasticsearch" if shape == "ha" else "bolt", GroupSpec("main", shape, ("6.11", "6.11")), []
    )
    group = data["main"]
    if shape == "ha":
        group["ha"]["servers"][0]["name"], group["ha"]["servers"][1]["name"] = names
    else:
        group["dr"]["primary"]["name"], group["dr"]["secondary"]["name"] = names
        if not primary_first:
            group["dr"]["primary"], group["dr"]["secondary"] = (
                group["dr"]["secondary"],
                group["dr"]["primary"],
            )
    return parsed(data, "inv.yaml")


def test_every_copy_of_the_inventory_puts_the_lock_on_the_same_main_server() -> None:
    assert lock_server(_main_inventory("ha", ("main-b", "main-a"))) == "main-a"
    assert lock_server(_main_inventory("ha", ("main-a", "main-b"))) == "main-a"
    # a DR role swap (the other server is primary now) does not move it
    assert lock_server(_main_inventory("dr", ("dr-b", "dr-a"))) == "dr-a"
    assert lock_server(_main_inventory("dr", ("dr-a", "dr-b"))) == "dr-a"


# -- staleness --------------------------------------------------------------------------------------


def test_a_lock_is_stale_only_after_stale_after_seconds_without_a_heartbeat() -> None:
    assert STALE_AFTER == 300.0
    owner = {"run_id": "r", "machine": "elsewhere", "pid": 1}
    assert not Holder(owner, 299.0).stale
    assert not Holder(owner, 300.0).stale
    assert Holder(owner, 301.0).stale
    assert not Holder(owner, None).stale


def test_a_lock_of_this_machine_is_stale_when_its_process_is_gone_and_not_while_it_lives() -> None:
    here = socket.gethostname()
    assert not Holder({"run_id": "r", "machine": here, "pid": os.getpid()}, 0.0).stale
    assert Holder({"run_id": "r", "machine": here, "pid": PID_CAP - 1}, 0.0).stale
    # another machine's pid says nothing about a process here
    assert not Holder({"run_id": "r", "machine": "elsewhere", "pid": PID_CAP - 1}, 0.0).stale


# -- what a holder says, framed ---------------------------------------------------------------------


def _holder_from(owner: bytes, age: str = "5") -> Holder:
    lock = DeploymentLock(inventory(Path("/nonexistent")), LocalShell(), "run-1")  # type: ignore[arg-type]  # a local shell
    return lock._holder(f"XM_LOCK_OWNER={base64.b64encode(owner).decode()}\nage={age}\n")


def test_the_holders_text_is_printed_without_control_characters_and_its_id_quoted_in_the_hint() -> None:
    owner = {"run_id": "r1; rm -rf /\x1b[2J", "operator": "eve\x07\r\nage=0", "machine": "m\u202e", "pid": 7,
             "started": "2026-01-01T00:00:00Z"}  # fmt: skip
    holder = _holder_from(json.dumps(owner).encode())
    shown = holder.describe()
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in shown)
    assert (
        shown
        == "run r1; rm -rf /[2J by eveage=0 on m (pid 7), since 2026-01-01T00:00:00Z, last heartbeat 5 s ago"
    )
    assert holder.unlock_flag() == "--force-unlock 'r1; rm -rf /[2J'"
    assert holder.age == 5.0  # the `age=0` inside the operator's name forged nothing


@pytest.mark.parametrize(
    ("age", "expected"), [("²", None), ("12\r", None), ("99999999999", None), ("-3", -3.0), ("40", 40.0)]
)
def test_an_age_is_plain_digits_under_a_cap(age: str, expected: float | None) -> None:
    assert _holder_from(b'{"run_id": "r"}', age).age == expected


def test_a_huge_or_odd_pid_is_dropped_and_never_crashes_staleness() -> None:
    for pid in (10**400, -5, True, "7", 2**31):
        holder = _holder_from(
            json.dumps({"run_id": "r", "machine": socket.gethostname(), "pid": pid}).encode()
        )
        assert "pid" not in holder.owner
        assert not holder.stale


def test_an_owner_that_is_not_a_capped_json_object_reads_as_unreadable() -> None:
    assert _holder_from(b"not json").owner == {}
    assert _holder_from(b"[1, 2]").owner == {}
    assert _holder_from(json.dumps({"run_id": "r", "pad": "x" * OWNER_CAP}).encode()).owner == {}
    assert _holder_from(json.dumps({"run_id": "r", "extra": "dropped"}).encode()).owner == {"run_id": "r"}
    lock = DeploymentLock(inventory(Path("/nonexistent")), LocalShell(), "run-1")  # type: ignore[arg-type]  # a local shell
    assert lock._holder("XM_LOCK_OWNER=@@@\n").owner == {}  # not base64


# -- breaking it ------------------------------------------------------------------------------------


def test_force_unlock_removes_only_the_named_runs_lock_in_one_command(tmp_path: Path) -> None:
    inv = inventory(tmp_path / "xm")
    DeploymentLock(inv, LocalShell(), "run-1").acquire()  # type: ignore[arg-type]  # a local shell
    shell = LocalShell()
    with pytest.raises(LockHeld, match=r"belongs to run run-1 .*not to run run-2") as held:
        DeploymentLock(inv, shell, "x").force_unlock("run-2")  # type: ignore[arg-type]  # a local shell
    assert held.value.hint == "check with its operator; break it with --force-unlock run-1"
    assert (tmp_path / "xm" / "run.lock").is_dir()
    assert len(shell.commands) == 1 and "flock" in shell.commands[0]
    assert DeploymentLock(inv, shell, "x").force_unlock("run-1")  # type: ignore[arg-type]  # a local shell
    assert not (tmp_path / "xm" / "run.lock").exists()
    assert not DeploymentLock(inv, shell, "x").force_unlock("run-1")  # type: ignore[arg-type]  # a local shell


def test_force_unlock_breaks_a_lock_whose_owner_names_no_run_with_any_id(tmp_path: Path) -> None:
    inv = inventory(tmp_path / "xm")
    (tmp_path / "xm" / "run.lock").mkdir(parents=True)
    (tmp_path / "xm" / "run.lock" / "owner.json").write_text("garbage")
    assert DeploymentLock(inv, LocalShell(), "x").force_unlock("anything")  # type: ignore[arg-type]  # a local shell
    assert not (tmp_path / "xm" / "run.lock").exists()


def test_force_unlock_compares_under_the_flock_so_a_lock_taken_meanwhile_is_not_removed(
    tmp_path: Path,
) -> None:
    inv = inventory(tmp_path / "xm")
    DeploymentLock(inv, LocalShell(), "run-1").acquire()  # type: ignore[arg-type]  # a local shell
    owner = tmp_path / "xm" / "run.lock" / "owner.json"
    outcome: list[object] = []
    with (tmp_path / "xm" / "run.lock.guard").open("a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another xsoar-mt command is between its look and its change
        breaker = threading.Thread(
            target=lambda: outcome.append(
                _try(lambda: DeploymentLock(inv, LocalShell(), "x").force_unlock("run-1"))
            )  # type: ignore[arg-type]  # a local shell
        )
        breaker.start()
        time.sleep(1.0)  # give --force-unlock the chance to act now if it did not wait for the flock
        owner.write_text(json.dumps({"run_id": "run-2"}) + "\n")  # run-1 ended; run-2 took the lock
        fcntl.flock(guard, fcntl.LOCK_UN)
        breaker.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], LockHeld)
    assert owner.is_file()  # run-2's lock is still there


def _try(action: Any) -> object:
    try:
        return action()
    except LockHeld as exc:
        return exc


def test_a_stale_lock_of_this_same_run_is_taken_over_only_while_it_still_names_this_run(
    tmp_path: Path,
) -> None:
    inv = inventory(tmp_path / "xm")
    DeploymentLock(inv, LocalShell(), "run-1").acquire()  # type: ignore[arg-type]  # a local shell
    owner = tmp_path / "xm" / "run.lock" / "owner.json"
    old = time.time() - STALE_AFTER - 60
    os.utime(owner, (old, old))
    again = DeploymentLock(inv, LocalShell(), "run-1")  # type: ignore[arg-type]  # a local shell
    again.acquire()
    assert again.held
    assert owner.stat().st_mtime > old + 30  # rewritten: the heartbeat starts again
    os.utime(owner, (old, old))
    fresh = DeploymentLock(inv, LocalShell(), "run-1")  # type: ignore[arg-type]  # a local shell
    owner.write_text(owner.read_text())  # touched now: not stale, so not taken over
    with pytest.raises(LockHeld, match="run run-1"):
        fresh.acquire()
