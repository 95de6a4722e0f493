"""The private working directory on each server: its facts read, judged in the way of OpenSSH's
StrictModes, and the command that makes the directory with its mode in one step (text only: the check
on each server before a run writes there is workdir_check.py).

xsoar-mt writes the installer, its records, its marker, its lock and the backups as root (or as the SSH
user, who can become root) into `installer.directory` and `commands.backup_dir`. Another local user who
could write to one of them, or to one of their parents, could swap the installer or point a record at a
file root then overwrites. So before anything is written there, every directory from `/` down to each of
them must be: not a symlink, owned by root or by the SSH user, and not writable by group or others. One
exception keeps /tmp and /var/tmp usable as parents: a parent writable by others that has the sticky bit
and belongs to root, since there nobody can rename or remove an entry they do not own.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from xsoar_mt.errors import ExitCode, XsoarMtError
from xsoar_mt.inventory import Inventory
from xsoar_mt.shellwords import word

CHECK = "working-directory"  # the preflight check's name
_ENTRY = "XM_DIR "
_UID = "XM_UID "
_LINE = re.compile(r"XM_DIR ([0-9]{1,3}) ([dlf-]) ([0-9]{1,10}|-) ([0-7]{1,6}|-) ([A-Za-z0-9+/=]{0,8192})")
_NUMBER = re.compile(r"[0-9]{1,10}")

# One line per directory from / down to `$1` (made absolute against the physical working directory):
# `XM_DIR <index> <kind d|l|f|-> <uid> <octal mode> <base64 path>`; `-` where it does not exist.
_WALK = (
    'xm_one() { if [ -L "$1" ]; then k=l; elif [ -d "$1" ]; then k=d; elif [ -e "$1" ]; then k=f; else k=-; fi; '
    'if [ "$k" = - ]; then s="- -"; else s=$(stat -c "%u %a" "$1" 2>/dev/null) || s="- -"; fi; '
    "echo \"XM_DIR $2 $k $s $(printf '%s' \"$1\" | base64 | tr -d '\\n')\"; }; "
    'xm_walk() { ( set -f; p=$1; case $p in /*) ;; *) p="$(pwd -P)/$p";; esac; xm_one / "$2"; c=; IFS=/; '
    'for x in ${p#/}; do [ -n "$x" ] || continue; c="$c/$x"; xm_one "$c" "$2"; done ); }; '
)


class DirectoryRefused(XsoarMtError):
    """A working directory on a server that others could write to: nothing is written there."""

    exit_code = ExitCode.PREFLIGHT_FAILED


@dataclass(frozen=True)
class Entry:
    """One directory on the way down to a working directory, as the server described it."""

    kind: str  # d directory, l symlink, f something else, - missing
    uid: int | None
    mode: int | None
    path: str


@dataclass(frozen=True)
class Problem:
    """Why one working directory is refused: the path at fault, what was found there, and the fix."""

    setting: str  # installer.directory or commands.backup_dir
    directory: str
    path: str
    found: str
    fix: str

    @property
    def detail(self) -> str:
        return f"{self.setting} {self.directory}: {self.path} {self.found}"


def directories(inventory: Inventory) -> list[tuple[str, str]]:
    """The working directories a run writes to, with the setting that names each."""
    found = [("installer.directory", inventory.installer.directory)]
    if inventory.commands.backup and inventory.commands.backup_dir:
        found.append(("commands.backup_dir", inventory.commands.backup_dir))
    return found


def walk_script(paths: Sequence[str]) -> str:
    """Shell (no sudo, no stdin) describing every directory from / down to each of `paths`."""
    walks = "".join(f"xm_walk {word(p)} {i}; " for i, p in enumerate(paths))
    return f'{_WALK}echo "{_UID}$(id -u)"; {walks}'.rstrip("; ")


def make_command(path: str) -> str:
    """Create the working directory with mode 0700 in one step (umask 077 also covers missing parents); a
    user who may not create it there (/var/lib) makes it through sudo, owned by that same user."""
    p = word(path)
    return (
        f"if ! (umask 077 && mkdir -p -- {p}) 2>/dev/null; then "
        f'sudo install -d -m 0700 -o "$(id -u)" -g "$(id -g)" {p}; fi'
    )


def parse_walk(stdout: str, count: int) -> tuple[int | None, list[list[Entry]]]:
    """The SSH user's uid and, per requested path, its entries from / down. Lines are split on `\\n` only;
    anything that is not one of ours is skipped, and a missing or malformed path reads as nothing."""
    uid: int | None = None
    entries: list[list[Entry]] = [[] for _ in range(count)]
    for line in stdout.split("\n"):
        line = line.rstrip(" ")
        if line.startswith(_UID) and _NUMBER.fullmatch(line[len(_UID) :]):
            uid = int(line[len(_UID) :])
            continue
        found = _LINE.fullmatch(line)
        if found is None:
            continue
        index, kind, owner, mode, encoded = found.groups()
        if int(index) >= count:
            continue
        try:
            path = base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            continue
        entries[int(index)].append(
            Entry(kind, None if owner == "-" else int(owner), None if mode == "-" else int(mode, 8), path)
        )
    return uid, entries


def _owner(uid: int | None) -> str:
    return "unknown" if uid is None else ("root" if uid == 0 else f"uid {uid}")


def judge_workdir(
    setting: str, directory: str, entries: Sequence[Entry], ssh_uid: int | None, *, must_exist: bool = False
) -> Problem | None:
    """The first reason the working directory `directory` (its `entries` from / down) is not private, or
    None. A directory that does not exist yet passes (it will be made 0700) unless `must_exist`."""
    if not entries or ssh_uid is None:
        fix = "check that stat, base64 and id exist on the server, then try again"
        return Problem(setting, directory, directory, "could not be examined on the server", fix)
    last = len(entries) - 1
    for i, entry in enumerate(entries):
        if entry.kind == "-":
            if not must_exist:
                return None
            fix = f"create it as root: install -d -m 0700 {word(directory)}"
            return Problem(setting, directory, entry.path, "does not exist after it was made", fix)
        problem = _entry_problem(setting, directory, entry, {0, ssh_uid}, own=i == last)
        if problem is not None:
            return problem
    return None


def _entry_problem(
    setting: str, directory: str, entry: Entry, trusted: set[int], *, own: bool
) -> Problem | None:
    """Why one existing entry on the way to the working directory (`own`: the directory itself) is not
    private: a symlink, not a directory, another owner, or writable by group or others."""
    if entry.kind == "l":
        what = "the directory itself" if own else "a parent"
        fix = f"set {setting} to a real path, or remove the symlink as root"
        return Problem(setting, directory, entry.path, f"is a symlink ({what}); it is never followed", fix)
    if entry.kind != "d":
        fix = f"remove it as root, or choose another {setting}"
        return Problem(setting, directory, entry.path, "is not a directory", fix)
    mode = entry.mode if entry.mode is not None else 0o7777  # unreadable: judged the widest
    shown = f"{entry.mode:04o}" if entry.mode is not None else "unknown"
    found = f"(owner {_owner(entry.uid)}, mode {shown})"
    if entry.uid not in trusted:
        fix = (
            f"remove it as root (it may hold anything its owner put there) and let xsoar-mt make "
            f"it, or choose another {setting}"
        )
        return Problem(
            setting, directory, entry.path, f"belongs to neither root nor the SSH user {found}", fix
        )
    writable = mode & 0o022
    sticky_parent = not own and mode & 0o1000 and entry.uid == 0
    if writable and not sticky_parent:
        fix = (
            f"as root: chmod 0700 {word(entry.path)}, after checking what it holds"
            if own
            else f"as root: chmod go-w {word(entry.path)}, or choose another {setting}"
        )
        return Problem(setting, directory, entry.path, f"is writable by group or others {found}", fix)
    return None


def refusal(server: str, problems: Sequence[Problem]) -> DirectoryRefused:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return DirectoryRefused(
        f"{server}: {first.detail}{more}: nothing is written there",
        hint=f"{first.fix}; preflight names it as the mandatory check {CHECK}, which cannot be ignored",
    )
