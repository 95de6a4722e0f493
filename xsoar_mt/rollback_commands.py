"""`rollback plan`: read the inventory, the local record and (with --probe) the servers, then plan the way back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xsoar_mt.estimate import Estimate, estimate
from xsoar_mt.inventory import Inventory, load_inventory
from xsoar_mt.plan import Scope
from xsoar_mt.rollback.backups import BackupRecord, backup_check_command, backup_check_verdict, read_backups
from xsoar_mt.rollback.planner import RollbackFacts, RollbackPlan, plan_rollback
from xsoar_mt.waves import WaveSpec


@dataclass(frozen=True)
class RollbackView:
    """`rollback plan`'s answer: the plan and how long it is expected to take."""

    inventory: Inventory
    rollback: RollbackPlan
    timing: Estimate


def make_rollback_plan(
    inventory_path: Path,
    scope: Scope,
    *,
    state_dir: Path = Path(".xsoar-mt"),
    release_only: bool = False,
    probe: bool = False,
    accept_new_host_keys: bool = False,
    prompt: Callable[[str], str] | None = None,
    waves: WaveSpec | None = None,
    parallel: int | None = None,
) -> RollbackView:
    """The rollback plan. Without `probe` no server is contacted: versions and backups come from the local
    record under `state_dir` (then the inventory's `version:`). With it, every server is read (read only) as
    `upgrade plan --probe` reads them, and each recorded backup is checked on its server (size, sha256)."""
    from xsoar_mt.known import KnownState
    from xsoar_mt.observed import offline_state, require_versions

    inventory = load_inventory(inventory_path)
    known = KnownState(state_dir, inventory)
    names = [s.name for s in inventory.servers]
    backups = read_backups(names, known.backup_records(), inventory.releases)
    unusable: dict[str, str] = {}
    if not probe:
        observed = offline_state(inventory, known)
        require_versions(observed, inventory_path, probed=False,
                         hint="add --probe to read every server's version over SSH (read only)")  # fmt: skip
    else:
        from xsoar_mt.run import PreflightFailed, load_secrets, observe_deployment, ssh_pool

        sudo, secrets = load_secrets(inventory, names, need_sudo=True, need_link=False, prompt=prompt)
        pool = ssh_pool(inventory, sudo, accept_new_host_keys)
        try:
            observed, readings = observe_deployment(inventory, pool, secrets.api_key, known)
            unreachable = [f"{r.server}: {r.error}" for r in readings.values() if r.error]
            if unreachable:
                raise PreflightFailed(
                    unreachable, hint="the plan needs every server's answer; fix these and plan again"
                )
            for name, backup in backups.items():
                if isinstance(backup, BackupRecord):
                    result = pool(name).run(backup_check_command(backup), timeout=300)
                    reason = backup_check_verdict(backup, result.stdout) if result.ok else None
                    if not result.ok:
                        reason = f"the backup could not be checked ({result.tail(1) or f'exit {result.exit_code}'})"
                    if reason is not None:
                        unusable[name] = reason
        finally:
            pool.close()
        require_versions(observed, inventory_path, probed=True, hint="nothing was changed")
    facts = RollbackFacts(
        backups=backups,
        unsettled=frozenset(v.server for v in observed.views.values() if v.version is None),
        in_flight=observed.in_flight(),
        unusable=unusable,
    )
    rollback = plan_rollback(
        inventory, observed.versions(), facts, scope, release_only=release_only, waves=waves
    )
    timing = estimate(rollback.plan, inventory.durations, parallel, known.durations())
    return RollbackView(inventory, rollback, timing)
