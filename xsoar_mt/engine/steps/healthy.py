"""`wait-healthy`: wait until each server's health check answers, then read its version from `/about` and
check it runs the release the step expects."""

from __future__ import annotations

import re

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.engine.waiter import Pace
from xsoar_mt.plan import Action, PhaseKind, Step
from xsoar_mt.probe import read_version
from xsoar_mt.releases import Version
from xsoar_mt.remote import CommandKind, ConnectionLost, RemoteError, RemoteShell, Result


class WaitHealthy(ServerStep):
    action = Action.HEALTHY
    measured = "healthy"

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        health = run.inv.health
        pace = run.waiter.pace(
            timeout=health.timeout, first=min(health.interval, run.options.poll_max), most=health.max_interval
        )
        shell = run.shell_for(server)
        command = run.command(server, step.command_on(server), CommandKind.HEALTH)
        last = "no answer yet"
        while True:
            try:
                result = shell.run(command, timeout=60, cancel=run.cancelled)
                if _answers_healthy(result):
                    break
                last = f"exit {result.exit_code}: {result.tail(2) or result.stdout.strip()[-60:]}"
            except ConnectionLost:
                run.reconnect(step, shell)
            if pace.cancelled:
                raise StepFailed(
                    step, server, "stopped waiting for health (second interrupt)", interrupted=True
                )
            if pace.expired:
                run.update(server, step, healthy=False)
                raise StepFailed(
                    step,
                    server,
                    f"not healthy after {health.timeout:g}s ({last})",
                    hint="check the service on the server; raise health.timeout if it is slow",
                )
            pace.pause()
        version = _read_version(run, step, server, shell, pace)
        group_phase = run.phase_kind(step) not in (PhaseKind.RECOVER, PhaseKind.VALIDATE)
        if group_phase and version.release != step.release:
            run.answered(step, server, version)
            raise StepFailed(
                step,
                server,
                f"it is healthy but runs {version}, not {step.release} as planned",
                hint="the installer did not install the release the plan expected: check the "
                "installer file and link, then plan again",
            )
        run.verified(step, server, version)


def _read_version(run: RunContext, step: Step, server: str, shell: RemoteShell, health: Pace) -> Version:
    """The version from `/about`, asked again (within the health gate's deadline) until it answers."""
    pace = run.waiter.pace(
        deadline=health.deadline, first=run.options.poll_min or 0.05, most=run.inv.health.max_interval
    )
    while True:
        try:
            return read_version(shell, run.inv, run.secrets.api_key)
        except ConnectionLost:
            run.reconnect(step, shell)
        except RemoteError as exc:
            if pace.expired or pace.cancelled:
                raise StepFailed(
                    step,
                    server,
                    f"healthy, but its version cannot be read: {exc.detail}",
                    interrupted=pace.cancelled,
                ) from None
        pace.pause()


def _answers_healthy(result: Result) -> bool:
    """Exit 0, and when the command ends with an HTTP status code, that code is 200."""
    if not result.ok:
        return False
    code = re.search(r"(\d{3})\s*$", result.stdout)
    return code is None or code.group(1) == "200"
