"""A run's directory: its plan, the append-only journal, per-server logs, and the lock against a second run."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets as _random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xsoar_mt.errors import ExitCode, InvalidInput, UsageError, XsoarMtError, named
from xsoar_mt.secrets import REDACTOR


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _random.token_hex(2)


def _private_open(path: Path, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, state_dir: Path, run_id: str) -> RunDir:
        path = state_dir / "runs" / run_id
        path.mkdir(parents=True, mode=0o700)
        (path / "logs").mkdir(mode=0o700)
        return cls(path)

    @classmethod
    def find(cls, state_dir: Path, which: str) -> RunDir:
        runs = state_dir / "runs"
        if which == "latest":
            found = (
                sorted(p for p in runs.glob("*") if (p / "journal.jsonl").exists()) if runs.exists() else []
            )
            if not found:
                raise InvalidInput(f"no run to resume under {runs}")
            return cls(found[-1])
        path = runs / which
        if not (path / "journal.jsonl").exists():
            raise InvalidInput(f"no run {which} under {runs}")
        return cls(path)

    @property
    def journal_path(self) -> Path:
        return self.path / "journal.jsonl"

    def write_private(self, name: str, text: str) -> Path:
        path = self.path / name
        fd = _private_open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(REDACTOR.redact(text))
        return path

    def server_log(self, server: str) -> ServerLog:
        return ServerLog(self.path / "logs" / f"{server}.log")


class ServerLog:
    """A local copy of what a server printed (the installer's output, mostly)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, text: str) -> None:
        if not text:
            return
        fd = _private_open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(REDACTOR.redact(text))


class Journal:
    """Append-only JSON lines, flushed and fsynced, one per step start and outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = _private_open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def append(self, record: Mapping[str, Any]) -> None:
        line = REDACTOR.redact(json.dumps({"ts": round(time.time(), 3), **record}, sort_keys=False))
        os.write(self._fd, (line + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise InvalidInput(
                f"{path}:{number}: the journal line is not JSON (was the file edited?)"
            ) from None
    return records


class LockHeld(XsoarMtError):
    exit_code = ExitCode.LOCKED


class RunLock:
    """One run at a time per inventory: a lock file naming its owner, taken with O_EXCL."""

    def __init__(self, state_dir: Path, inventory_path: Path) -> None:
        key = str(inventory_path.resolve()).replace("/", "_").strip("_")
        self.path = state_dir / "locks" / f"{key}.lock"

    def acquire(self, run_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                 "user": getpass.getuser(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        try:
            fd = _private_open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            raise self._held() from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(owner, handle)

    def _held(self) -> LockHeld:
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            owner = {}
        if not isinstance(owner, dict):
            owner = {}
        run_id = owner.get("run_id", "?")
        stale = ""
        if owner.get("host") == socket.gethostname() and not _pid_alive(int(owner.get("pid", 0))):
            stale = " (its process is gone: the lock looks stale)"
        return LockHeld(
            f"another run holds the lock for this inventory: run {run_id}, pid {owner.get('pid')} on "
            f"{owner.get('host')} by {owner.get('user')} since {owner.get('started')}{stale}",
            hint=f"if that run is really over, break the lock with --force-unlock {run_id}",
        )

    def force_unlock(self, run_id: str) -> None:
        """Break the lock of run `run_id`. A lock whose owner cannot be read (an empty or damaged file)
        can be broken with any id: nobody else could name it."""
        if not self.path.exists():
            raise UsageError(f"--force-unlock {named(run_id)}: there is no lock to break for this inventory")
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            owner = None
        if isinstance(owner, dict) and owner.get("run_id") != run_id:
            raise LockHeld(
                f"--force-unlock {named(run_id)}: the lock belongs to run {owner.get('run_id')}, not {named(run_id)}",
                hint="name the run the lock belongs to, and only once you know it is over",
            )
        self.path.unlink()

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
