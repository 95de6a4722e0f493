"""The run lock held on the deployment itself: one run at a time, whoever runs it and from wherever.

A lock on the operator's machine only keeps one process there from racing another; a second operator,
a copy of the inventory or another `--state-dir` would not see it. So `upgrade run` also takes a lock on
main: on the main server whose name sorts first, so every copy of the inventory picks the same one
whatever the order of its list or which DR server is primary today. The lock is the directory
`<installer.directory>/run.lock`, created with `mkdir` (atomic: exactly one of two runs gets it),
holding `owner.json` (run id, operator, machine, pid, start). The run touches that file every HEARTBEAT
seconds; a lock whose file has not been touched for STALE_AFTER seconds is reported as stale. Only its
owner releases it; `--force-unlock ID` breaks it deliberately. Every command that looks at the lock and
changes it does so under `flock` on `run.lock.guard`, so a compare and its removal are one step. No sudo
and no secret: the directory is the private working directory (workdir.py), checked before it is used.

What the server sends back about a holder is framed: `owner.json` arrives base64-encoded (at most
OWNER_CAP bytes of it), only its known fields are kept, numbers must be plain digits under a cap, and
control characters are stripped before any of it is printed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import getpass
import json
import os
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xsoar_mt.errors import LockHeld
from xsoar_mt.inventory import Inventory
from xsoar_mt.remote import RemoteError, RemoteShell, Result
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.shellwords import word
from xsoar_mt.state_dir import StateDir

HEARTBEAT = 30.0
STALE_AFTER = 300.0
UNREADABLE = "unreadable"  # how a lock whose owner file cannot be read is named (any id breaks it)
OWNER_CAP = 4096  # bytes of owner.json read back; a longer one reads as unreadable
PID_CAP = 1 << 31  # pids are C ints; a larger number is not one (and os.kill would overflow)
AGE_CAP = 10**10  # seconds; a larger age is not a clock reading
_MARK = "XM_LOCK="
_OWNER = "XM_LOCK_OWNER="
_DIGITS = re.compile(r"-?[0-9]{1,11}")
_BASE64 = re.compile(r"[A-Za-z0-9+/=]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_TEXT_FIELDS = ("run_id", "operator", "machine", "started")


def printable_line(text: str) -> str:
    """`text` from a server with its control characters (escape, bell, carriage return, bidi) removed."""
    return _CONTROL.sub("", text)


def framed_owner(found: object) -> dict[str, object]:
    """Only what a holder may say: its text fields as strings of printable text, its pid as a number
    under PID_CAP. Anything else is dropped; a record that is not a JSON object reads as empty."""
    if not isinstance(found, dict):
        return {}
    owner: dict[str, object] = {}
    for key in _TEXT_FIELDS:
        value = found.get(key)
        if isinstance(value, str) and printable_line(value):
            owner[key] = printable_line(value)[:200]
    pid = found.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < PID_CAP:
        owner["pid"] = pid
    return owner


def lock_server(inventory: Inventory) -> str:
    """Where the deployment's lock lives: the main server whose name sorts first. Every copy of the
    inventory agrees on it, whatever order it lists main's servers in and whichever DR server is the
    primary today (a role swap must not move the lock)."""
    return min(server.name for server in inventory.main.servers)


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

        def said(key: str) -> str:
            value = self.owner.get(key)
            return printable_line(str(value)) if value is not None else "?"

        return (
            f"run {said('run_id')} by {said('operator')} on {said('machine')} "
            f"(pid {said('pid')}), since {said('started')}{seen}"
        )

    def unlock_flag(self) -> str:
        """`--force-unlock ID` for this holder, its id quoted for a shell."""
        return f"--force-unlock {shlex.quote(printable_line(self.run_id))}"


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
        # Every look-then-change below runs under this flock, so no other run's command comes in between.
        self._guarded = f"exec 9>>{word(paths.lock_guard)} && flock -w 30 9 && "
        self._ours = self._holds(run_id)
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self, command: str) -> str:
        return self._answer(self.shell.run(command, timeout=60))

    def _holds(self, run_id: str) -> str:
        """Shell testing that owner.json names `run_id` (as json.dumps writes it: a `"` inside any value is
        escaped, so no other field can forge it)."""
        pattern = json.dumps({"run_id": run_id})[1:-1]  # "run_id": "<id>", as owner.json holds it
        return f"grep -qF {word(pattern)} {self._owner} 2>/dev/null"

    def _answer(self, result: Result) -> str:
        for line in result.stdout.split("\n"):
            if line.startswith(_MARK):
                return line[len(_MARK) :].strip()
        raise RemoteError(
            self.server, f"the lock command gave no answer (exit {result.exit_code}): {result.tail(2)}"
        )

    def _holder_script(self) -> str:
        """Shell printing the owner file on one line and how many seconds ago it was last touched."""
        return (
            f"echo \"{_OWNER}$(head -c {OWNER_CAP + 1} {self._owner} 2>/dev/null | base64 | tr -d '\\n')\"; "
            f'echo "age=$(( $(date +%s) - $(stat -c %Y {self._owner} 2>/dev/null || stat -c %Y {self._lock}) ))"'
        )

    def _holder(self, stdout: str | None = None) -> Holder:
        """Who holds the lock, from `_holder_script`'s output (run on its own when not given)."""
        if stdout is None:
            stdout = self.shell.run(self._holder_script(), timeout=60).stdout
        owner: dict[str, object] = {}
        age: float | None = None
        for line in stdout.split("\n"):
            if line.startswith(_OWNER):
                owner = _decode_owner(line[len(_OWNER) :])
            elif line.startswith("age=") and _DIGITS.fullmatch(line[4:]):
                seconds = int(line[4:])
                age = float(seconds) if abs(seconds) < AGE_CAP else None
        return Holder(owner, age)

    def acquire(self) -> None:
        """Take the lock, or raise LockHeld naming its holder. A lock this same run left behind (a resume
        after its process died) is taken over when it is stale; one it still refreshes is not. One round
        trip either way: a lock already held answers with its holder."""
        record = word(json.dumps(owner_record(self.run_id), sort_keys=True))
        result = self.shell.run(
            f"(umask 077 && mkdir -p {self._dir}) && {self._guarded}"
            f"if mkdir {self._lock} 2>/dev/null; then printf '%s\\n' {record} > {self._owner} "
            f"&& echo {_MARK}acquired; else echo {_MARK}held; {self._holder_script()}; fi",
            timeout=60,
        )
        if self._answer(result) == "acquired":
            self.held = True
            return
        holder = self._holder(result.stdout)
        if holder.run_id == self.run_id and holder.stale:
            # Taken over only if it still names this run: under the flock, so nobody breaks it in between.
            answer = self._run(
                f"{self._guarded}if {self._ours}; then rm -f {self._owner} && "
                f"printf '%s\\n' {record} > {self._owner} && echo {_MARK}acquired; "
                f"else echo {_MARK}lost; fi"
            )
            if answer == "acquired":
                self.held = True
                return
            holder = self._holder()
        stale = " (it looks stale: no heartbeat for a while, or its process is gone)" if holder.stale else ""
        raise LockHeld(
            f"another run holds the lock of this deployment on {self.server}: {holder.describe()}{stale}",
            hint=f"if that run is really over, break the lock with {holder.unlock_flag()}",
        )

    def start_heartbeat(self, on_lost: Callable[[str], None]) -> None:
        """Touch the owner file every HEARTBEAT seconds; tell `on_lost` if the lock is no longer ours."""

        def beat() -> None:
            while not self._stop.wait(HEARTBEAT):
                try:
                    answer = self._run(
                        f"{self._guarded}if {self._ours}; then touch {self._owner}; "
                        f"echo {_MARK}ours; else echo {_MARK}lost; fi"
                    )
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
            self._run(f"{self._guarded}if {self._ours}; then rm -rf {self._lock}; fi; echo {_MARK}released")
        self.held = False

    def force_unlock(self, run_id: str) -> bool:
        """Break the lock of `run_id`; False when there is none. LockHeld when it is another run's.

        One command under the flock compares and removes, so a lock another run took in the meantime is
        never the one removed. A lock whose owner names no run id (empty or damaged) is broken with any id.
        """
        result = self.shell.run(
            f"{self._guarded}if [ ! -d {self._lock} ]; then echo {_MARK}none; "
            f'elif {self._holds(run_id)} || ! grep -qF \'"run_id": "\' {self._owner} 2>/dev/null; '
            f"then rm -rf {self._lock} && echo {_MARK}broken; else echo {_MARK}other; {self._holder_script()}; fi",
            timeout=60,
        )
        answer = self._answer(result)
        if answer == "none":
            return False
        if answer == "broken":
            return True
        holder = self._holder(result.stdout)
        raise LockHeld(
            f"the lock of this deployment on {self.server} belongs to {holder.describe()}, not to run "
            f"{printable_line(run_id)}",
            hint=f"check with its operator; break it with {holder.unlock_flag()}",
        )


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
                hint=f"if that run is really over, break the lock with {holder.unlock_flag()}",
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(owner_record(run_id), handle, sort_keys=True)
        self.run_id = run_id

    def _holder(self) -> Holder:
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = {}
        return Holder(framed_owner(owner), None)

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
                hint=f"break it with {holder.unlock_flag()}, and only once you know that run is over",
            )
        self.path.unlink(missing_ok=True)
        return True

    def release(self) -> None:
        """Remove the lock if it is still this run's (never one another run took after a --force-unlock)."""
        if self.run_id is not None and self._holder().run_id == self.run_id:
            self.path.unlink(missing_ok=True)
        self.run_id = None


def _decode_owner(encoded: str) -> dict[str, object]:
    """owner.json as the holder script sent it (base64); empty when it is not a framed JSON object."""
    if not _BASE64.fullmatch(encoded):
        return {}
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return {}
    if len(raw) > OWNER_CAP:
        return {}
    try:
        return framed_owner(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}


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
