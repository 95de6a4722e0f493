"""Reading a server over its shell: sudo, service state, xsoar-mt's marker and installer records, the running version.

One command (`state_command`) reports sudo, the service's LSB status, the server's clock and boot id, the
marker `<installer directory>/state.json` and every installer run xsoar-mt started there. For a server
without a sudo password it also asks the running service for its version, so a read-only look at such a
server is one round trip; with a sudo password the version is asked in a second command (the password
and the API key both travel on standard input, never in the same command).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from xsoar_mt.errors import InvalidInput
from xsoar_mt.framed import (
    EPOCH_MAX,
    EXIT_CODE_MAX,
    PID_MAX,
    SHELL_FUNCTIONS,
    Unreadable,
    decode,
    file_text,
    lines,
    number,
    shown_text,
)
from xsoar_mt.inventory import Inventory
from xsoar_mt.observed import Installer, Marker, Prepared, Reading
from xsoar_mt.releases import Version
from xsoar_mt.remote import CommandKind, RemoteCommand, RemoteError, RemoteShell, SudoRejected
from xsoar_mt.remote_paths import MARKER_NAME, PREPARED_PREFIX, RemotePaths
from xsoar_mt.shellwords import fill, word

_MARK = "__xsoar_mt_"
_SUDO = "sudo"
_STATUS = "status"
_NOW = "now"
_BOOT = "boot"
_MARKER = "marker"
_INSTALLER = "installer"
_PREPARED = "prepared"  # one prepared record per line, in base64 (repeated, like installer records)
_VERSION = "version"
_VERSION_RC = "version-rc"
_ONCE = (_SUDO, _STATUS, _NOW, _BOOT, _MARKER, _VERSION, _VERSION_RC)
# A version printed on its own (a custom version command may print just that).
_BARE_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:\s*\(B?\d+\))?")
# The release in an installer record's name (`install-6.12.pid`), as xsoar-mt names them; any other
# `install-*.pid` (`install-old.pid`) is not xsoar-mt's and is passed over.
_RELEASE = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}(?:\.[0-9]{1,4})?")


def marker_path(inventory: Inventory) -> str:
    return RemotePaths.of(inventory).marker


def facts_script(inventory: Inventory) -> str:
    """Shell (no sudo, no stdin) printing the server's clock, boot id, the marker and every installer record.

    Each line is `__xsoar_mt_<field>=<value>`; what the server holds (boot id, marker, an installer's
    name, pid, exit code and boot id) is sent in base64, so no content can start a line or split a field.
    Numbers the script makes itself (the clock, file times, 0/1) are sent as they are.
    """
    directory = word(RemotePaths.of(inventory).root)
    return (
        f'{SHELL_FUNCTIONS}xm_d={directory}; echo "{_MARK}{_NOW}=$(date +%s)"; '
        f'echo "{_MARK}{_BOOT}=$(xm_encf /proc/sys/kernel/random/boot_id)"; '
        f'echo "{_MARK}{_MARKER}=$(xm_encf "$xm_d/{MARKER_NAME}")"; '
        f'for xm_f in "$xm_d"/{PREPARED_PREFIX}*.json; do [ -f "$xm_f" ] || continue; '
        f'echo "{_MARK}{_PREPARED}=$(xm_enc "$(head -c 4096 "$xm_f")")"; done; '
        'for xm_f in "$xm_d"/install-*.pid; do [ -f "$xm_f" ] || continue; xm_b=${xm_f%.pid}; '
        'xm_r=${xm_b##*/install-}; xm_p=$(cat "$xm_f" 2>/dev/null); xm_a=0; '
        'case $xm_p in ""|*[!0-9]*) ;; *) '
        'if [ -d "/proc/$xm_p" ] && grep -qa "install-$xm_r" "/proc/$xm_p/cmdline" 2>/dev/null; '
        "then xm_a=1; fi;; esac; "
        'xm_s=$(stat -c %Y "$xm_f" 2>/dev/null); xm_e=$(stat -c %Y "$xm_b.rc" 2>/dev/null); '
        f'echo "{_MARK}{_INSTALLER}=$(xm_enc "$xm_r") $(xm_encf "$xm_f") $xm_a $(xm_encf "$xm_b.rc") '
        '$(xm_encf "$xm_b.boot") ${xm_s:--} ${xm_e:--}"; done'
    )


def state_command(inventory: Inventory, server: str, *, with_version: bool) -> str:
    """One round trip: sudo, the service's LSB status (0 running, 3 stopped), then `facts_script`.

    With `with_version`, the command first reads the API key's header line from stdin and, when the
    service runs, asks it for its version (its answer sent in base64, like everything the server holds).
    The status command's stderr is left alone: `sudo -S` prints its password prompt there.
    """
    head = "IFS= read -r xm_h; " if with_version else ""
    status = fill(inventory.commands.status, server=server, address=inventory.server(server).address)
    body = (
        f"{head}sudo true; echo {_MARK}{_SUDO}=$?; {status} >/dev/null; xm_st=$?; "
        f"echo {_MARK}{_STATUS}=$xm_st; {facts_script(inventory)}"
    )
    if with_version:
        body += (
            f'; if [ "$xm_st" = 0 ]; then xm_v=$(printf \'%s\\n\' "$xm_h" | {version_command(inventory, server)}); '
            f'xm_vc=$?; echo "{_MARK}{_VERSION}=$(xm_enc "$xm_v")"; echo "{_MARK}{_VERSION_RC}=$xm_vc"; fi'
        )
    return body


def _fields(stdout: str) -> tuple[dict[str, str], list[str]]:
    """The answer's `__xsoar_mt_<field>=` lines: each single field at most once, and the installer records.
    Lines that are not the script's own (a login banner) are passed over."""
    once: dict[str, str] = {}
    records: list[str] = []
    for line in lines(stdout):
        if not line.startswith(_MARK):
            continue
        key, sep, value = line[len(_MARK) :].partition("=")
        if not sep:
            continue
        if key == _INSTALLER:
            records.append(value)
        elif key in _ONCE:
            if key in once:
                raise Unreadable(f"its answer holds {key} twice")
            once[key] = value
    return once, records


def state_reading(server: str, stdout: str, at: float) -> Reading:
    """What `state_command` printed, read at `at`: whether sudo works, the service's LSB status (only when
    sudo works), the marker and the installer records. No error is set: the caller words a sudo failure.
    An answer that does not read as framed gives a reading with `unreadable` set: that server's version
    is then known only from its service's own answer (observed.py)."""
    try:
        once, _ = _fields(stdout)
        sudo_ok = number(once.get(_SUDO), EXIT_CODE_MAX, "sudo's exit code") == 0
        status = (
            number(once.get(_STATUS), EXIT_CODE_MAX, "the status command's exit code") if sudo_ok else None
        )
    except Unreadable as exc:
        return Reading(server, at, unreadable=f"its answer cannot be read ({exc.reason})")
    try:
        marker, installers = parse_facts(stdout, at)
    except Unreadable as exc:
        return Reading(
            server,
            at,
            sudo_ok=sudo_ok,
            status_code=status,
            unreadable=f"its installer records cannot be read ({exc.reason})",
        )
    return Reading(
        server,
        at,
        sudo_ok=sudo_ok,
        status_code=status,
        marker=marker,
        installers=installers,
        prepared=parse_prepared(server, stdout, at),
    )


def parse_prepared(server: str, stdout: str, local_now: float) -> tuple[Prepared, ...]:
    """The prepared records a server holds, their times moved onto this machine's clock. A record that is
    not base64 of one xsoar-mt wrote, or that names another server, is left out: that installer is not
    prepared (the night fetches it)."""
    try:
        once, _ = _fields(stdout)
        server_now = number(once.get(_NOW), EPOCH_MAX, "the server's clock")
    except Unreadable:
        return ()
    offset = local_now - server_now if server_now is not None else 0.0
    found: dict[str, Prepared] = {}
    for line in lines(stdout):
        if not line.startswith(f"{_MARK}{_PREPARED}="):
            continue
        try:
            text = decode(line.partition("=")[2], "a prepared record")
            record = Prepared.parse(text or "")
        except (Unreadable, InvalidInput):
            continue
        if record.server == server:
            found[record.release] = replace(record, at=record.at + offset)
    return tuple(found[r] for r in sorted(found))


def parse_facts(stdout: str, local_now: float) -> tuple[Marker | None, tuple[Installer, ...]]:
    """The marker and installer records, their times moved onto this machine's clock. Raises Unreadable
    for an answer that is not framed as `facts_script` frames it (a field twice, a number that is not one)."""
    once, records = _fields(stdout)
    server_now = number(once.get(_NOW), EPOCH_MAX, "the server's clock")
    offset = local_now - server_now if server_now is not None else 0.0
    boot = file_text(once.get(_BOOT), "the boot id")
    marker = None
    raw = decode(once.get(_MARKER), "the marker")
    if raw:
        try:
            found = Marker.parse(raw)
            marker = replace(found, at=found.at + offset)
        except InvalidInput:
            marker = None  # not ours, or torn: as good as none
    installers = []
    for record in records:
        fields = record.split(" ")
        if len(fields) != 7:
            raise Unreadable(f"an installer record has {len(fields)} fields, not 7")
        name, pid, alive, code, started_boot, started, finished = fields
        release = decode(name, "an installer's name")
        if release is None or _RELEASE.fullmatch(release) is None:
            continue  # not a record xsoar-mt wrote (`install-old.pid`)
        what = f"the installer record for {release}:"
        exit_code = number(file_text(code, f"{what} exit code"), EXIT_CODE_MAX, f"{what} exit code")
        launched = file_text(started_boot, f"{what} boot id")
        rebooted = bool(launched and boot and launched != boot)
        began = number(started, EPOCH_MAX, f"{what} start time")
        ended = number(finished, EPOCH_MAX, f"{what} end time")
        installers.append(
            Installer(
                release,
                number(file_text(pid, f"{what} pid"), PID_MAX, f"{what} pid"),
                exit_code,
                number(alive, 1, f"{what} alive flag") == 1 and not rebooted,
                rebooted,
                began + offset if began is not None else None,
                ended + offset if ended is not None and exit_code is not None else None,
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
    raise InvalidInput(f"the version probe did not print demistoVersion: {shown_text(text, 120)}")


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
    """The version the state command asked the service for (its own framed fields), or why there is none."""
    try:
        once, _ = _fields(stdout)
        if _VERSION_RC not in once:
            return None, None
        code = number(once[_VERSION_RC], EXIT_CODE_MAX, "the version probe's exit code")
        text = decode(once.get(_VERSION), "the version probe's answer") or ""
    except Unreadable as exc:
        return None, exc.reason
    if code != 0:
        return None, f"the version probe failed (exit {code}): {shown_text(text.strip()[-120:])}"
    try:
        return parse_version(text), None
    except InvalidInput as exc:
        return None, exc.message


def observe_server(
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
    if reading.unreadable is not None and reading.sudo_ok is None:
        return reading  # not even sudo's answer reads: nothing else it says is taken
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
        found = list(workers.map(lambda name: observe_server(shells(name), inventory, api_key), names))
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
