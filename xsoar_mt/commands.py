"""One function per CLI command: reads inputs, calls the core, returns values for a renderer."""

from __future__ import annotations

import json
import os
from pathlib import Path

from xsoar_mt.errors import InvalidInput, UsageError
from xsoar_mt.inventory import Inventory, load_inventory
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import parse_target


def scope_from_flags(only: str | None, groups: list[str] | None) -> Scope:
    if only is not None and only != "main":
        raise UsageError(f"--only takes `main`, not {only!r} (use --group NAME for host groups)")
    if only == "main":
        return Scope(main=True, groups=tuple(groups or ()))
    if groups:
        return Scope(main=False, groups=tuple(dict.fromkeys(groups)))
    return Scope()


def make_plan(inventory_path: Path, target: str, scope: Scope) -> tuple[Inventory, Plan]:
    """`upgrade plan`: the inventory, and the plan from the versions it records."""
    inventory = load_inventory(inventory_path)
    release = parse_target(target, inventory.releases)
    return inventory, plan_upgrade(inventory, inventory.versions(), release, scope)


def write_plan(plan: Plan, path: Path) -> None:
    """Save a plan atomically (write, fsync, rename), readable by the owner only."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(plan.to_dict(), handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the plan: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}:{exc.lineno}: not a JSON plan: {exc.msg}") from None
    return Plan.from_dict(data)
