"""The seam to servers: what a shell on a server can do, what came back, and a recording shell for dry runs."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from xsoar_mt.errors import ServerError
from xsoar_mt.shellwords import outside_quotes, word

# The prompt sudo is told to print (`sudo -S -p ...`); the password is written only when it appears.
SUDO_PROMPT = "[xsoar-mt] sudo password: "
# `sudo` where a shell starts a command: line start, after ; & | ( { ! or `, inside $( ), after a keyword.
_SUDO_AT_COMMAND_START = re.compile(
    r"(^|[;&|({!`]\s*|\$\(\s*|\b(?:then|do|else|elif|if|while|until|time)\s+)sudo(?=\s)", re.MULTILINE
)


@dataclass(frozen=True)
class Result:
    """What one command on one server gave back."""

    server: str
    command: str
    exit_code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 5) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


class RemoteError(ServerError):
    """Reaching or using a server failed before a command could give a result."""

    def __init__(self, server: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{server}: {message}", hint=hint)
        self.server = server
        self.detail = message


class ConnectionLost(RemoteError):
    """The SSH connection dropped; commands started detached on the server keep running."""


class HostKeyRefused(RemoteError):
    """The server's host key is unknown or has changed."""


class SudoRejected(RemoteError):
    """sudo did not accept the password (or needs one and none was given)."""


class Cancelled(RemoteError):
    """The operator asked to stop waiting (a second interrupt) while a command ran; it was cut off."""


Cancel = Callable[[], bool]


class RemoteShell(Protocol):
    """A shell on one server: run a command, put a file. One connection, reused by every step."""

    server: str

    def connect(self) -> None: ...

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> Result: ...

    def put(self, local: Path, remote: str, progress: Callable[[int, int], None] | None = None) -> None: ...

    def close(self) -> None: ...


def uses_sudo(command: str) -> bool:
    """Whether the command starts `sudo` somewhere (a quoted value that mentions sudo does not count)."""
    return _SUDO_AT_COMMAND_START.search(outside_quotes(command)) is not None


def elevate(command: str) -> str:
    """Make every `sudo` in a command read its password from stdin after printing our prompt.

    Only a `sudo` the shell would run is changed: the text of a quoted value is left exactly as it is.
    """
    out, last = [], 0
    for found in _SUDO_AT_COMMAND_START.finditer(outside_quotes(command)):
        start = found.end() - len("sudo")
        out += [command[last:start], f"sudo -S -p {word(SUDO_PROMPT)}"]
        last = found.end()
    out.append(command[last:])
    return "".join(out)


Responder = Callable[[str, str], Result]


@dataclass
class Recorder:
    """Every command a dry run would have sent, in order, shared by the recording shells.

    `listener`, when given, hears each command as it is recorded (a dry run reports it as an event).
    """

    lines: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    listener: Callable[[str, str], None] | None = None

    def add(self, server: str, command: str) -> None:
        with self.lock:
            self.lines.append((server, command))
        if self.listener is not None:
            self.listener(server, command)


class RecordingShell:
    """A shell that runs nothing: it records each command and answers through `responder`."""

    def __init__(self, server: str, recorder: Recorder, responder: Responder) -> None:
        self.server = server
        self.recorder = recorder
        self.responder = responder

    def connect(self) -> None:
        pass

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> Result:
        self.recorder.add(self.server, command)
        return self.responder(self.server, command)

    def put(self, local: Path, remote: str, progress: Callable[[int, int], None] | None = None) -> None:
        self.recorder.add(self.server, f"sftp put {local.name} {remote}")

    def close(self) -> None:
        pass


class CommandKind(StrEnum):
    """What a command sent to a server is for: a dry run answers by kind, never by the command's text."""

    BACKUP = "backup"
    FETCH = "fetch-installer"
    INSTALLER_DIGEST = "installer-digest"  # is the installer there already (upload delivery)
    MAKE_DIRECTORY = "make-directory"
    STOP = "stop"
    START = "start"
    STATUS = "status"
    INSTALL_LAUNCH = "install-launch"
    INSTALL_FOLLOW = "install-follow"
    INSTALL_POLL = "install-poll"
    INSTALL_LOG = "install-log"
    PURGE_LAUNCH = "purge-launch"  # rollback: the installer's `-- -purge`, detached like an install
    PURGE_POLL = "purge-poll"
    BACKUP_RECORD = "backup-record"  # read only: the archive a backup step just made (size, sha256, path)
    BACKUP_CHECK = "backup-check"  # read only, rollback: a recorded backup's size and sha256 where it lies
    RESTORE = "restore"  # rollback: a backup's files put back (its sha256 checked first)
    HEALTH = "health"
    VERSION = "version"
    MARKER = "marker"
    PREPARED_RECORD = "prepared-record"  # the record of an installer `upgrade prepare` left
    PREPARED_CHECK = "prepared-check"  # the sha256 of an installer found in place (prepared by day)
    HEALTH_URL = "health-url"  # validation: main or its load balancer answers /health
    TENANTS = "tenants"  # validation: every tenant answers through main
    OTHER = "other"


class RemoteCommand(str):
    """A command's text with its kind (and the release it works on, where it has one).

    It is the text itself (a `str`), so every shell runs it unchanged; a recording shell's responder
    reads `kind` to answer a dry run.
    """

    kind: CommandKind
    release: str | None

    def __new__(cls, text: str, kind: CommandKind, release: str | None = None) -> RemoteCommand:
        made = super().__new__(cls, text)
        made.kind = kind
        made.release = release
        return made


def command_kind(command: str) -> CommandKind:
    """The kind a command was sent with (OTHER for plain text)."""
    return command.kind if isinstance(command, RemoteCommand) else CommandKind.OTHER


class ShellPool:
    """One shell per server for a whole command, made on first use by `make` (SSH, scripted or recording)."""

    def __init__(self, make: Callable[[str], RemoteShell]) -> None:
        self._make = make
        self._shells: dict[str, RemoteShell] = {}
        self._lock = threading.Lock()

    def __call__(self, server: str) -> RemoteShell:
        with self._lock:
            if server not in self._shells:
                self._shells[server] = self._make(server)
            return self._shells[server]

    def stats(self) -> dict[str, dict[str, int]]:
        """Connections opened and commands run per server (SSH shells count them)."""
        return {
            name: {
                "connections": int(getattr(shell, "connections_opened", 0)),
                "commands": int(getattr(shell, "commands_run", 0)),
            }
            for name, shell in sorted(self._shells.items())
        }

    def close(self) -> None:
        with self._lock:
            shells, self._shells = list(self._shells.values()), {}
        for shell in shells:
            shell.close()
