"""One function per CLI command: reads inputs, calls the core, returns values for a renderer."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xsoar_mt.errors import InvalidInput, StalePlan, UsageError, shown
from xsoar_mt.estimate import Estimate, TenantImpact, estimate, tenant_impact
from xsoar_mt.inventory import Inventory, load_inventory
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import parse_target
from xsoar_mt.waves import WaveSpec
from xsoar_mt.window import Closing, closing

if TYPE_CHECKING:
    from xsoar_mt.observed import Prepared


def scope_from_flags(only: str | None, groups: list[str] | None) -> Scope:
    if only is not None and only != "main":
        raise UsageError(f"--only takes `main`, not {shown(only)} (use --group NAME for host groups)")
    if only == "main":
        return Scope(main=True, groups=tuple(groups or ()))
    if groups:
        return Scope(main=False, groups=tuple(dict.fromkeys(groups)))
    return Scope()


@dataclass(frozen=True)
class PlanView:
    """`upgrade plan`'s answer: the plan, its estimate (from the durations servers took before, where the
    local record has them), what each tenant sees, and where the window closes when one was given."""

    inventory: Inventory
    plan: Plan
    timing: Estimate
    impact: tuple[TenantImpact, ...]
    window: tuple[datetime, datetime, Closing | None] | None = None  # now, its end, where it closes
    prepared: tuple[Prepared, ...] = ()  # installers `upgrade prepare` left that the plan's fetches find

    def to_dict(self) -> dict[str, Any]:
        """The plan as data, with `tenant_impact` and (with a window) `window`."""
        data = {**self.plan.to_dict(), "tenant_impact": [row.to_dict() for row in self.impact]}
        if self.prepared:
            data["prepared"] = [record.to_dict() for record in self.prepared]
        if self.window is not None:
            now, end, where = self.window
            data["window"] = {
                "ends": end.isoformat(timespec="minutes"),
                "minutes_left": round((end - now).total_seconds() / 60, 1),
                "expected_minutes": round(self.timing.minutes, 1),
                "closes_before": None if where is None else where.phase.id,
                "group_upgrades_done": None if where is None else [p.id for p in where.done],
                "group_upgrades_left": [] if where is None else [p.id for p in where.left],
            }
        return data


def plan_view(
    inventory: Inventory,
    plan: Plan,
    learned: Mapping[str, Mapping[str, float]],
    parallel: int | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> PlanView:
    """The plan with its estimate, tenant impact and window, as `upgrade plan` shows them."""
    timing = estimate(plan, inventory.durations, parallel, learned)
    groups = [(g.name, [t.name for t in g.tenants]) for g in inventory.groups]
    impact = tuple(tenant_impact(plan, groups, timing))
    if window is None:
        return PlanView(inventory, plan, timing, impact)
    now, end = window
    where = closing(timing, (end - now).total_seconds() / 60)
    return PlanView(inventory, plan, timing, impact, (now, end, where))


def make_plan(
    inventory_path: Path,
    target: str,
    scope: Scope,
    *,
    state_dir: Path = Path(".xsoar-mt"),
    probe: bool = False,
    accept_new_host_keys: bool = False,
    prompt: Callable[[str], str] | None = None,
    waves: WaveSpec | None = None,
    parallel: int | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> PlanView:
    """`upgrade plan`: the plan from the servers' versions, with its estimate and tenant impact.

    With `probe`, every server is read over SSH (read only) and the plan is made from what they answer,
    as `upgrade run` would make it. Without, no server is contacted: the versions come from the local
    record of the last observation under `state_dir`, then the inventory's `version:`. The estimate uses
    the durations the local record learned from earlier runs, where it has them.
    """
    from xsoar_mt.known import KnownState
    from xsoar_mt.observed import offline_state, require_versions

    inventory = load_inventory(inventory_path)
    release = parse_target(target, inventory.releases)
    known = KnownState(state_dir, inventory)
    if not probe:
        observed = offline_state(inventory, known)
        require_versions(observed, inventory_path, probed=False,
                         hint="add --probe to read every server's version over SSH (read only)")  # fmt: skip
        plan = plan_upgrade(inventory, observed.versions(), release, scope, waves=waves)
        return plan_view(inventory, plan, known.durations(), parallel, window)
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
    plan = plan_upgrade(inventory, observed.versions(), release, scope, facts, waves)
    from xsoar_mt.prepare import prepared_in_plan

    prepared = prepared_in_plan(plan, inventory, {n: r.prepared for n, r in readings.items()})
    return replace(plan_view(inventory, plan, known.durations(), parallel, window), prepared=prepared)


def write_plan(plan: Plan | PlanView, path: Path) -> None:
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
