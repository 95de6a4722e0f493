"""`backup`: back up each server before its first change, and keep what was backed up: locally (the
releases backed up, and the backup's record for rollback) and on the server beside xsoar-mt's marker."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import replace

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.plan import Action, Step
from xsoar_mt.remote import CommandKind, RemoteCommand, RemoteError
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.rollback.backups import BackupRecord, backup_record_command, record_from_answer
from xsoar_mt.shellwords import word
from xsoar_mt.snapshots import SnapshotError, take


class Backup(ServerStep):
    """With Elasticsearch and `deployment.elasticsearch_snapshot_repository`, the first backup of a run
    first takes a snapshot of the cluster (the file backup does not hold that data): backups are all in
    the prepare phase, so it is taken before the first stop, once per run, and named in every record."""

    action = Action.BACKUP

    def __init__(self) -> None:
        self._snapshot_lock = threading.Lock()
        self.snapshot: str | None = None

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        self._snapshot(run, step, server)
        # a fresh stamp each attempt: a backup that was cut off is never overwritten, nor any other
        stamps: list[str] = []

        def attempt() -> object:
            stamps.append(run.stamp())
            command = run.command(server, step.command_on(server), CommandKind.BACKUP, stamp=stamps[-1])
            return run.checked(step, server, command)

        run.retrying(step, server, attempt)
        taken_at = time.time()
        if run.known is not None:
            try:
                run.known.record_backup([server], step.release)
            except OSError as exc:
                run.emit("warning", f"cannot record {server}'s backup locally: {exc}", step, (server,))
        record = _record(run, step, server, stamps[-1], taken_at, self.snapshot)
        run.emit(
            "backup-taken",
            f"{server}: backed up before {step.release}",
            step,
            (server,),
            release=step.release,
            **({"record": record.to_dict()} if record else {}),
        )

    def _snapshot(self, run: RunContext, step: Step, server: str) -> None:
        inv = run.inv
        repository = inv.elasticsearch_snapshot_repository
        if (
            inv.database != "elasticsearch"
            or not repository
            or not inv.elasticsearch_url
            or not run.write_markers
        ):
            return
        with self._snapshot_lock:
            if self.snapshot is not None:
                return
            name = re.sub(r"[^a-z0-9_.-]", "-", f"xsoar-mt-{run.run_id or run.stamp()}".lower())
            try:
                take(inv.elasticsearch_url, repository, name, run.secrets.elasticsearch)
            except SnapshotError as exc:
                raise StepFailed(
                    step,
                    server,
                    f"Elasticsearch snapshot before the upgrade: {exc}",
                    hint="nothing was stopped; check the cluster and the repository "
                    "(deployment.elasticsearch_snapshot_repository), then run again",
                ) from None
            self.snapshot = name
        run.emit(
            "snapshot-taken",
            f"Elasticsearch: snapshot {name} taken in {repository}",
            step,
            (server,),
            snapshot=name,
            repository=repository,
        )


def _record(
    run: RunContext, step: Step, server: str, stamp: str, taken_at: float, snapshot: str | None
) -> BackupRecord | None:
    """What rollback needs of the backup just taken (the release and build the server ran, the archive's
    path, size and sha256, the run): kept locally and on the server. Without it rollback refuses this
    server, so a failure here is a warning, never the step's failure: the backup itself is there."""
    version = run.state[server].view.planning_version
    if version is None or not run.write_markers:
        return None
    paths = RemotePaths.of(run.inv)
    try:
        answer = run.shell_for(server).run(
            RemoteCommand(backup_record_command(paths.backup_dir, stamp), CommandKind.BACKUP_RECORD),
            timeout=600,
        )
    except RemoteError as exc:
        run.emit(
            "warning",
            f"{server}: the backup just taken could not be read back ({exc.detail}): rollback cannot use it",
            step,
            (server,),
        )
        return None
    found = record_from_answer(
        server,
        answer.stdout,
        release=version.release,
        build=version.build,
        run_id=run.run_id or "unknown",
        taken_at=taken_at,
        line=run.inv.releases,
    )
    if not isinstance(found, BackupRecord):
        run.emit("warning", f"{server}: {found.reason}: rollback cannot use this backup", step, (server,))
        return None
    if snapshot is not None:
        found = replace(found, es_snapshot=snapshot)
    if run.known is not None:
        try:
            run.known.record_backup_details(server, found.to_dict())
        except OSError as exc:
            run.emit("warning", f"cannot record {server}'s backup details locally: {exc}", step, (server,))
    try:
        run.shell_for(server).run(backup_record_write(paths, found), timeout=60)
    except RemoteError as exc:
        run.emit(
            "warning",
            f"{server}: could not write the backup's record beside the marker: {exc.detail}",
            step,
            (server,),
        )
    return found


def backup_record_write(paths: RemotePaths, record: BackupRecord) -> RemoteCommand:
    """Write the record (JSON, one line) beside xsoar-mt's marker, atomically; no sudo, no secret."""
    directory, target = word(paths.root), word(paths.backup_record)
    text = (
        f"mkdir -p {directory} && printf '%s\\n' {word(json.dumps(record.to_dict(), sort_keys=True))} "
        f"> {target}.tmp && mv -f {target}.tmp {target}"
    )
    return RemoteCommand(text, CommandKind.MARKER)
