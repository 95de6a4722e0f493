"""Stopping and starting the service on a server: both idempotent, confirmed by its status after a drop."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.observed import Service
from xsoar_mt.plan import Step
from xsoar_mt.remote import CommandKind, RemoteCommand
from xsoar_mt.shellwords import LATER, fill


def set_service(run: RunContext, step: Step, server: str, command: RemoteCommand, start: bool) -> None:
    """Stop or start: run again after a dropped connection, then confirm with the status command."""
    try:
        _, dropped = run.retrying(step, server, lambda: run.checked(step, server, command, timeout=300))
    except StepFailed:
        if start:
            run.update(server, step, service=Service.FAILED, healthy=False)
        raise
    if dropped:
        check = run.command(
            server, fill(run.inv.commands.status, server=LATER, address=LATER), CommandKind.STATUS
        )
        status = run.shell_for(server).run(check, timeout=60, cancel=run.cancelled)
        if (status.exit_code == 0) != start:
            seen = "running" if status.exit_code == 0 else f"not running (status {status.exit_code})"
            raise StepFailed(step, server, f"after reconnecting, the service is {seen}")
    if start:
        run.update(server, step, service=Service.RUNNING, healthy=None)
    else:
        run.update(server, step, service=Service.STOPPED, healthy=False)


def start_again(run: RunContext, step: Step, server: str) -> None:
    """Start a server the run stopped, with the inventory's start command (not a step's own)."""
    start = fill(run.inv.commands.start, server=LATER, address=LATER)
    set_service(run, step, server, run.command(server, start, CommandKind.START), True)
