"""Stopping and starting the service on a server: both idempotent, confirmed by its status after a drop."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.observed import Service
from xsoar_mt.plan import Action, PhaseKind, Step
from xsoar_mt.remote import CommandKind, RemoteCommand, RemoteError
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


_OWN_PHASES = (PhaseKind.PREPARE, PhaseKind.RECOVER, PhaseKind.VALIDATE)  # no group to start again


def restart_what_was_stopped(run: RunContext, began: list[Step]) -> None:
    """After a failure in a group before any install began: start again what this phase stopped.

    The group is then running on the release it had, as before the run. Once an install began there is
    no consistent version to go back to; the recap says what each server runs and `--resume` finishes.
    """
    if not began or run.phase_kind(began[0]) in _OWN_PHASES or run.abandon:
        return
    if any(s.action is Action.INSTALL for s in began):
        return
    stopped = [
        n
        for s in began
        if s.action is Action.STOP
        for n in s.servers
        if run.state[n].view.service is not Service.RUNNING
    ]
    if not stopped:
        return
    run.emit(
        "warning",
        f"nothing was installed in {began[0].phase}: starting {', '.join(stopped)} "
        "again on the release it had",
        servers=tuple(stopped),
    )
    for server in stopped:
        try:
            start_again(run, began[-1], server)
        except (StepFailed, RemoteError) as exc:
            run.emit("warning", f"{server}: could not start it again: {exc.message}", servers=(server,))
