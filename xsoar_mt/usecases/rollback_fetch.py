"""The rollback's checks on the servers, which `rollback plan --probe` and `rollback run` share, before
anything is stopped: each backup that goes back checked where it lies (size, sha256), and each old
release's installer asked for the way the run will fetch it."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from xsoar_mt.checks.model import FindingVerdict
from xsoar_mt.checks.preflight import FetchAsked, blocking_summary, fetch_findings
from xsoar_mt.errors import PreflightFailed
from xsoar_mt.plan import Scope
from xsoar_mt.remote import CommandKind, RemoteCommand, RemoteError
from xsoar_mt.rollback.backups import BackupRecord, ServerBackup, backup_check_command, backup_check_verdict
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


def unusable_backups(
    session: Session, backups: Mapping[str, ServerBackup], scope: Scope | None = None
) -> dict[str, str]:
    """Each recorded backup (of the servers in `scope`, or all) checked on its server (size, sha256): the
    reason per server it fails, or could not be checked."""
    inventory = session.inventory
    groups = [g for g in inventory.groups if scope is None or scope.covers(g.name, g.is_main)]
    covered = {s.name for g in groups for s in g.servers}
    checked = [(n, b) for n, b in backups.items() if n in covered and isinstance(b, BackupRecord)]

    def reason(name: str, backup: BackupRecord) -> str | None:
        try:
            check = RemoteCommand(backup_check_command(backup), CommandKind.BACKUP_CHECK)
            result = session.shells(name).run(check, timeout=600)
        except RemoteError as exc:
            return f"the backup could not be checked ({exc.detail})"
        if not result.ok:
            return f"the backup could not be checked ({result.tail(1) or f'exit {result.exit_code}'})"
        return backup_check_verdict(backup, result.stdout)

    if not checked:
        return {}
    # side by side: each server hashes an archive of gigabytes, a minute or more each
    with ThreadPoolExecutor(max_workers=min(16, len(checked))) as workers:
        found = list(workers.map(lambda item: reason(*item), checked))
    return {name: why for (name, _), why in zip(checked, found, strict=True) if why is not None}
