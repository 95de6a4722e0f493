"""`fetch-installer`: each server downloads the installer itself (the link on its stdin), or, with upload
delivery, this machine sends it (upload.py).

An installer `upgrade prepare` left in place is checked right before: when it is still the one prepared
(same release, build and sha256, at the path `RemotePaths` gives) it is not fetched again (prepared.py).
In a prepare run (`RunOptions.prepare_only`) each installer fetched is then verified and recorded, on the
server (`prepared-<release>.json`) and in the local record.
"""

from __future__ import annotations

import time

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.engine.prepared import FetchDecision, claim, decide, digest_of
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.engine.steps.upload import Upload
from xsoar_mt.installer import normalise_link
from xsoar_mt.observed import Prepared, stamp
from xsoar_mt.plan import Action, Step
from xsoar_mt.probe import prepared_command
from xsoar_mt.remote import CommandKind, RemoteCommand
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.shellwords import word


class Fetch(ServerStep):
    action = Action.FETCH

    def __init__(self) -> None:
        self.upload = Upload()

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        if self._in_place(run, step, server):
            return
        self._deliver(run, step, server)
        if run.options.prepare_only:
            self._record(run, step, server)

    def _deliver(self, run: RunContext, step: Step, server: str) -> None:
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

    def _in_place(self, run: RunContext, step: Step, server: str) -> bool:
        """Is the installer `upgrade prepare` left still the one it verified? Checked on the server now."""
        installer, path = run.inv.installer, RemotePaths.of(run.inv).installer(step.release)
        claimed = claim(
            run.prepared_records(server),
            server,
            step.release,
            installer.build,
            path,
            installer.sha256.get(step.release),
        )
        if isinstance(claimed, FetchDecision):
            decision = claimed
        else:
            found = _digest(run, step, server, path)
            decision = decide(claimed, found)
        if decision.skip and decision.record is not None:
            record = decision.record
            run.emit(
                "installer-in-place",
                f"{server}: installer for {step.release} prepared at "
                f"{stamp(record.at)} is in place (sha256 {record.sha256}): not fetched again",
                step,
                (server,),
                release=step.release,
                sha256=record.sha256,
                path=record.path,
                prepared_at=record.at,
                prepared_by=record.run_id,
            )
            return True
        if decision.note is not None:
            run.emit(
                "warning", f"{server}: {decision.note}", step, (server,), release=step.release, refetch=True
            )
        return False

    def _record(self, run: RunContext, step: Step, server: str) -> None:
        """After a prepare's fetch: the sha256 of what arrived, kept on the server and here."""
        installer, path = run.inv.installer, RemotePaths.of(run.inv).installer(step.release)
        found = _digest(run, step, server, path)
        if found is None:
            raise StepFailed(step, server, f"the installer fetched to {path} cannot be read back")
        pinned = installer.sha256.get(step.release)
        if pinned is not None and found != pinned:
            raise StepFailed(
                step, server, f"the installer at {path} has sha256 {found}, the inventory pins {pinned}"
            )
        record = Prepared(server, step.release, installer.build, found, path, time.time(), run.run_id)
        if run.write_markers:
            write = prepared_command(run.inv, record)
            run.retrying(step, server, lambda: run.checked(step, server, write, timeout=60))
        if run.known is not None:
            run.known.record_prepared(record)
        run.emit(
            "installer-prepared",
            f"{server}: installer for {step.release} fetched and verified (sha256 {found})",
            step,
            (server,),
            **record.to_dict(),
        )


def _digest(run: RunContext, step: Step, server: str, path: str) -> str | None:
    """The sha256 of the executable installer at `path` now, or None when there is none."""
    quoted = word(path)
    command = RemoteCommand(
        f"[ -x {quoted} ] && sha256sum {quoted}", CommandKind.PREPARED_CHECK, step.release
    )
    result, _ = run.retrying(step, server, lambda: run.shell_for(server).run(command, timeout=300))
    return digest_of(result.stdout) if result.ok else None


def announce_prepared(run: RunContext, steps: list[tuple[str, str]]) -> None:
    """At a run's start: each (server, release) to fetch that a prepare left in place, by its record
    (the file itself is checked right before its fetch)."""
    installer, paths = run.inv.installer, RemotePaths.of(run.inv)
    for server, release in steps:
        claimed = claim(
            run.prepared_records(server),
            server,
            release,
            installer.build,
            paths.installer(release),
            installer.sha256.get(release),
        )
        if isinstance(claimed, Prepared):
            run.emit(
                "prepared",
                f"{server}: installer for {release} prepared at {stamp(claimed.at)}",
                servers=(server,),
                release=release,
                prepared_at=claimed.at,
            )
