"""`restore`: rollback puts back, on each server, the files of its own backup (the archive its record
names), once the old release is installed. The command checks the archive's sha256 against the record
right before it extracts it (rollback/backups.py `restore_command`), so a changed archive is never put
back; it moves aside what the fresh install made first, so running it again is harmless."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.plan import Action, Step
from xsoar_mt.remote import CommandKind


class Restore(ServerStep):
    action = Action.RESTORE

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        command = run.command(server, step.command_on(server), CommandKind.RESTORE, step.release)
        run.retrying(step, server, lambda: run.checked(step, server, command, timeout=3600))
        run.emit("restored", f"{server}: the backup's files are back", step, (server,), release=step.release)
