"""A plan saved with `upgrade plan --out`: read back, and refused when it is not what the run would do."""

from __future__ import annotations

import json
from pathlib import Path

from xsoar_mt.errors import InvalidInput, StalePlan, UsageError, shown
from xsoar_mt.inventory import Inventory
from xsoar_mt.localfiles import InputFileError, read_input
from xsoar_mt.plan import ROLLBACK_TARGETS, Plan, Scope, refuse_duplicate_keys
from xsoar_mt.state_dir import write_private


def write_plan(data: str, path: Path) -> None:
    """Save a plan (`--out`), readable by the owner only, whole or not at all."""
    if path.is_dir():
        raise UsageError(f"--out {shown(str(path))}: is a directory; give a file name")
    directory = path.parent
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise UsageError(f"--out {shown(str(path))}: the directory {shown(str(directory))} {what}")
    try:
        write_private(path, data, make_parents=False)
    except OSError as exc:
        raise UsageError(f"--out {shown(str(path))}: cannot write it: {exc.strerror or exc}") from None


def read_plan(path: Path, inventory: Inventory | None = None) -> Plan:
    """A saved plan (`--plan`). Anything that is not a plan is refused (exit 3), and so is a plan whose
    steps name a server the inventory does not have: before anything runs."""
    try:
        data = json.loads(read_input(path).decode("utf-8"), object_pairs_hook=refuse_duplicate_keys)
    except InputFileError as exc:
        raise InvalidInput(f"{path}: cannot read the plan: {exc.reason}") from None
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


def check_plan_request(saved: Plan, target: str, flags: Scope) -> None:
    """Refuse (exit 8) a saved plan run with another `--to` or `--only`/`--group` than its own: checked
    before any server is asked, since it needs none."""
    if saved.target != target:
        raise StalePlan(
            [f"target differs: the plan goes to {saved.target}, --to asks for {target}"],
            lead="the saved plan is not what the command line asks",
            hint="leave out --to to run the plan as saved, or make a new plan for that target",
        )
    asked = flags if flags != Scope() else saved.scope
    if saved.scope != asked:
        raise StalePlan(
            [f"scope differs: the plan covers {saved.scope.describe()}, the command line {asked.describe()}"],
            lead="the saved plan is not what the command line asks",
            hint="give the plan's own --only/--group (or none), or make a new plan for that scope",
        )


def check_saved_plan(saved: Plan, rebuilt: Plan, flags: Scope) -> None:
    """Refuse (exit 8) a saved plan that is not exactly what this run would do.

    `rebuilt` is the plan made now from the inventory and the versions observed, for the target and scope
    the run was asked (`--to`, or the plan's own target; `--only`/`--group` as `flags`, or the plan's
    own scope when none is given). The run then carries out the saved steps, which are these.
    """
    check_plan_request(saved, rebuilt.target, flags)
    saved.basis.require_same(rebuilt.basis)
    edited = saved.first_difference(rebuilt)
    if edited is not None:
        raise StalePlan([edited], lead="the saved plan differs from the plan its inventory gives now")


def refuse_rollback_plan(plan: Plan, path: Path) -> None:
    """`upgrade run --plan` with a rollback's saved plan: refused (exit 2) before any server is asked."""
    if plan.target in ROLLBACK_TARGETS:
        raise UsageError(
            f"--plan {path}: this is a rollback plan (made by `rollback plan`), not an upgrade plan",
            hint=f"run it with `xsoar-mt rollback run --plan {path}`",
        )
