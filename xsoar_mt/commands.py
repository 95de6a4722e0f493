"""One function per CLI command: reads inputs, calls the core, returns values for a renderer."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from xsoar_mt.errors import InvalidInput, StalePlan, UsageError, shown
from xsoar_mt.inventory import Inventory, load_inventory
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import parse_target


def scope_from_flags(only: str | None, groups: list[str] | None) -> Scope:
    if only is not None and only != "main":
        raise UsageError(f"--only takes `main`, not {shown(only)} (use --group NAME for host groups)")
    if only == "main":
        return Scope(main=True, groups=tuple(groups or ()))
    if groups:
        return Scope(main=False, groups=tuple(dict.fromkeys(groups)))
    return Scope()


def make_plan(inventory_path: Path, target: str, scope: Scope) -> Plan:
    """`upgrade plan`: the plan from the versions the inventory records."""
    inventory = load_inventory(inventory_path)
    release = parse_target(target, inventory.releases)
    return plan_upgrade(inventory, inventory.versions(), release, scope)


def write_plan(plan: Plan, path: Path) -> None:
    """Save a plan (`--out`), readable by the owner only."""
    write_atomically(path, json.dumps(plan.to_dict(), indent=2) + "\n", "--out")


def write_atomically(path: Path, text: str, flag: str) -> None:
    """Write `text` to `path` whole or not at all: into a private temporary file in the same directory,
    flushed and renamed over `path`. On any failure nothing is left behind, and the error names `flag`."""
    if path.is_dir():
        raise UsageError(f"{flag} {shown(str(path))}: is a directory; give a file name")
    directory = path.parent
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise UsageError(f"{flag} {shown(str(path))}: the directory {shown(str(directory))} {what}")
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise UsageError(f"{flag} {shown(str(path))}: cannot write it: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def usable_state_dir(path: Path) -> None:
    """`--state-dir` must be a directory this user can create files in, or one that can be made."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is" if existing == path.absolute() else f"is inside {shown(str(existing))}, which is"
        raise UsageError(f"--state-dir {shown(str(path))}: {what} a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".xsoar-mt-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(
            f"--state-dir {shown(str(path))}: cannot write in {shown(str(existing))}: {exc.strerror or exc}",
            hint="give a directory you can write to (runs, journals and the lock are kept there)",
        ) from None


def read_plan(path: Path, inventory: Inventory | None = None) -> Plan:
    """A saved plan (`--plan`). Anything that is not a plan is refused (exit 3), and so is a plan whose
    steps name a server the inventory does not have: before anything runs."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the plan: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not a JSON plan: the file is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}:{exc.lineno}: not a JSON plan: {exc.msg}") from None
    except RecursionError:
        raise InvalidInput(f"{path}: not a JSON plan: nested too deeply") from None
    try:
        plan = Plan.from_dict(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc.message}", hint=exc.hint) from None
    if inventory is not None:
        known = {s.name for s in inventory.servers}
        for step in plan.steps:
            unknown = next((s for s in (*step.servers, *step.per_server) if s not in known), None)
            if unknown is not None:
                raise InvalidInput(
                    f"{path}: step {shown(step.id, 80)} names server {shown(unknown, 80)}, "
                    f"which is not in the inventory {inventory.path}",
                    hint="make the plan again from this inventory",
                )
    return plan


def check_saved_plan(saved: Plan, rebuilt: Plan, flags: Scope) -> None:
    """Refuse (exit 8) a saved plan that is not exactly what this run would do.

    `rebuilt` is the plan made now from the inventory and the versions observed, for the target and scope
    the run was asked (`--to`, or the plan's own target; `--only`/`--group` as `flags`, or the plan's
    own scope when none is given). The run then carries out the saved steps, which are these.
    """
    if saved.target != rebuilt.target:
        raise StalePlan(
            [f"target differs: the plan goes to {saved.target}, --to asks for {rebuilt.target}"],
            lead="the saved plan is not what the command line asks",
            hint="leave out --to to run the plan as saved, or make a new plan for that target",
        )
    asked = flags if flags != Scope() else rebuilt.scope
    if saved.scope != asked:
        raise StalePlan(
            [f"scope differs: the plan covers {saved.scope.describe()}, the command line {asked.describe()}"],
            lead="the saved plan is not what the command line asks",
            hint="give the plan's own --only/--group (or none), or make a new plan for that scope",
        )
    saved.basis.require_same(rebuilt.basis)
    edited = saved.first_difference(rebuilt)
    if edited is not None:
        raise StalePlan([edited], lead="the saved plan differs from the plan its inventory gives now")
