"""`restore-snapshot`: with Elasticsearch, rollback restores the snapshot the upgrade took before its first
stop, through the snapshot API from this machine (snapshots.py): the snapshot's indices closed,
restored, every shard checked. The snapshot's name is the one recorded with the group's backup."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.plan import Action, Step
from xsoar_mt.snapshots import SnapshotError, restore


class RestoreSnapshot(ServerStep):
    action = Action.RESTORE_SNAPSHOT

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        url, repository = run.inv.elasticsearch_url, run.inv.elasticsearch_snapshot_repository
        snapshot = snapshot_of(step)
        if not url or not repository or snapshot is None:
            raise StepFailed(
                step,
                server,
                "no Elasticsearch URL, snapshot repository or snapshot to restore",
                hint="set deployment.elasticsearch_url and elasticsearch_snapshot_repository",
            )
        try:
            count = restore(url, repository, snapshot, run.secrets.elasticsearch)
        except SnapshotError as exc:
            raise StepFailed(
                step,
                server,
                f"Elasticsearch: {exc}",
                hint="check the cluster and the repository, then `rollback run --resume`",
            ) from None
        run.emit(
            "snapshot-restored",
            f"Elasticsearch: snapshot {snapshot} restored ({count} indices)",
            step,
            (server,),
            snapshot=snapshot,
            indices=count,
        )


def snapshot_of(step: Step) -> str | None:
    """The snapshot a restore-snapshot step names (the planner writes `POST <url>/_snapshot/<repo>/<snap>/...`)."""
    marker = "/_snapshot/"
    if marker not in step.command:
        return None
    parts = step.command.split(marker, 1)[1].split("/")
    return parts[1] if len(parts) > 2 else None
