"""A run's directory: its plan, the append-only journal and per-server logs (locks are in lock.py)."""

from __future__ import annotations

import getpass
import json
import os
import secrets as _random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xsoar_mt import __version__
from xsoar_mt.errors import InvalidInput, UsageError, named
from xsoar_mt.events import Event, EventSink
from xsoar_mt.localfiles import private_dirs
from xsoar_mt.secrets import REDACTOR
from xsoar_mt.state_dir import StateDir, write_private
from xsoar_mt.state_home import how_to_point_elsewhere


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _random.token_hex(2)


def run_origin(upgrade: str, inventory_sha256: str, parallel: int | None) -> dict[str, Any]:
    """What a run-start record (run-intent, run-resumed) says of who started it, for the report.

    `upgrade` is the lineage the runs of one upgrade share (a run's id, which its resumes keep; a
    rollback names the run it undoes). Journals written before these fields existed lack them; the
    report then says "not recorded".
    """
    try:
        operator = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container without a passwd entry)
        operator = f"uid {os.getuid()}"
    return {
        "upgrade": upgrade,
        "operator": operator,
        "machine": socket.gethostname(),
        "xsoar_mt_version": __version__,
        "inventory_sha256": inventory_sha256,
        "parallel": parallel,
    }


def _private_open(path: Path, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, state_dir: StateDir | Path, run_id: str) -> RunDir:
        path = StateDir.of(state_dir).run(run_id)
        private_dirs(path.parent)
        path.mkdir(mode=0o700)
        (path / "logs").mkdir(mode=0o700)
        return cls(path)

    @classmethod
    def find(cls, state_dir: StateDir | Path, which: str, deployment: str | None = None) -> RunDir:
        """The run `which` (an id), or with `latest` the newest run of `deployment` (its key, known.py)."""
        runs = StateDir.of(state_dir).runs
        if which == "latest":
            found = (
                sorted(p for p in runs.glob("*") if (p / "journal.jsonl").exists()) if runs.exists() else []
            )
            if deployment is not None:
                found = [p for p in found if _deployment_of(p / "journal.jsonl") == deployment]
            if not found:
                of = " of this deployment" if deployment is not None else ""
                raise UsageError(
                    f"nothing to resume: no run{of} under {runs.absolute()}", hint=how_to_point_elsewhere()
                )
            return cls(found[-1])
        path = runs / which
        if "/" in which or which in ("", ".", "..") or not (path / "journal.jsonl").exists():
            raise UsageError(
                f"--resume {named(which)}: no such run under {runs.absolute()}",
                hint=f"--resume latest takes the newest; {how_to_point_elsewhere()}",
            )
        return cls(path)

    @property
    def journal_path(self) -> Path:
        return self.path / "journal.jsonl"

    def write_private(self, name: str, text: str) -> Path:
        """A file of the run (its plan), redacted and written whole or not at all."""
        path = self.path / name
        write_private(path, REDACTOR.redact(text), make_parents=False)
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
    """Append-only JSON lines, written whole, flushed and fsynced, one per step start and outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = _private_open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> None:
        line = REDACTOR.redact(json.dumps({"ts": round(time.time(), 3), **record}, sort_keys=False))
        data = (line + "\n").encode()
        with self._lock:
            written = 0
            while written < len(data):  # a short write (a full disk) raises below, never leaves half a line
                count = os.write(self._fd, data[written:])
                if count <= 0:
                    raise OSError(f"{self.path}: the journal could not be written")
                written += count
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class PreflightNotes:
    """Passes every event on, and keeps the preflight's warnings (said before the journal opens) for it."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.kept: list[Event] = []

    def emit(self, event: Event) -> None:
        if event.kind == "warning" and "check" in event.data:
            self.kept.append(event)
        self.sink.emit(event)


class JournalSink:
    """The journal records every event but the installer's streamed output.

    A journal that cannot be written (a full disk) must not take the run down mid-step: the failure is
    handed to `on_failure` (the executor then starts nothing new) and reported once on the console.
    """

    def __init__(self, journal: Journal, on_failure: Callable[[str], None]) -> None:
        self.journal = journal
        self.on_failure = on_failure
        self.failed: str | None = None

    def emit(self, event: Event) -> None:
        if event.kind in ("step-output", "would-run") or self.failed is not None:
            return
        try:
            self.journal.append(event.to_dict())
        except OSError as exc:
            self.failed = f"the journal {self.journal.path} cannot be written ({exc.strerror or exc})"
            self.on_failure(self.failed)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every record; a last line cut off by a crash (no newline, not JSON) is left out, not an error."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # torn: the process died while writing it
                break
            raise InvalidInput(
                f"{path}:{number}: the journal line is not JSON (was the file edited?)"
            ) from None
        if isinstance(record, dict):
            records.append(record)
    return records


def _deployment_of(journal: Path) -> str | None:
    """The deployment key a run's journal names in its first records (None when it names none)."""
    try:
        with journal.open(encoding="utf-8", errors="replace") as handle:
            for _, line in zip(range(5), handle, strict=False):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return None
                if isinstance(record, dict) and record.get("kind") in ("run-intent", "run-resumed"):
                    deployment = record.get("deployment")
                    return str(deployment) if deployment is not None else None
    except OSError:
        return None
    return None
