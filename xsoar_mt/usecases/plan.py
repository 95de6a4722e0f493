"""`upgrade plan`: the plan from the servers' versions, with its estimate, tenant impact and window."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from xsoar_mt.errors import ExitCode, PreflightFailed, XsoarMtError
from xsoar_mt.estimate import Estimate, TenantImpact, estimate, tenant_impact
from xsoar_mt.installer import link_rewrite_note
from xsoar_mt.inventory import Inventory
from xsoar_mt.observed import Prepared, offline_state, require_versions
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.planner import check_scope, plan_upgrade
from xsoar_mt.releases import parse_target
from xsoar_mt.secrets import read_secret
from xsoar_mt.state_home import how_to_point_elsewhere
from xsoar_mt.usecases.saved_plan import write_plan
from xsoar_mt.usecases.session import Session
from xsoar_mt.waves import WaveSpec
from xsoar_mt.window import Closing, closing


@dataclass(frozen=True)
class PlanRequest:
    """What `upgrade plan` is asked. With `probe`, every server is read over SSH (read only), as
    `upgrade run` would; without, versions come from the local record, then the inventory."""

    target: str
    scope: Scope = field(default_factory=Scope)
    probe: bool = False
    waves: WaveSpec | None = None
    parallel: int | None = None  # host groups at once, for the estimate
    window: tuple[datetime, datetime] | None = None  # now, and when the window ends
    out: Path | None = None  # save the plan there (`--out`)


@dataclass(frozen=True)
class PlanView:
    """`upgrade plan`'s answer: the plan, its estimate (from the durations servers took before, where the
    local record has them), what each tenant sees, and where the window closes when one was given."""

    inventory: Inventory
    plan: Plan
    timing: Estimate
    window: tuple[datetime, datetime, Closing | None] | None = None  # now, its end, where it closes
    notes: tuple[str, ...] = ()  # what the operator must know that is not in the plan's steps
    prepared: tuple[Prepared, ...] = ()  # installers `upgrade prepare` left that the plan's fetches find

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.NOTHING_TO_DO if self.plan.nothing_to_do else ExitCode.OK

    @functools.cached_property
    def impact(self) -> tuple[TenantImpact, ...]:
        """Each tenant's expected outage windows: made when asked for (the JSON, the CSV, `--tenant-impact`;
        the plan's text does not show them, and a 1,000-server plan spent 3 ms on them)."""
        groups = [(g.name, [t.name for t in g.tenants]) for g in self.inventory.groups]
        return tuple(tenant_impact(self.plan, groups, self.timing))

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
    if window is None:
        return PlanView(inventory, plan, timing)
    now, end = window
    where = closing(timing, (end - now).total_seconds() / 60)
    return PlanView(inventory, plan, timing, (now, end, where))


def make_plan(session: Session, request: PlanRequest) -> PlanView:
    """`upgrade plan`: the plan from the servers' versions (probed, or known), saved when asked.

    The estimate uses the durations the local record learned from earlier runs, where it has them.
    """
    inventory, known = session.inventory, session.known
    release = parse_target(request.target, inventory.releases)
    check_scope(inventory, request.scope)  # before any server is read
    if not request.probe:
        observed = offline_state(inventory, known.servers())
        require_versions(
            observed,
            session.inventory_path,
            probed=False,
            state_dir=session.state.root,
            hint="add --probe to read every server's version over SSH (read only), give "
            "`version:` in the inventory, or, if earlier runs recorded them elsewhere: "
            f"{how_to_point_elsewhere()}",
        )
        plan = plan_upgrade(inventory, observed.versions(), release, request.scope, waves=request.waves)
        prepared: tuple[Prepared, ...] = ()
    else:
        session.read_secrets(sudo=True)
        observed, readings = session.observe()
        unreachable = [f"{r.server}: {r.error}" for r in readings.values() if r.error]
        if unreachable:
            raise PreflightFailed(
                unreachable, hint="the plan needs every server's answer; fix these and plan again"
            )
        require_versions(observed, session.inventory_path, probed=True, hint="nothing was changed")
        facts = observed.facts(known.backups())
        plan = plan_upgrade(inventory, observed.versions(), release, request.scope, facts, request.waves)
        # only a probed plan reads what `upgrade prepare` left; the engine package loads only then
        from xsoar_mt.engine.prepared import prepared_in_plan

        prepared = prepared_in_plan(plan, inventory, {n: r.prepared for n, r in readings.items()})
    view = replace(
        plan_view(inventory, plan, known.durations(), request.parallel, request.window),
        notes=_link_notes(inventory),
        prepared=prepared,
    )
    if request.out is not None:
        write_plan(json.dumps(view.to_dict(), indent=2) + "\n", request.out)
    return view


def estimate_for(session: Session, plan: Plan, parallel: int | None) -> Estimate:
    """The estimate `upgrade plan` would show for `plan`: the inventory's durations, the minutes each
    server took in earlier runs (the local record), host groups `parallel` at once."""
    return estimate(plan, session.inventory.durations, parallel, session.known.durations())


def _link_notes(inventory: Inventory) -> tuple[str, ...]:
    """A note when the download link, read where the inventory says (never prompted for), will be rewritten."""
    if inventory.installer.link is None:
        return ()
    try:
        link = read_secret(inventory.installer.link, "download link", prompt=None)
    except XsoarMtError:  # not readable here: the run reads it, and says so in its first lines
        return ()
    note = link_rewrite_note(link)
    return (note,) if note else ()
