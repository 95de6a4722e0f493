"""The installer as a job on the server: launched detached (it survives a dropped SSH connection), followed
by its pid and the server's boot id, within `installer.max_minutes`.

Its records are `install-<release>.{log,rc,pid,boot}` in the installer directory (remote_paths.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from xsoar_mt import framed
from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.plan import Step
from xsoar_mt.remote import CommandKind, ConnectionLost, RemoteCommand, RemoteError, RemoteShell
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.shellwords import word


class InstallFiles:
    """Where a detached installer leaves its output, exit code, pid and boot id on the server."""

    def __init__(self, directory: str, release: str, job: str = "install") -> None:
        paths = RemotePaths(directory)
        self.release = release
        self.log, self.rc, self.pid, self.boot = (
            word(paths.install_record(release, record, job)) for record in ("log", "rc", "pid", "boot")
        )
        self.job = job
        self.marker = word(paths.marker)
        self.marker_tmp = word(paths.marker_draft("installer"))
        self._alive = (
            f'xm_p=$(cat {self.pid} 2>/dev/null); xm_a=0; if [ -n "$xm_p" ] && [ -d "/proc/$xm_p" ] && '
            f'grep -qa "{job}-{release}" "/proc/$xm_p/cmdline" 2>/dev/null; then xm_a=1; fi; '
        )
        # `follow` and `launch` both begin so: an installer still running (no exit code yet) is attached to
        self._attach = f'{self._alive}if [ "$xm_a" = 1 ] && [ ! -s {self.rc} ]; then echo ATTACHED; '

    def follow(self) -> RemoteCommand:
        """For an installer seen running when the plan was made: attach to it, or find it finished; never
        start another (it may have ended between that look and this step)."""
        text = f"{self._attach}elif [ -s {self.rc} ]; then echo FINISHED; else echo VANISHED; fi"
        return RemoteCommand(text, CommandKind.INSTALL_FOLLOW, self.release)

    def launch(self, install_command: str, marker: str | None, verify: str = "") -> RemoteCommand:
        """Start the installer detached (it survives a dropped SSH connection), or attach to a running one.

        When the installer exits 0 the wrapper itself writes xsoar-mt's marker (`marker`: its JSON without
        the closing brace and the time, which the server's clock gives), so what was installed is known
        even if this machine never hears the end. `verify` (installer.verify_before_run) runs in the same
        root shell right before the installer; when it fails the installer is not run. Every record is
        removed before it is written, so none is ever written through a symlink.
        """
        elevated = install_command.startswith("sudo ")
        body = install_command[len("sudo ") :] if elevated else install_command
        run = f"{{ {verify} && {body}; }}" if verify else body
        inner = f"{run} > {self.log} 2>&1; xm_rc=$?; rm -f {self.rc}; echo $xm_rc > {self.rc}"
        if marker is not None:  # a purge installs nothing: the marker is left as it was
            inner += (
                f'; if [ "$xm_rc" = 0 ]; then printf \'%s%s}}\\n\' {word(marker)} "$(date +%s)" '
                f"> {self.marker_tmp} && mv -f {self.marker_tmp} {self.marker}; fi"
            )
        drafts = f" {self.marker_tmp}" if marker is not None else ""  # a purge leaves the marker alone
        launch = (
            f"{self._attach}else rm -f {self.rc} {self.log} {self.boot} {self.pid}{drafts}; "
            f"cat /proc/sys/kernel/random/boot_id > {self.boot} 2>/dev/null; "
            f"nohup setsid sh -c {word(inner)} >/dev/null 2>&1 </dev/null & "
            f"echo $! > {self.pid}; echo STARTED; fi"
        )
        text = f"sudo sh -c {word(launch)}" if elevated else launch
        kind = CommandKind.PURGE_LAUNCH if self.job == "purge" else CommandKind.INSTALL_LAUNCH
        return RemoteCommand(text, kind, self.release)

    def answer(self, step: Step, server: str, stdout: str) -> str:
        """The word `launch` or `follow` ends with (STARTED, ATTACHED, FINISHED or VANISHED). Only the
        answer's last line counts, and only whole: a word elsewhere in what the server printed (a shell
        start-up file's echo, a banner) is not taken for one. Any other answer fails the step."""
        last = next((line for line in reversed(framed.lines(stdout)) if line), "")
        if last not in _ANSWERS:
            raise StepFailed(
                step,
                server,
                f"the {self.job} job's launch gave no answer xsoar-mt knows: {framed.shown_text(last, 80)}",
                hint="check that the server runs the script as sent (its shell prints nothing after it), then `--resume`",
            )
        return last

    def poll(self, offset: int) -> RemoteCommand:
        """First line: `<exit code or -> <alive 0|1> <boot id now> <boot id at launch>`; then the log from
        byte `offset` on."""
        text = (
            f"{self._alive}xm_c=$(cat {self.rc} 2>/dev/null); xm_k=$(cat {self.boot} 2>/dev/null); "
            f'echo "${{xm_c:--}} $xm_a $(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo -) ${{xm_k:--}}"; '
            f"tail -c +{offset + 1} {self.log} 2>/dev/null"
        )
        kind = CommandKind.PURGE_POLL if self.job == "purge" else CommandKind.INSTALL_POLL
        return RemoteCommand(text, kind, self.release)

    def log_tail(self) -> RemoteCommand:
        return RemoteCommand(f"tail -n 5 {self.log}", CommandKind.INSTALL_LOG, self.release)

    def last_lines(self, shell: RemoteShell) -> str:
        """The job log's last lines, for the error that reports its exit code; '' when they cannot be read
        (the exit code is what matters, its log a courtesy)."""
        try:
            return "\n".join(shell.run(self.log_tail(), timeout=60).stdout.splitlines()[-5:])
        except RemoteError:
            return ""


_ANSWERS = ("STARTED", "ATTACHED", "FINISHED", "VANISHED")


@dataclass(frozen=True)
class Poll:
    code: str | None  # the exit code, or None while there is none
    alive: bool
    rebooted: bool
    output: str

    @classmethod
    def parse(cls, stdout: str) -> Poll:
        head, _, output = stdout.partition("\n")
        fields = head.split()
        if len(fields) != 4:  # a scripted or older answer: just the exit code or `-`
            code = head.strip()
            return cls(None if code in ("", "-") else code, code in ("", "-"), False, output)
        code, alive, boot_now, boot_then = fields
        rebooted = boot_now != "-" and boot_then != "-" and boot_now != boot_then
        return cls(None if code == "-" else code, alive == "1" and not rebooted, rebooted, output)


def follow(run: RunContext, step: Step, server: str, shell: RemoteShell, files: InstallFiles) -> str:
    """Poll the installer until it leaves an exit code (returned); fail when it vanished, when the server
    restarted under it, or when it ran past `installer.max_minutes` (it is left running)."""
    log = run.run_dir.server_log(server) if run.run_dir else None
    offset = 0
    # Poll at a tenth of the time waited so far: the lag in noticing the end stays near 10%.
    pace = run.waiter.pace(
        timeout=run.inv.installer.max_minutes * 60,
        first=run.options.poll_min,
        most=run.options.poll_max,
        share=0.1,
    )
    while True:
        if pace.cancelled:
            raise StepFailed(
                step,
                server,
                "stopped waiting (second interrupt); the installer keeps running "
                "on the server and `--resume` will follow it",
                interrupted=True,
            )
        pace.pause()
        if pace.cancelled:
            continue
        try:
            polled = shell.run(files.poll(offset), timeout=60, cancel=run.cancelled)
        except ConnectionLost as lost:
            run.emit(
                "warning",
                f"{server}: {lost.detail}; the installer keeps running; reconnecting",
                step,
                (server,),
            )
            run.reconnect(step, shell)
            continue
        seen = Poll.parse(polled.stdout)
        if seen.output:
            offset += len(seen.output.encode())
            if log:
                log.append(seen.output)
            last = seen.output.strip().splitlines()[-1:] or [""]
            run.emit("step-output", f"{server}: {last[0]}", step, (server,), line=last[0])
        if seen.code is not None:
            return seen.code
        _check_still_running(step, server, seen, pace.expired, run.inv.installer.max_minutes)


def _check_still_running(step: Step, server: str, seen: Poll, expired: bool, max_minutes: float) -> None:
    if seen.rebooted:
        raise StepFailed(
            step,
            server,
            f"the server restarted while the installer for {step.release} "
            "ran; it left no exit code, so what it installed is unknown",
            hint="check the server, then `--resume` (the install runs again)",
        )
    if not seen.alive:
        raise StepFailed(
            step,
            server,
            f"the installer for {step.release} is gone and left no exit code "
            "(killed, or its exit code could not be written: is the disk full?)",
            hint="check the server's disk and log, then `--resume` (the install runs again)",
        )
    if expired:
        raise StepFailed(
            step,
            server,
            f"the installer for {step.release} still runs after "
            f"{max_minutes:g} minutes (installer.max_minutes); it was left running",
            hint="`--resume` follows it to its end once it finishes",
        )
