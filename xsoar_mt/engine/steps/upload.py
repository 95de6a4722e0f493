"""Upload delivery: the installer goes from this machine over SFTP (downloaded here once from the link,
or the operator's own file), unless the server has it already; the server then checks its sha256."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from xsoar_mt.download import DownloadFailed, LocalInstaller
from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.installer import file_sha256, local_installer
from xsoar_mt.plan import Step
from xsoar_mt.remote import CommandKind, RemoteCommand
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.shellwords import word


class Upload:
    """One per run: each local installer's sha256 is read once, and its origin said once per release."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._digests: dict[Path, str] = {}
        self._announced: set[str] = set()

    def send(self, run: RunContext, step: Step, server: str) -> None:
        """The installer delivered and checked on `server`; after a dropped connection, reconnected and
        delivered again (a file cut short is sent whole, and the check is what makes it executable)."""
        local = self._local_installer(run, step, server)
        run.retrying(step, server, lambda: self._deliver(run, step, server, local))

    def _deliver(self, run: RunContext, step: Step, server: str, local: LocalInstaller) -> None:
        paths = RemotePaths.of(run.inv)
        remote = paths.installer(step.release)
        shell = run.shell_for(server)
        digest = RemoteCommand(f"sha256sum {word(remote)} 2>/dev/null", CommandKind.INSTALLER_DIGEST)
        have = shell.run(digest, timeout=120)
        if have.ok and have.stdout.split()[:1] == [local.sha256]:
            run.emit("step-output", f"{server}: installer already present, not sent again", step, (server,))
        else:
            mkdir = RemoteCommand(f"mkdir -p {word(paths.directory)}", CommandKind.MAKE_DIRECTORY)
            run.checked(step, server, mkdir)
            shell.put(local.path, remote, _upload_progress(run, step, server))
        check = RemoteCommand(step.command_on(server), CommandKind.FETCH, step.release)
        run.checked(step, server, check, stdin=local.sha256 + "\n", timeout=300)

    def _local_installer(self, run: RunContext, step: Step, server: str) -> LocalInstaller:
        """The installer to upload: downloaded once from the link, or the operator's own file."""
        if run.downloads is not None:
            try:
                found = run.downloads.get(step.release, _download_progress(run, step))
            except DownloadFailed as exc:
                raise StepFailed(step, server, exc.message, hint=exc.hint) from None
            self._announce(run, step, found)
            return found
        installer = run.inv.installer
        if installer.file is None:
            raise StepFailed(step, server, "no local installer file to upload (installer.file)")
        local = local_installer(installer, run.inv.path, step.release)
        if not local.is_file():
            raise StepFailed(step, server, f"the installer for {step.release} is not at {local}")
        digest = self._local_digest(local)
        expected = installer.sha256.get(step.release)
        if expected and expected != digest:
            raise StepFailed(
                step,
                server,
                f"local installer {local.name} has sha256 {digest}, the inventory expects {expected}",
            )
        return LocalInstaller(local, digest)

    def _announce(self, run: RunContext, step: Step, found: LocalInstaller) -> None:
        """Say once per release where the uploaded installer came from (the journal keeps its sha256)."""
        with self._lock:
            if step.release in self._announced:
                return
            self._announced.add(step.release)
        run.emit(
            "installer-downloaded",
            f"installer for {step.release} {found.how}: {found.path} (sha256 {found.sha256})",
            step,
            release=step.release,
            sha256=found.sha256,
            path=str(found.path),
            reused=found.reused,
        )

    def _local_digest(self, path: Path) -> str:
        """sha256 of a local installer, read once however many servers it goes to."""
        with self._lock:
            if path not in self._digests:
                self._digests[path] = file_sha256(path)
            return self._digests[path]


def _download_progress(run: RunContext, step: Step) -> Callable[[int, int], None]:
    """Reports the one local download at every 2% (or every 64 MiB when the size is unknown)."""
    reported = [-1]

    def progress(received: int, total: int) -> None:
        mark = received * 50 // total if total else received >> 26
        if mark > reported[0]:
            reported[0] = mark
            of = f" of {total >> 20}" if total else ""
            run.emit(
                "step-output",
                f"downloading the {step.release} installer: {received >> 20}{of} MiB",
                step,
                received=received,
                total=total,
                release=step.release,
            )

    return progress


def _upload_progress(run: RunContext, step: Step, server: str) -> Callable[[int, int], None]:
    """Reports an upload at every 2% of the file, so a large installer shows it is moving; a second
    interrupt stops it (the SFTP client calls this after every chunk it sends)."""
    reported = [-1]

    def progress(sent: int, total: int) -> None:
        if run.abandon:
            raise StepFailed(
                step,
                server,
                f"stopped the upload at {sent >> 20} of {total >> 20} MiB (second interrupt); the part "
                "sent is never run (the install checks the sha256 first), and `--resume` sends it again",
                interrupted=True,
            )
        mark = sent * 50 // total if total else 50
        if mark > reported[0]:
            reported[0] = mark
            run.emit(
                "step-output",
                f"{server}: uploaded {sent >> 20} of {total >> 20} MiB",
                step,
                (server,),
                sent=sent,
                total=total,
            )

    return progress
