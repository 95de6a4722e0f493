"""`start`: start the service on each of the step's servers."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.engine.steps.service import set_service
from xsoar_mt.plan import Action, Step
from xsoar_mt.remote import CommandKind


class Start(ServerStep):
    action = Action.START
    measured = "start"

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        command = run.command(server, step.command_on(server), CommandKind.START)
        set_service(run, step, server, command, True)
