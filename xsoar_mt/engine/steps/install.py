"""`install`: launch the installer detached on each server (or attach to the one still running), follow it
to its exit code, and record what the server runs after it."""

from __future__ import annotations

import time

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.installer_job import InstallFiles, follow
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.framed import exit_code
from xsoar_mt.installer import verify_before_run
from xsoar_mt.observed import Installer, Marker, Service, Source
from xsoar_mt.plan import Action, Step
from xsoar_mt.releases import Version
from xsoar_mt.remote import CommandKind, RemoteShell


class Install(ServerStep):
    action = Action.INSTALL
    measured = "install"

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        files = InstallFiles(run.inv.installer.directory, step.release)
        shell = run.shell_for(server)
        before = run.state[server].view
        basis = before.planning_version
        attached = self._begin(run, step, server, files, following=before.in_flight == step.release)
        now = time.time()
        run.update(
            server,
            step,
            version=None,
            source=None,
            at=None,
            basis=basis,
            service=Service.STOPPED,
            healthy=False,
            unknown=f"installer for {step.release} running since {_hhmm(now)}",
            installer=Installer(step.release, None, None, True, False, now, None),
        )
        code = follow(run, step, server, shell, files)
        finished = time.time()
        if code != "0":
            _failed(run, step, server, shell, files, code, now, finished)
        run.update(
            server,
            step,
            version=Version.parse(step.release),
            source=Source.MARKER,
            at=finished,
            unknown=None,
            basis=None,
            installer=Installer(step.release, None, 0, False, False, now, finished),
        )
        run.emit(
            "installed",
            f"{server}: installed {step.release}",
            step,
            (server,),
            release=step.release,
            attached=attached,
        )

    def _begin(self, run: RunContext, step: Step, server: str, files: InstallFiles, following: bool) -> bool:
        """Launch the installer, or attach to one seen running; whether it was attached to."""
        if following:
            command = files.follow()
        else:
            marker = Marker(Version.parse(step.release), 0, "installer", run.run_id).prefix(server)
            install = run.command(server, step.command_on(server), CommandKind.INSTALL_LAUNCH, step.release)
            verify = verify_before_run(run.inv.installer, step.release, step.command_on(server))
            command = files.launch(install, marker, verify)
        answer = files.answer(step, server, run.checked(step, server, command, timeout=120).stdout)
        if answer == "VANISHED":
            raise StepFailed(
                step,
                server,
                f"the installer for {step.release} seen running before is gone and left no exit code",
                hint="check the server, then `--resume` (the install runs again)",
            )
        attached = answer in ("ATTACHED", "FINISHED")
        if attached:
            run.unmeasured(step, server)
            run.emit(
                "warning",
                f"{server}: an installer for {step.release} was already running; following it "
                "(none is started again)",
                step,
                (server,),
            )
        return attached


def _failed(
    run: RunContext,
    step: Step,
    server: str,
    shell: RemoteShell,
    files: InstallFiles,
    code: str,
    began: float,
    finished: float,
) -> None:
    """The installer exited non-zero: record it, and fail the step with the last lines of its log."""
    tail = files.last_lines(shell)
    done = Installer(step.release, None, exit_code(code), False, False, began, finished)
    run.update(server, step, unknown=done.describe(), installer=done)
    run.emit(
        "install-failed",
        f"{server}: installer for {step.release} exited {code}",
        step,
        (server,),
        release=step.release,
        exit_code=code,
    )
    raise StepFailed(
        step,
        server,
        f"the installer exited {code}: {tail or 'no output'}",
        hint="read the server's log, fix the cause, then `xsoar-mt upgrade run --resume`",
    )


def _hhmm(epoch: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch))
