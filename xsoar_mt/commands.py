"""One function per CLI command: reads inputs, calls the core, returns values for a renderer."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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


def make_plan(
    inventory_path: Path,
    target: str,
    scope: Scope,
    *,
    state_dir: Path = Path(".xsoar-mt"),
    probe: bool = False,
    accept_new_host_keys: bool = False,
    prompt: Callable[[str], str] | None = None,
) -> tuple[Inventory, Plan]:
    """`upgrade plan`: the inventory, and the plan from the servers' versions.

    With `probe`, every server is read over SSH (read only) and the plan is made from what they answer,
    as `upgrade run` would make it. Without, no server is contacted: the versions come from the local
    record of the last observation under `state_dir`, then the inventory's `version:`.
    """
    from xsoar_mt.known import KnownState
    from xsoar_mt.run import offline_state, require_versions

    inventory = load_inventory(inventory_path)
    release = parse_target(target, inventory.releases)
    known = KnownState(state_dir, inventory)
    if not probe:
        observed = offline_state(inventory, known)
        require_versions(observed, inventory_path, probed=False,
                         hint="add --probe to read every server's version over SSH (read only)")  # fmt: skip
        return inventory, plan_upgrade(inventory, observed.versions(), release, scope)
    from xsoar_mt.run import load_secrets, observe_deployment, ssh_pool

    names = [s.name for s in inventory.servers]
    sudo, secrets = load_secrets(inventory, names, need_sudo=True, need_link=False, prompt=prompt)
    pool = ssh_pool(inventory, sudo, accept_new_host_keys)
    try:
        observed, readings = observe_deployment(inventory, pool, secrets.api_key, known)
    finally:
        pool.close()
    unreachable = [f"{r.server}: {r.error}" for r in readings.values() if r.error]
    if unreachable:
        from xsoar_mt.run import PreflightFailed

        raise PreflightFailed(
            unreachable, hint="the plan needs every server's answer; fix these and plan again"
        )
    require_versions(observed, inventory_path, probed=True, hint="nothing was changed")
    facts = observed.facts(known.backups())
    return inventory, plan_upgrade(inventory, observed.versions(), release, scope, facts)


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
