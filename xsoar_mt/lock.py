"""The run lock held on the deployment itself: one run at a time, whoever runs it and from wherever.

A lock on the operator's machine only keeps one process there from racing another; a second operator,
a copy of the inventory or another `--state-dir` would not see it. So `upgrade run` also takes a lock on
main (its DR primary, or its first HA app server): the directory `<installer.directory>/run.lock`,
created with `mkdir` (atomic: exactly one of two runs gets it), holding `owner.json` (run id, operator,
machine, pid, start). The run touches that file every HEARTBEAT seconds; a lock whose file has not been
touched for STALE_AFTER seconds is reported as stale. Only its owner releases it; `--force-unlock ID`
breaks it deliberately. No sudo and no secret: the directory is the SSH user's.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xsoar_mt.errors import LockHeld
from xsoar_mt.inventory import Inventory, Topology
from xsoar_mt.remote import RemoteError, RemoteShell, Result
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.shellwords import word
from xsoar_mt.state_dir import StateDir

HEARTBEAT = 30.0
STALE_AFTER = 300.0
UNREADABLE = "unreadable"  # how a lock whose owner file cannot be read is named (any id breaks it)
_MARK = "XM_LOCK="
_OWNER = "XM_LOCK_OWNER="


def lock_server(inventory: Inventory) -> str:
    """Where the deployment's lock lives: main's DR primary, or its first server."""
    main = inventory.main
    return main.primary.name if main.topology is Topology.DR else main.servers[0].name


def owner_record(run_id: str) -> dict[str, object]:
    return {
        "run_id": run_id,
        "operator": getpass.getuser(),
        "machine": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its owner file says, and how long ago it was last touched."""

    owner: dict[str, object]
    age: float | None

    @property
    def run_id(self) -> str:
        return str(self.owner.get("run_id") or UNREADABLE)

    @property
    def stale(self) -> bool:
        if self.age is not None and self.age > STALE_AFTER:
            return True
        same_machine = self.owner.get("machine") == socket.gethostname()
        pid = self.owner.get("pid")
        return same_machine and isinstance(pid, int) and not _pid_alive(pid)

    def describe(self) -> str:
        if not self.owner:
            return "a lock whose owner cannot be read"
        seen = f", last heartbeat {self.age:.0f} s ago" if self.age is not None else ""
        return (
            f"run {self.run_id} by {self.owner.get('operator')} on {self.owner.get('machine')} "
            f"(pid {self.owner.get('pid')}), since {self.owner.get('started')}{seen}"
        )


class DeploymentLock:
    """The lock on the deployment, taken and refreshed over the main server's SSH shell."""

    def __init__(self, inventory: Inventory, shell: RemoteShell, run_id: str) -> None:
        self.server = shell.server
        self.shell = shell
        self.run_id = run_id
        paths = RemotePaths.of(inventory)
        self._dir = word(paths.root)
        self._lock = word(paths.lock)
        self._owner = word(paths.lock_owner)
        pattern = json.dumps({"run_id": run_id})[1:-1]  # "run_id": "<id>", as owner.json holds it
        self._ours = f"grep -qF {word(pattern)} {self._owner} 2>/dev/null"
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self, command: str) -> str:
        return self._answer(self.shell.run(command, timeout=60))

    def _answer(self, result: Result) -> str:
        for line in result.stdout.splitlines():
            if line.startswith(_MARK):
                return line[len(_MARK) :].strip()
        raise RemoteError(
            self.server, f"the lock command gave no answer (exit {result.exit_code}): {result.tail(2)}"
        )

    def _holder_script(self) -> str:
        """Shell printing the owner file on one line and how many seconds ago it was last touched."""
        return (
            f"echo \"{_OWNER}$(tr -d '\\n' < {self._owner} 2>/dev/null)\"; "
            f'echo "age=$(( $(date +%s) - $(stat -c %Y {self._owner} 2>/dev/null || stat -c %Y {self._lock}) ))"'
        )

    def _holder(self, stdout: str | None = None) -> Holder:
        """Who holds the lock, from `_holder_script`'s output (run on its own when not given)."""
        if stdout is None:
            stdout = self.shell.run(self._holder_script(), timeout=60).stdout
        owner: dict[str, object] = {}
        age: float | None = None
        for line in stdout.splitlines():
            if line.startswith(_OWNER):
                try:
                    found = json.loads(line[len(_OWNER) :])
                    owner = found if isinstance(found, dict) else {}
                except json.JSONDecodeError:
                    owner = {}
            elif line.startswith("age=") and line[4:].strip().lstrip("-").isdigit():
                age = float(line[4:])
        return Holder(owner, age)

    def acquire(self) -> None:
        """Take the lock, or raise LockHeld naming its holder. A lock this same run left behind (a resume
        after its process died) is taken over when it is stale; one it still refreshes is not. One round
        trip either way: a lock already held answers with its holder."""
        record = word(json.dumps(owner_record(self.run_id), sort_keys=True))
        result = self.shell.run(
            f"mkdir -p {self._dir} && if mkdir {self._lock} 2>/dev/null; then printf '%s\\n' {record} > {self._owner} "
            f"&& echo {_MARK}acquired; else echo {_MARK}held; {self._holder_script()}; fi",
            timeout=60,
        )
        if self._answer(result) == "acquired":
            self.held = True
            return
        holder = self._holder(result.stdout)
        if holder.run_id == self.run_id and holder.stale:
            self._run(f"printf '%s\\n' {record} > {self._owner} && echo {_MARK}acquired")
            self.held = True
            return
        stale = " (it looks stale: no heartbeat for a while, or its process is gone)" if holder.stale else ""
        raise LockHeld(
            f"another run holds the lock of this deployment on {self.server}: {holder.describe()}{stale}",
            hint=f"if that run is really over, break the lock with --force-unlock {holder.run_id}",
        )

    def start_heartbeat(self, on_lost: Callable[[str], None]) -> None:
        """Touch the owner file every HEARTBEAT seconds; tell `on_lost` if the lock is no longer ours."""

        def beat() -> None:
            while not self._stop.wait(HEARTBEAT):
                try:
                    answer = self._run(f"if {self._ours}; then touch {self._owner}; echo {_MARK}ours; "
                                       f"else echo {_MARK}lost; fi")  # fmt: skip
                except RemoteError:
                    continue  # a dropped connection: the next beat tries again
                if answer == "lost":
                    on_lost(f"the lock of this deployment on {self.server} was broken by someone else")
                    return

        self._thread = threading.Thread(target=beat, name="deployment-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Remove the lock if it is still ours (never a lock someone else took after a --force-unlock)."""
        self._stop.set()
        if not self.held:
            return
        with contextlib.suppress(RemoteError):  # unreachable now: the lock goes stale and says so
            self._run(f"if {self._ours}; then rm -rf {self._lock}; fi; echo {_MARK}released")
        self.held = False

    def force_unlock(self, run_id: str) -> bool:
        """Break the lock of `run_id`; False when there is none. LockHeld when it is another run's."""
        holder = self._holder()
        if not holder.owner and holder.age is None:
            return False
        if holder.owner and holder.run_id != run_id:
            raise LockHeld(
                f"the lock of this deployment on {self.server} belongs to {holder.describe()}, not to run {run_id}",
                hint=f"check with its operator; break it with --force-unlock {holder.run_id}",
            )
        self._run(f"rm -rf {self._lock}; echo {_MARK}broken")
        return True


class RunLock:
    """One run at a time on this machine per deployment and state directory: a file taken with O_EXCL.

    The deployment lock above is what keeps two operators apart; this one fails fast, before any SSH,
    when a second process here tries the same deployment.
    """

    def __init__(self, state_dir: StateDir | Path, key: str) -> None:
        self.path = StateDir.of(state_dir).lock(key)
        self.run_id: str | None = None

    def acquire(self, run_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            holder = self._holder()
            if holder.run_id == run_id and holder.stale:  # this same run, resumed after its process died
                self.path.unlink(missing_ok=True)
                return self.acquire(run_id)
            stale = " (its process is gone: the lock looks stale)" if holder.stale else ""
            raise LockHeld(
                f"another run holds this deployment's lock on this machine ({self.path}): {holder.describe()}{stale}",
                hint=f"if that run is really over, break the lock with --force-unlock {holder.run_id}",
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(owner_record(run_id), handle, sort_keys=True)
        self.run_id = run_id

    def _holder(self) -> Holder:
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = {}
        return Holder(owner if isinstance(owner, dict) else {}, None)

    def force_unlock(self, run_id: str) -> bool:
        """Break the lock of `run_id`; False when there is none here; LockHeld when it is another run's.
        A lock whose owner cannot be read (an empty or damaged file) is broken with any id: nobody could
        name it."""
        if not self.path.exists():
            return False
        holder = self._holder()
        if holder.owner and holder.run_id != run_id:
            raise LockHeld(
                f"the lock on this machine ({self.path}) belongs to {holder.describe()}, not to run {run_id}",
                hint=f"break it with --force-unlock {holder.run_id}, and only once you know that run is over",
            )
        self.path.unlink(missing_ok=True)
        return True

    def release(self) -> None:
        """Remove the lock if it is still this run's (never one another run took after a --force-unlock)."""
        if self.run_id is not None and self._holder().run_id == self.run_id:
            self.path.unlink(missing_ok=True)
        self.run_id = None


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
