"""`restore-snapshot`: with Elasticsearch, rollback restores the snapshot the upgrade took before its first
stop, through the snapshot API from this machine (snapshots.py): the snapshot's indices closed,
restored, every shard checked. The snapshot's name is the one recorded with the group's backup.

The restore is safe to repeat, so a cluster out of reach or a connection closed before the answer is
tried again (paced as a reconnect, within `reconnect_timeout`); an error the cluster answers fails the
step. The request runs beside the step, which a second interrupt stops waiting for (the cluster may
still finish the restore: the resume restores again)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.plan import Action, Step
from xsoar_mt.snapshots import SnapshotError, SnapshotUnreachable, restore

_HINT = "check the cluster and the repository, then `rollback run --resume`"


class RestoreSnapshot(ServerStep):
    action = Action.RESTORE_SNAPSHOT

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        url, repository = run.inv.elasticsearch_url, run.inv.elasticsearch_snapshot_repository
        phase = run.phase_of(step)  # the snapshot of the group going back, as the rollback plan gives it
        snapshot = run.snapshots.get(phase.group) if phase is not None and phase.group else None
        if not url or not repository or snapshot is None:
            raise StepFailed(
                step,
                server,
                "no Elasticsearch URL, snapshot repository or snapshot to restore",
                hint="set deployment.elasticsearch_url and elasticsearch_snapshot_repository",
            )
        credentials = run.secrets.elasticsearch
        pace = run.waiter.pace(timeout=run.options.reconnect_timeout, first=0.5, most=5.0)
        while True:
            try:
                count = waited(run, step, server, lambda: restore(url, repository, snapshot, credentials))
                break
            except SnapshotUnreachable as exc:
                if pace.expired:
                    raise StepFailed(step, server, f"Elasticsearch: {exc}", hint=_HINT) from None
                run.emit("warning", f"Elasticsearch: {exc}; restoring again", step, (server,))
                pace.pause()
            except SnapshotError as exc:
                raise StepFailed(step, server, f"Elasticsearch: {exc}", hint=_HINT) from None
        run.emit(
            "snapshot-restored",
            f"Elasticsearch: snapshot {snapshot} restored ({count} indices)",
            step,
            (server,),
            snapshot=snapshot,
            indices=count,
        )


def waited(run: RunContext, step: Step, server: str, call: Callable[[], int]) -> int:
    """`call()` in a thread of its own, waited for until it ends or a second interrupt comes."""
    value: list[int] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            value.append(call())
        except BaseException as exc:  # handed to the step below, whatever it is
            error.append(exc)

    thread = threading.Thread(target=work, name=f"restore-snapshot-{server}", daemon=True)
    thread.start()
    while thread.is_alive():
        if run.abandon:
            raise StepFailed(
                step,
                server,
                "stopped waiting for the snapshot restore (second interrupt); the cluster may still be "
                "restoring it, and the resume restores it again",
                interrupted=True,
            )
        thread.join(0.1)
    if error:
        raise error[0]
    return value[0]
