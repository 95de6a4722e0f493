"""`backup`: back up each server before its first change, and keep that it was backed up locally."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.plan import Action, Step
from xsoar_mt.remote import CommandKind


class Backup(ServerStep):
    action = Action.BACKUP

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        # a fresh stamp each attempt: a backup that was cut off is never overwritten, nor any other
        run.retrying(
            step,
            server,
            lambda: run.checked(
                step, server, run.command(server, step.command_on(server), CommandKind.BACKUP)
            ),
        )
        if run.known is not None:
            try:
                run.known.record_backup([server], step.release)
            except OSError as exc:
                run.emit("warning", f"cannot record {server}'s backup locally: {exc}", step, (server,))
        run.emit("backup-taken", f"{server}: backed up before {step.release}", step, (server,),
                 release=step.release)  # fmt: skip
