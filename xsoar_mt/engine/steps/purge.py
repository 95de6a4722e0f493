"""`purge`: rollback's first change on a server: the installer run with `-- -purge` (the vendor's way to
remove the installed release, since the installer refuses to install an older one over it), launched
detached and followed like an install (installer_job.py, records `purge-<release>.*`)."""

from __future__ import annotations

import time

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.installer_job import InstallFiles, follow
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.installer import verify_before_run
from xsoar_mt.observed import Service
from xsoar_mt.plan import Action, Step
from xsoar_mt.remote import CommandKind


class Purge(ServerStep):
    """Purging twice is harmless (the installer purges what is there, or nothing), so a resumed rollback
    purges a server again rather than trust that a cut-off purge finished: until its old release is
    installed, a purged server's version is unknown and the run counts it at the release it ran before."""

    action = Action.PURGE

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        files = InstallFiles(run.inv.installer.directory, step.release, job="purge")
        shell = run.shell_for(server)
        before = run.state[server].view.planning_version
        purge = run.command(server, step.command_on(server), CommandKind.PURGE_LAUNCH, step.release)
        # the installer purges as root: its sha256 is checked in that same root shell right before it runs
        verify = verify_before_run(run.inv.installer, step.release, step.command_on(server))
        # launched again after a dropped connection: one still running is attached to, a finished one
        # purges again, which is harmless
        launched, _ = run.retrying(
            step, server, lambda: run.checked(step, server, files.launch(purge, None, verify), timeout=120)
        )
        if files.answer(step, server, launched.stdout) == "ATTACHED":
            run.emit("warning", f"{server}: a purge was already running; following it", step, (server,))
        run.update(
            server,
            step,
            version=None,
            source=None,
            at=None,
            basis=before,
            service=Service.STOPPED,
            healthy=False,
            unknown=f"purged for the way back to {step.release} "
            f"(since {time.strftime('%H:%M:%SZ', time.gmtime())})",
        )
        code = follow(run, step, server, shell, files)
        if code != "0":
            tail = files.last_lines(shell)
            raise StepFailed(
                step,
                server,
                f"the purge exited {code}: {tail or 'no output'}",
                hint="read the server's log, fix the cause, then `xsoar-mt rollback run "
                "--resume` (the purge runs again)",
            )
        run.emit("purged", f"{server}: the installed release purged", step, (server,), release=step.release)
