"""What xsoar-mt knows of each server's pre-upgrade backup, read strictly from a marker or the local record.

A backup record is written when xsoar-mt takes a backup (on the server in its marker, and locally): the
release and build the server ran, the archive's path, size and sha256, the run and the moment. Rollback
trusts nothing else. Text from a server or a file may be anything, so reading a record is framed
strictly: a field missing, of the wrong type, out of range, or not one this version writes makes that one
server "no usable backup", with the reason; it never raises. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xsoar_mt.errors import shown
from xsoar_mt.framed import Unreadable, lines, number
from xsoar_mt.releases import ReleaseLine
from xsoar_mt.shellwords import LATER, fill, word

_SHA256 = re.compile(r"[0-9a-f]{64}")
_BUILD = re.compile(r"[0-9]{1,20}")
_RUN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
_SNAPSHOT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,200}")  # Elasticsearch's own rule for snapshot names
_PATH = re.compile(r"/[A-Za-z0-9_./+@:-]{1,4095}")
_FIELDS = frozenset({"release", "build", "path", "size", "sha256", "run_id", "taken_at", "es_snapshot"})
_REQUIRED = ("release", "path", "size", "sha256", "run_id", "taken_at")


@dataclass(frozen=True)
class BackupRecord:
    """One server's backup taken just before xsoar-mt upgraded it."""

    server: str
    release: str  # the release the server ran when it was backed up: where rollback returns it
    build: str | None
    path: str  # the archive on the server
    size: int  # bytes
    sha256: str
    run_id: str
    taken_at: float  # epoch seconds (this machine's clock)
    es_snapshot: str | None = None  # with Elasticsearch: the snapshot taken before the first stop

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "build": self.build,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "run_id": self.run_id,
            "taken_at": self.taken_at,
            **({"es_snapshot": self.es_snapshot} if self.es_snapshot is not None else {}),
        }


@dataclass(frozen=True)
class NoBackup:
    """A server rollback cannot take back: nothing recorded, or a record that cannot be trusted."""

    server: str
    reason: str


ServerBackup = BackupRecord | NoBackup


def read_backup(server: str, data: Any, line: ReleaseLine) -> ServerBackup:
    """The backup record of `server` from its JSON form (`BackupRecord.to_dict`), or why there is none.

    `data` is whatever the marker or the local record holds: None (nothing recorded), a record, or a list
    of records (the newest is the one taken just before the last upgrade). Every field is checked; an
    unknown one is refused too, since a record this version did not write cannot be vouched for.
    """
    if data is None:
        return NoBackup(
            server, "no backup recorded (xsoar-mt has not backed this server up before an upgrade)"
        )
    if isinstance(data, list):
        if not data:
            return NoBackup(server, "no backup recorded")
        records = [read_backup(server, item, line) for item in data]
        bad = next((r for r in records if isinstance(r, NoBackup)), None)
        if bad is not None:
            return bad
        return max(records, key=lambda r: r.taken_at if isinstance(r, BackupRecord) else 0.0)
    if not isinstance(data, dict):
        return NoBackup(server, f"the backup record is not an object ({_kind(data)})")
    unknown = sorted(str(k) for k in data if k not in _FIELDS)
    if unknown:
        return NoBackup(
            server, f"the backup record has a field xsoar-mt does not write: {shown(unknown[0], 60)}"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        return NoBackup(server, f"the backup record has no {missing[0]}")
    problem = _problem(data, line)
    if problem is not None:
        return NoBackup(server, f"the backup record's {problem}")
    build = data.get("build")
    return BackupRecord(
        server=server,
        release=data["release"],
        build=build,
        path=data["path"],
        size=data["size"],
        sha256=data["sha256"],
        run_id=data["run_id"],
        taken_at=float(data["taken_at"]),
        es_snapshot=data.get("es_snapshot"),
    )


def _problem(data: Mapping[str, Any], line: ReleaseLine) -> str | None:
    """The first field that is not what xsoar-mt writes, as `<field> <what is wrong>`."""
    release = data["release"]
    if not isinstance(release, str) or release not in line:
        return f"release {_kind(release)} is not a known release"
    build = data.get("build")
    if build is not None and (not isinstance(build, str) or not _BUILD.fullmatch(build)):
        return f"build {_kind(build)} is not a build number"
    path = data["path"]
    if not isinstance(path, str) or not _PATH.fullmatch(path) or "/../" in f"{path}/":
        return f"path {_kind(path)} is not an absolute path of plain characters"
    size = data["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return f"size {_kind(size)} is not a positive number of bytes"
    sha = data["sha256"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        return f"sha256 {_kind(sha)} is not 64 lowercase hex digits"
    run_id = data["run_id"]
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        return f"run_id {_kind(run_id)} is not a run id"
    taken = data["taken_at"]
    if (
        isinstance(taken, bool)
        or not isinstance(taken, int | float)
        or not math.isfinite(taken)
        or taken <= 0
    ):
        return f"taken_at {_kind(taken)} is not a moment"
    snapshot = data.get("es_snapshot")
    if snapshot is not None and (not isinstance(snapshot, str) or not _SNAPSHOT.fullmatch(snapshot)):
        return f"es_snapshot {_kind(snapshot)} is not a snapshot name"
    return None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "(an object)"
    if isinstance(value, list):
        return "(a list)"
    return shown(str(value), 60) if not isinstance(value, str) else shown(value, 60)


def read_backups(
    servers: list[str], recorded: Mapping[str, Any], line: ReleaseLine
) -> dict[str, ServerBackup]:
    """Each server's backup from the local record's `backup_records` (server -> record or list of them)."""
    return {name: read_backup(name, recorded.get(name), line) for name in servers}


# -- checking a backup on its server ---------------------------------------------------------------------

_CHECK_MARK = "xsoar-mt-backup:"


def backup_check_command(record: BackupRecord) -> str:
    """Read only: the archive's size and sha256 on the server, one framed line (`xsoar-mt-backup: SIZE SHA`),
    or `xsoar-mt-backup: missing` when it is not a regular file."""
    path = word(record.path)
    return (
        f"if sudo test -f {path} && ! sudo test -L {path}; then "
        f'echo "{_CHECK_MARK} $(sudo stat -c %s -- {path}) $(sudo sha256sum -- {path} | cut -d" " -f1)"; '
        f'else echo "{_CHECK_MARK} missing"; fi'
    )


def backup_check_verdict(record: BackupRecord, stdout: str) -> str | None:
    """What is wrong with the backup as its server reports it (`backup_check_command`), or None if it is the
    archive that was recorded. Anything but one well-formed answer line is a reason too."""
    found = [ln.strip() for ln in lines(stdout) if ln.strip().startswith(_CHECK_MARK)]
    if len(found) != 1:
        return "the server's answer about the backup could not be read"
    answer = found[0][len(_CHECK_MARK) :].split()
    if answer == ["missing"]:
        return f"the backup {record.path} is gone (not a regular file on the server)"
    size = _size(answer[0]) if len(answer) == 2 else None
    if size is None or not _SHA256.fullmatch(answer[1]):
        return "the server's answer about the backup could not be read"
    sha = answer[1]
    if sha != record.sha256:
        return (
            f"the backup {record.path} has changed since it was taken (sha256 {sha[:12]}..., "
            f"recorded {record.sha256[:12]}...): it may have been tampered with"
        )
    if size != record.size:
        return f"the backup {record.path} is {size} bytes, recorded {record.size}"
    return None


def restore_command(record: BackupRecord, template: str) -> str:
    """Put the backup's files back with the inventory's `commands.restore` (`template`, which mirrors its
    `commands.backup`; `{archive}` is this server's own archive), after checking the archive's sha256
    against the record: a changed archive is never extracted."""
    path = word(record.path)
    check = (
        f"want={word(record.sha256)}; got=$(sudo sha256sum -- {path} | cut -d' ' -f1); "
        f'if [ "$got" != "$want" ]; then echo "sha256 of "{path}" is $got, recorded $want: not restored" >&2; '
        "exit 1; fi; "
    )
    return check + fill(template, archive=record.path, server=LATER, address=LATER)


# -- recording a backup just taken (for the upgrade's backup step) ---------------------------------------

_RECORD_MARK = "xsoar-mt-backup-taken:"


def backup_record_command(backup_dir: str, stamp: str) -> str:
    """Read only, right after the backup step: the archive it made (the one file in `backup_dir` whose name
    holds the step's `stamp`) as one framed line, `xsoar-mt-backup-taken: SIZE SHA256 ABSOLUTE-PATH`."""
    directory, pattern = word(backup_dir), word(f"*{stamp}*")
    return (
        f"cd {directory} && set -- $(sudo find . -maxdepth 1 -type f -name {pattern} -print) && "
        '[ "$#" = 1 ] && p=$(readlink -f -- "$1") && '
        f'echo "{_RECORD_MARK} $(sudo stat -c %s -- "$p") $(sudo sha256sum -- "$p" | cut -d" " -f1) $p"'
    )


def record_from_answer(
    server: str,
    stdout: str,
    *,
    release: str,
    build: str | None,
    run_id: str,
    taken_at: float,
    line: ReleaseLine,
) -> ServerBackup:
    """The backup record from what `backup_record_command` printed, checked as strictly as a stored one."""
    found = [ln.strip() for ln in lines(stdout) if ln.strip().startswith(_RECORD_MARK)]
    if len(found) != 1:
        return NoBackup(server, "the server did not name exactly one archive for this backup")
    parts = found[0][len(_RECORD_MARK) :].strip().split(" ", 2)
    size = _size(parts[0]) if len(parts) == 3 else None
    if size is None:
        return NoBackup(server, "the server's answer about the backup just taken could not be read")
    data = {
        "release": release,
        "build": build,
        "path": parts[2],
        "size": size,
        "sha256": parts[1],
        "run_id": run_id,
        "taken_at": taken_at,
    }
    return read_backup(server, data, line)


_SIZE_MAX = 1 << 50  # bytes: a backup archive larger than a pebibyte is not an answer to believe


def _size(text: str) -> int | None:
    """An archive's size as its server printed it: ASCII digits up to _SIZE_MAX, else None (`str.isdigit`
    takes `²`, which `int` refuses, and a number of thousands of digits makes `int` raise)."""
    try:
        return number(text, _SIZE_MAX, "the backup's size")
    except Unreadable:
        return None
