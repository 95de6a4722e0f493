"""Probing a server over its shell: sudo, service state and the running version."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from xsoar_mt.errors import InvalidInput
from xsoar_mt.inventory import Inventory
from xsoar_mt.releases import Version
from xsoar_mt.remote import RemoteError, RemoteShell
from xsoar_mt.shellwords import fill

_SUDO = "__xsoar_mt_sudo="
_STATUS = "__xsoar_mt_status="
_VERSION_IN_TEXT = re.compile(r"\b(\d+\.\d+(?:\.\d+)?)\b")


@dataclass(frozen=True)
class Observation:
    """What a probe saw on one server. `error` is set when the server could not be probed."""

    server: str
    version: Version | None = None
    running: bool | None = None
    sudo_ok: bool | None = None
    error: str | None = None


def service_state_command(inventory: Inventory) -> str:
    """One round trip: whether sudo works, and the service's LSB status (0 running, 3 stopped).

    The status command's stderr is left alone: `sudo -S` prints its password prompt there, and a prompt
    sent to /dev/null would leave sudo waiting for a password nobody knows it asked for.
    """
    return f"sudo true; echo {_SUDO}$?; {inventory.commands.status} >/dev/null; echo {_STATUS}$?"


def _marker(stdout: str, mark: str) -> int | None:
    for line in stdout.splitlines():
        if line.startswith(mark):
            value = line[len(mark) :].strip()
            return int(value) if value.lstrip("-").isdigit() else None
    return None


def parse_state(stdout: str) -> tuple[bool, bool]:
    """(sudo works, service running) from `service_state_command`'s output."""
    return _marker(stdout, _SUDO) == 0, _marker(stdout, _STATUS) == 0


def version_command(inventory: Inventory, server: str) -> str:
    address = inventory.server(server).address
    return fill(inventory.commands.version, port=inventory.communication_port, address=address)


def version_stdin(api_key: str | None) -> str:
    """The version probe reads request headers on stdin, so the API key never sits on a command line."""
    return f"Authorization: {api_key}\n" if api_key else ""


def parse_version(output: str) -> Version:
    """The version from `/about`'s JSON (`demistoVersion`) or the first version number printed."""
    text = output.strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and "demistoVersion" in data:
            return Version.parse(str(data["demistoVersion"]))
    except json.JSONDecodeError:
        pass
    found = _VERSION_IN_TEXT.search(text)
    if not found:
        raise InvalidInput(f"the version probe printed no version: {text[:120]!r}")
    return Version.parse(found.group(1))


def read_version(shell: RemoteShell, inventory: Inventory, api_key: str | None) -> Version:
    result = shell.run(version_command(inventory, shell.server), stdin=version_stdin(api_key), timeout=30)
    if not result.ok:
        raise RemoteError(
            shell.server, f"the version probe failed (exit {result.exit_code}): {result.tail(2)}"
        )
    try:
        return parse_version(result.stdout)
    except InvalidInput as exc:
        raise RemoteError(shell.server, exc.message) from None


def probe(shell: RemoteShell, inventory: Inventory, api_key: str | None) -> Observation:
    """Sudo and service state in one command, then the version if the service runs."""
    try:
        state = shell.run(service_state_command(inventory), timeout=60)
        sudo_ok, running = parse_state(state.stdout)
        if not sudo_ok:
            return Observation(shell.server, sudo_ok=False, error=f"sudo does not work: {state.tail(2)}")
        version = read_version(shell, inventory, api_key) if running else None
        return Observation(shell.server, version, running, True)
    except RemoteError as exc:
        return Observation(shell.server, error=exc.detail, sudo_ok=None)
