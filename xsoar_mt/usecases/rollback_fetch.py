"""The rollback's fetch check, which `rollback plan --probe` and `rollback run` share: each old release's
installer asked for the way the run will fetch it, before anything is stopped."""

from __future__ import annotations

from xsoar_mt.checks.model import FindingVerdict
from xsoar_mt.checks.preflight import FetchAsked, blocking_summary, fetch_findings
from xsoar_mt.errors import PreflightFailed
from xsoar_mt.rollback.planner import RollbackPlan
from xsoar_mt.secrets import RunSecrets
from xsoar_mt.usecases.session import Session


def check_fetch(session: Session, rollback: RollbackPlan, secrets: RunSecrets, *, links: bool) -> None:
    """Each old release's installer can be fetched as the run will fetch it (from each server that goes
    back to it, or on this machine for upload delivery), or PreflightFailed names why; nothing stopped."""
    servers: dict[str, list[str]] = {}
    for ret in rollback.returns:
        servers.setdefault(ret.release, []).extend(ret.servers)
    asked = [FetchAsked(r, rollback.builds.get(r), tuple(names)) for r, names in servers.items()]
    findings = fetch_findings(session.inventory, session.shells, secrets, asked, links=links)
    failed = blocking_summary(findings)
    if failed:
        fixes = dict.fromkeys(f.fix for f in findings if f.verdict is FindingVerdict.FAIL and f.fix)
        raise PreflightFailed(failed, hint="; ".join(["nothing was changed", *fixes]))
