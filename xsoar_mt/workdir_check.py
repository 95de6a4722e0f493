"""The working directory checked on each server before anything is written there: read, judged
(workdir.py) and, when missing, made 0700 in one step; every server of a run at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from xsoar_mt.errors import XsoarMtError
from xsoar_mt.inventory import Inventory
from xsoar_mt.remote import RemoteError, RemoteShell
from xsoar_mt.workdir import (
    DirectoryRefused,
    Problem,
    directories,
    judge_workdir,
    make_command,
    parse_walk,
    refusal,
    walk_script,
)


def examine(
    shell: RemoteShell, inventory: Inventory, *, must_exist: bool = False, prefix: str = ""
) -> list[Problem]:
    """Read and judge every working directory on the server of `shell` (`prefix`: shell run first)."""
    named = directories(inventory)
    result = shell.run(prefix + walk_script([path for _, path in named]), timeout=60)
    uid, entries = parse_walk(result.stdout, len(named))
    problems = []
    for (setting, path), found in zip(named, entries, strict=True):
        problem = judge_workdir(
            setting, path, found, uid, must_exist=must_exist and setting == "installer.directory"
        )
        if problem is not None:
            problems.append(problem)
    return problems


def prepare(shell: RemoteShell, inventory: Inventory) -> None:
    """Before anything is written on this server: refuse a working directory others could write to, then
    make the installer directory (0700) when it is missing and judge it again."""
    problems = examine(shell, inventory)
    if not problems:
        problems = examine(
            shell, inventory, must_exist=True, prefix=make_command(inventory.installer.directory) + " && "
        )
    if problems:
        raise refusal(shell.server, problems)


def prepare_all(inventory: Inventory, shells: Callable[[str], RemoteShell], servers: Sequence[str]) -> None:
    """`prepare` on every server at once; the first server refused (in inventory order) raises."""
    if not servers:
        return

    def one(name: str) -> XsoarMtError | None:
        try:
            prepare(shells(name), inventory)
        except DirectoryRefused as exc:
            return exc
        except RemoteError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(servers)))) as workers:
        errors = [e for e in workers.map(one, servers) if e is not None]
    if errors:
        raise errors[0]
