"""`rollback plan`: the way back from the servers' versions and the backups xsoar-mt recorded."""

from __future__ import annotations

from dataclasses import dataclass, field

from xsoar_mt.errors import PreflightFailed
from xsoar_mt.estimate import Estimate, estimate
from xsoar_mt.inventory import Inventory
from xsoar_mt.observed import offline_state, require_versions
from xsoar_mt.plan import Scope
from xsoar_mt.rollback.backups import (
    read_backups,
)
from xsoar_mt.rollback.planner import RollbackFacts, RollbackPlan, plan_rollback
from xsoar_mt.usecases.rollback_fetch import check_fetch, unusable_backups
from xsoar_mt.usecases.session import LinkNeed, Session
from xsoar_mt.waves import WaveSpec


@dataclass(frozen=True)
class RollbackRequest:
    """What `rollback plan` is asked. Without `probe` no server is contacted: versions and backups come
    from the local record (then the inventory's `version:`)."""

    scope: Scope = field(default_factory=Scope)
    release_only: bool = False
    probe: bool = False
    waves: WaveSpec | None = None
    parallel: int | None = None  # host groups at once, for the estimate


@dataclass(frozen=True)
class RollbackView:
    """`rollback plan`'s answer: the plan and how long it is expected to take."""

    inventory: Inventory
    rollback: RollbackPlan
    timing: Estimate


def make_rollback_plan(session: Session, request: RollbackRequest) -> RollbackView:
    """The rollback plan. With `probe`, every server is read (read only) as `upgrade plan --probe` reads
    them, and each recorded backup is checked on its server (size, sha256)."""
    inventory, known = session.inventory, session.known
    names = [s.name for s in inventory.servers]
    backups = read_backups(names, known.backup_records(), inventory.releases)
    unusable: dict[str, str] = {}
    if not request.probe:
        observed = offline_state(inventory, known.servers())
        require_versions(
            observed,
            session.inventory_path,
            probed=False,
            hint="add --probe to read every server's version over SSH (read only)",
        )
    else:
        session.read_secrets(sudo=True, link=LinkNeed.IF_SET)
        observed, readings = session.observe()
        unreachable = [f"{r.server}: {r.error}" for r in readings.values() if r.error]
        if unreachable:
            raise PreflightFailed(
                unreachable, hint="the plan needs every server's answer; fix these and plan again"
            )
        unusable = unusable_backups(session, backups)
        require_versions(observed, session.inventory_path, probed=True, hint="nothing was changed")
    facts = RollbackFacts(
        backups=backups,
        unsettled=frozenset(v.server for v in observed.views.values() if v.version is None),
        in_flight=observed.in_flight(),
        unusable=unusable,
    )
    rollback = plan_rollback(
        inventory,
        observed.versions(),
        facts,
        request.scope,
        release_only=request.release_only,
        waves=request.waves,
    )
    if request.probe:
        check_fetch(session, rollback, session.secrets, links=True)
    timing = estimate(rollback.plan, inventory.durations, request.parallel, known.durations())
    return RollbackView(inventory, rollback, timing)
