"""Reading a server over its shell: sudo, service state, xsoar-mt's marker and installer records, the running version.

One command (`state_command`) reports sudo, the service's LSB status, the server's clock and boot id, the
marker `<installer directory>/state.json` and every installer run xsoar-mt started there. For a server
without a sudo password it also asks the running service for its version, so a read-only look at such a
server is one round trip; with a sudo password the version is asked in a second command (the password
and the API key both travel on standard input, never in the same command).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from xsoar_mt.errors import InvalidInput
from xsoar_mt.inventory import Inventory
from xsoar_mt.observed import Installer, Marker, Prepared, Reading
from xsoar_mt.releases import Version
from xsoar_mt.remote import CommandKind, RemoteCommand, RemoteError, RemoteShell, SudoRejected
from xsoar_mt.remote_paths import MARKER_NAME, PREPARED_PREFIX, RemotePaths
from xsoar_mt.shellwords import fill, word

_MARK = "__xsoar_mt_"
_SUDO = f"{_MARK}sudo="
_STATUS = f"{_MARK}status="
_NOW = f"{_MARK}now="
_BOOT = f"{_MARK}boot="
_MARKER = f"{_MARK}marker="
_INSTALLER = f"{_MARK}installer="
_PREPARED = f"{_MARK}prepared="  # base64 of one prepared record: framed, so it cannot forge a line
_VERSION_BEGIN = f"{_MARK}version-begin"
_VERSION_END = f"{_MARK}version-rc="
# A version printed on its own (a custom version command may print just that).
_BARE_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:\s*\(B?\d+\))?")


def marker_path(inventory: Inventory) -> str:
    return RemotePaths.of(inventory).marker


def facts_script(inventory: Inventory) -> str:
    """Shell (no sudo, no stdin) printing the server's clock, boot id, the marker and every installer record."""
    directory = word(RemotePaths.of(inventory).root)
    return (
        f'xm_d={directory}; echo "{_NOW}$(date +%s)"; '
        f'echo "{_BOOT}$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"; '
        f'echo "{_MARKER}$(tr -d \'\\n\' < "$xm_d/{MARKER_NAME}" 2>/dev/null)"; '
        f'for xm_f in "$xm_d"/{PREPARED_PREFIX}*.json; do [ -f "$xm_f" ] || continue; '
        f'echo "{_PREPARED}$(head -c 4096 "$xm_f" | base64 | tr -d \'\\n\')"; done; '
        'for xm_f in "$xm_d"/install-*.pid; do [ -f "$xm_f" ] || continue; xm_b=${xm_f%.pid}; '
        'xm_r=${xm_b##*/install-}; xm_p=$(cat "$xm_f" 2>/dev/null); xm_a=0; '
        'if [ -n "$xm_p" ] && [ -d "/proc/$xm_p" ] && grep -qa "install-$xm_r" "/proc/$xm_p/cmdline" 2>/dev/null; '
        "then xm_a=1; fi; "
        'xm_c=$(cat "$xm_b.rc" 2>/dev/null); xm_k=$(cat "$xm_b.boot" 2>/dev/null); '
        'xm_s=$(stat -c %Y "$xm_f" 2>/dev/null); xm_e=$(stat -c %Y "$xm_b.rc" 2>/dev/null); '
        f'echo "{_INSTALLER}$xm_r ${{xm_p:--}} $xm_a ${{xm_c:--}} ${{xm_k:--}} ${{xm_s:--}} ${{xm_e:--}}"; done'
    )


def state_command(inventory: Inventory, server: str, *, with_version: bool) -> str:
    """One round trip: sudo, the service's LSB status (0 running, 3 stopped), then `facts_script`.

    With `with_version`, the command first reads the API key's header line from stdin and, when the
    service runs, asks it for its version. The status command's stderr is left alone: `sudo -S` prints
    its password prompt there.
    """
    head = "IFS= read -r xm_h; " if with_version else ""
    status = fill(inventory.commands.status, server=server, address=inventory.server(server).address)
    body = (
        f"{head}sudo true; echo {_SUDO}$?; {status} >/dev/null; xm_st=$?; "
        f"echo {_STATUS}$xm_st; {facts_script(inventory)}"
    )
    if with_version:
        body += (
            f'; if [ "$xm_st" = 0 ]; then echo {_VERSION_BEGIN}; '
            f"printf '%s\\n' \"$xm_h\" | {version_command(inventory, server)}; "
            f"echo; echo {_VERSION_END}$?; fi"
        )
    return body


def _value(stdout: str, mark: str) -> str | None:
    for line in stdout.splitlines():
        if line.startswith(mark):
            return line[len(mark) :].strip()
    return None


def _code(stdout: str, mark: str) -> int | None:
    value = _value(stdout, mark)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def state_reading(server: str, stdout: str, at: float) -> Reading:
    """What `state_command` printed, read at `at`: whether sudo works, the service's LSB status (only when
    sudo works), the marker and the installer records. No error is set: the caller words a sudo failure."""
    sudo_ok = _code(stdout, _SUDO) == 0
    marker, installers = parse_facts(stdout, at)
    status = _code(stdout, _STATUS) if sudo_ok else None
    return Reading(server, at, sudo_ok=sudo_ok, status_code=status, marker=marker, installers=installers,
                   prepared=parse_prepared(server, stdout, at))  # fmt: skip


def parse_prepared(server: str, stdout: str, local_now: float) -> tuple[Prepared, ...]:
    """The prepared records a server holds, their times moved onto this machine's clock. A record that is
    not base64 of one xsoar-mt wrote, or that names another server, is left out: that installer is not
    prepared (the night fetches it)."""
    server_now = _code(stdout, _NOW)
    offset = local_now - server_now if server_now is not None else 0.0
    found: dict[str, Prepared] = {}
    for line in stdout.splitlines():
        if not line.startswith(_PREPARED):
            continue
        try:
            text = base64.b64decode(line[len(_PREPARED) :].strip(), validate=True).decode("utf-8")
            record = Prepared.parse(text)
        except (ValueError, InvalidInput):
            continue
        if record.server == server:
            found[record.release] = replace(record, at=record.at + offset)
    return tuple(found[r] for r in sorted(found))


def parse_facts(stdout: str, local_now: float) -> tuple[Marker | None, tuple[Installer, ...]]:
    """The marker and installer records, their times moved onto this machine's clock."""
    server_now = _code(stdout, _NOW)
    offset = local_now - server_now if server_now is not None else 0.0
    boot = _value(stdout, _BOOT) or None
    marker = None
    raw = _value(stdout, _MARKER)
    if raw:
        try:
            found = Marker.parse(raw)
            marker = replace(found, at=found.at + offset)
        except InvalidInput:
            marker = None  # not ours, or torn: as good as none
    installers = []
    for line in stdout.splitlines():
        if not line.startswith(_INSTALLER):
            continue
        fields = line[len(_INSTALLER) :].split()
        if len(fields) != 7:
            continue
        release, pid, alive, code, started_boot, started, finished = (None if f == "-" else f for f in fields)
        if release is None:
            continue
        rebooted = bool(started_boot and boot and started_boot != boot)
        installers.append(
            Installer(
                release,
                int(pid) if pid and pid.isdigit() else None,
                int(code) if code and code.lstrip("-").isdigit() else None,
                alive == "1" and not rebooted,
                rebooted,
                int(started) + offset if started and started.isdigit() else None,
                int(finished) + offset if finished and finished.isdigit() and code else None,
            )
        )
    return marker, tuple(installers)


def version_command(inventory: Inventory, server: str) -> str:
    address = inventory.server(server).address
    return fill(inventory.commands.version, port=inventory.communication_port, address=address)


def version_stdin(api_key: str | None) -> str:
    """The version probe reads request headers on stdin, so the API key never sits on a command line."""
    return f"Authorization: {api_key}\n" if api_key else "\n"


def parse_version(output: str) -> Version:
    """The version from `/about`'s JSON (`demistoVersion`), or a version printed on its own.

    Any other text is refused, never searched for something that looks like a version: an error page's
    `nginx/1.18.0` is not the server's version.
    """
    text = output.strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and "demistoVersion" in data:
        return Version.parse(str(data["demistoVersion"]))
    if data is None and _BARE_VERSION.fullmatch(text):
        return Version.parse(text)
    raise InvalidInput(f"the version probe did not print demistoVersion: {text[:120]!r}")


def read_version(shell: RemoteShell, inventory: Inventory, api_key: str | None) -> Version:
    command = RemoteCommand(version_command(inventory, shell.server), CommandKind.VERSION)
    result = shell.run(command, stdin=version_stdin(api_key), timeout=30)
    if not result.ok:
        raise RemoteError(
            shell.server, f"the version probe failed (exit {result.exit_code}): {result.tail(2)}"
        )
    try:
        return parse_version(result.stdout)
    except InvalidInput as exc:
        raise RemoteError(shell.server, exc.message) from None


def _embedded_version(stdout: str) -> tuple[Version | None, str | None]:
    if _VERSION_BEGIN not in stdout:
        return None, None
    body = stdout.split(_VERSION_BEGIN, 1)[1]
    text, _, rest = body.partition(_VERSION_END)
    code = rest.strip().splitlines()[0] if rest.strip() else ""
    if code != "0":
        return None, f"the version probe failed (exit {code or '?'}): {text.strip()[-120:]}"
    try:
        return parse_version(text), None
    except InvalidInput as exc:
        return None, exc.message


def observe(
    shell: RemoteShell, inventory: Inventory, api_key: str | None, *, now: Callable[[], float] = time.time
) -> Reading:
    """Read one server without changing anything: one round trip, or two for a server with a sudo password."""
    name = shell.server
    try:
        shell.connect()
    except RemoteError as exc:
        return Reading(name, now(), error=exc.detail)
    password = inventory.server(name).ssh.sudo_password is not None
    embed = not password and "sudo" not in inventory.commands.version
    try:
        result = shell.run(
            state_command(inventory, name, with_version=embed),
            stdin=version_stdin(api_key) if embed else None,
            timeout=60,
        )
    except SudoRejected as exc:
        return Reading(name, now(), sudo_ok=False, error=f"sudo does not work: {exc.detail}")
    except RemoteError as exc:
        return Reading(name, now(), error=exc.detail)
    reading = state_reading(name, result.stdout, now())
    if not reading.sudo_ok:
        return replace(reading, error=f"sudo does not work: {result.tail(2) or 'no output'}")
    if embed:
        version, problem = _embedded_version(result.stdout)
        return replace(reading, api_version=version, api_error=problem)
    if reading.status_code == 0:
        try:
            return replace(reading, api_version=read_version(shell, inventory, api_key))
        except RemoteError as exc:
            return replace(reading, api_error=exc.detail)
    return reading


def observe_all(
    inventory: Inventory,
    shells: Callable[[str], RemoteShell],
    api_key: str | None,
    servers: Iterable[str] | None = None,
) -> dict[str, Reading]:
    """Read every server (or `servers`) at once."""
    names = list(servers) if servers is not None else [s.name for s in inventory.servers]
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(64, len(names)))) as workers:
        found = list(workers.map(lambda name: observe(shells(name), inventory, api_key), names))
    return {reading.server: reading for reading in found}


def marker_command(inventory: Inventory, server: str, marker: Marker) -> str:
    """Write the marker on the server (its own clock for the time), atomically; no sudo, no secret."""
    directory = word(RemotePaths.of(inventory).root)
    text = (
        f"mkdir -p {directory} && printf '%s%s}}\\n' {word(marker.prefix(server))} \"$(date +%s)\" "
        f"> {directory}/{MARKER_NAME}.tmp && mv -f {directory}/{MARKER_NAME}.tmp {directory}/{MARKER_NAME}"
    )
    return RemoteCommand(text, CommandKind.MARKER)


def prepared_command(inventory: Inventory, record: Prepared) -> RemoteCommand:
    """Write the record of an installer `upgrade prepare` verified (its own clock for the time), atomically."""
    paths = RemotePaths.of(inventory)
    target = word(paths.prepared(record.release))
    draft = word(paths.prepared(record.release) + ".tmp")
    text = (
        f"mkdir -p {word(paths.root)} && printf '%s%s}}\\n' {word(record.prefix())} \"$(date +%s)\" "
        f"> {draft} && mv -f {draft} {target}"
    )
    return RemoteCommand(text, CommandKind.PREPARED_RECORD, record.release)
