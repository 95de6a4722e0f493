"""Secrets: reading them from the environment, a file or a prompt, and the one redactor all output passes."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from xsoar_mt.errors import InvalidInput, UsageError

MASK = "***"


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from (the inventory names it). Holds the variable's name or the file's path,
    never the secret."""

    source: str  # "env" | "file" | "prompt"
    ref: str = ""

    def describe(self) -> str:
        if self.source == "env":
            return f"environment variable {self.ref}"
        if self.source == "file":
            return f"file {self.ref}"
        return "a prompt"


@dataclass(frozen=True)
class RunSecrets:
    """The secrets a command read before contacting any server: the download link and the API key."""

    link: str | None = None
    api_key: str | None = None
    elasticsearch: str | None = None  # deployment.elasticsearch_credentials: snapshots (upgrade, rollback)


class Redactor:
    """Replaces every registered secret, in each form it can take in output, in any text that leaves the
    process: as given, URL-encoded (as a link or a form carries it) and escaped as a JSON string."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        value = value.strip()
        if len(value) < 4:  # too short to mask without mangling ordinary text; such a secret is refused
            return
        found = _forms(value)
        parts = urlsplit(value)
        if parts.scheme and parts.query:  # a download link: its token alone must be masked too
            for key, item in parse_qsl(parts.query):
                if key.lower() in ("token", "key", "password") and len(item) >= 4:
                    found |= _forms(item)
        with self._lock:
            self._values |= found

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def _forms(value: str) -> set[str]:
    """`value` as output may carry it: as is, percent-encoded (`@` kept or not, a space as %20 or +),
    inside a JSON string (non-ASCII as \\uXXXX or kept, `"` and `\\` escaped), and inside a Python
    `repr` or `ascii` (in either quotes: `'` escaped or not, `\\` doubled)."""
    encoded = {value, quote(value, safe=""), quote(value, safe="@")}
    encoded |= {quote_plus(value, safe=""), quote_plus(value, safe="@")}
    encoded |= {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    for shown in (repr(value)[1:-1], ascii(value)[1:-1]):
        encoded.add(shown)
        # repr picks the quotes that need no escaping; inside a longer repr, either quote may be escaped
        bare = shown.replace("\\'", "'").replace('\\"', '"')
        encoded |= {bare, bare.replace("'", "\\'"), bare.replace('"', '\\"')}
    return {form for form in encoded if form}


REDACTOR = Redactor()


def read_secret(
    ref: SecretRef, what: str, *, prompt: Callable[[str], str] | None = None, redactor: Redactor = REDACTOR
) -> str:
    """Resolve a secret source; the value is registered with the redactor before it is returned."""
    if ref.source == "env":
        value = os.environ.get(ref.ref)
        if not value:
            raise InvalidInput(f"{what}: environment variable {ref.ref} is not set (the inventory names it)")
    elif ref.source == "file":
        value = _read_secret_file(Path(os.path.expanduser(ref.ref)), what)
    else:
        if prompt is None or not sys.stdin.isatty():
            raise InvalidInput(
                f"{what} is to be asked at a prompt, but there is no terminal",
                hint="in automation, give it through {env: NAME} or {file: PATH} in the inventory",
            )
        value = prompt(f"{what}: ")
        if not value:
            raise InvalidInput(f"{what}: nothing was entered")
    value = value.strip()
    if len(value) < 4:
        raise InvalidInput(f"{what} from {ref.describe()} is shorter than 4 characters; refusing it")
    redactor.register(value)
    return value


def _read_secret_file(path: Path, what: str) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        raise InvalidInput(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(
            f"{what}: {path} is readable by other users (mode {stat.S_IMODE(info.st_mode):o}); refusing it",
            hint=f"chmod 600 {path}",
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{what}: {path} is not UTF-8 text") from None
    return lines[0] if lines else ""


def refuse_on_command_line(argv: list[str]) -> None:
    """Secrets have no command-line flags; catch `--password=...`-like attempts with a pointer."""
    for arg in argv:
        name = arg.split("=", 1)[0].lower()
        if name.startswith("--") and any(
            w in name for w in ("password", "token", "api-key", "secret", "link")
        ):
            raise UsageError(
                f"{name}: secrets are never taken on the command line (they would show in shell history "
                "and process lists)",
                hint="name an environment variable or a file in the inventory "
                "(ssh.sudo_password, installer.link, deployment.api_key)",
            )
