"""`fetch-installer`: each server downloads the installer itself (the link on its stdin), or, with upload
delivery, this machine sends it (upload.py)."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.engine.steps.upload import Upload
from xsoar_mt.installer import normalise_link
from xsoar_mt.plan import Action, Step
from xsoar_mt.remote import CommandKind


class Fetch(ServerStep):
    action = Action.FETCH

    def __init__(self) -> None:
        self.upload = Upload()

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        installer = run.inv.installer
        if installer.delivery == "upload":
            self.upload.send(run, step, server)
            return
        if run.secrets.link is None:
            raise StepFailed(step, server, "no download link (installer.link in the inventory)")
        build = run.builds.get(step.release, installer.build)
        link = normalise_link(run.secrets.link, step.release, build)
        command = run.command(server, step.command_on(server), CommandKind.FETCH, step.release)
        run.retrying(
            step, server, lambda: run.checked(step, server, command, stdin=link + "\n", timeout=3600)
        )
