"""Carrying out a plan: steps in order, the skew rule checked before each install, a clean stop on failure."""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from xsoar_mt.download import DownloadFailed, Downloads, LocalInstaller
from xsoar_mt.errors import ExitCode, XsoarMtError
from xsoar_mt.events import Event, EventSink
from xsoar_mt.installer import file_sha256, installer_path, local_installer, normalise_link
from xsoar_mt.inventory import Inventory
from xsoar_mt.journal import RunDir
from xsoar_mt.plan import Action, Phase, Plan, Step
from xsoar_mt.probe import read_version
from xsoar_mt.releases import Version
from xsoar_mt.remote import ConnectionLost, HostKeyRefused, RemoteError, RemoteShell, Result
from xsoar_mt.shellwords import fill_per_server
from xsoar_mt.skew import Verdict, judge
from xsoar_mt.validation import validate_step

ShellFor = Callable[[str], RemoteShell]


class StepFailed(XsoarMtError):
    exit_code = ExitCode.STEP_FAILED

    def __init__(self, step: Step, server: str | None, message: str, *, hint: str | None = None) -> None:
        where = f" on {server}" if server else ""
        super().__init__(f"step {step.id} ({step.action.value}){where} failed: {message}", hint=hint)
        self.step = step
        self.server = server
        self.detail = f"{server}: {message}" if server else message


@dataclass
class ServerState:
    """What the run knows of a server now."""

    version: Version | None
    running: bool | None
    last_step: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class RunSecrets:
    link: str | None = None
    api_key: str | None = None


@dataclass(frozen=True)
class RunOptions:
    parallel: int = 1
    prepare_parallel: int = 16
    poll_min: float = 0.5
    poll_max: float = 5.0
    reconnect_timeout: float = 300.0


@dataclass
class RunReport:
    outcome: str  # succeeded | failed | interrupted
    servers: dict[str, ServerState]
    steps_done: int
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return {
            "succeeded": ExitCode.OK,
            "failed": ExitCode.STEP_FAILED,
            "interrupted": ExitCode.INTERRUPTED,
        }[self.outcome]


class InstallFiles:
    """Where a detached installer leaves its output, exit code and pid on the server."""

    def __init__(self, directory: str, release: str) -> None:
        base = f"{directory.rstrip('/')}/install-{release}"
        self.log, self.rc, self.pid = (shlex.quote(f"{base}.{ext}") for ext in ("log", "rc", "pid"))

    def launch(self, install_command: str) -> str:
        """Start the installer detached (it survives a dropped SSH connection), or attach to a running one."""
        elevated = install_command.startswith("sudo ")
        body = install_command[len("sudo ") :] if elevated else install_command
        inner = f"{body} > {self.log} 2>&1; echo $? > {self.rc}"
        launch = (
            f"if [ -f {self.pid} ] && [ ! -s {self.rc} ] && [ -d /proc/$(cat {self.pid}) ]; then echo ATTACHED; "
            f"else rm -f {self.rc}; nohup setsid sh -c {shlex.quote(inner)} >/dev/null 2>&1 </dev/null & "
            f"echo $! > {self.pid}; echo STARTED; fi"
        )
        return f"sudo sh -c {shlex.quote(launch)}" if elevated else launch

    def poll(self, offset: int) -> str:
        """First line: the exit code, or `-` while running; then the log from byte `offset` on."""
        return f"cat {self.rc} 2>/dev/null || echo -; tail -c +{offset + 1} {self.log} 2>/dev/null"


class Executor:
    def __init__(
        self,
        inventory: Inventory,
        plan: Plan,
        shell_for: ShellFor,
        events: EventSink,
        state: Mapping[str, ServerState],
        secrets: RunSecrets,
        options: RunOptions = RunOptions(),
        run_dir: RunDir | None = None,
        downloads: Downloads | None = None,
    ) -> None:
        self.inv = inventory
        self.plan = plan
        self.shell_for = shell_for
        self.events = events
        self.state = dict(state)
        self.secrets = secrets
        self.options = options
        self.run_dir = run_dir
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._failures: list[StepFailed] = []
        self._interrupts = 0
        self._steps_done = 0
        self._main = {s.name for s in inventory.main.servers}
        self._digests: dict[Path, str] = {}
        self.downloads = downloads  # upload delivery from a link: each installer is downloaded here once
        self._announced: set[str] = set()

    # -- control ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: start nothing new. Second: stop waiting for running steps too."""
        self._interrupts += 1
        self._wake.set()
        if self._interrupts == 1:
            self._emit("warning", "interrupt: finishing running steps, starting nothing new "
                       "(interrupt again to stop waiting; installers already started keep running)")  # fmt: skip
        else:
            self._emit("warning", "second interrupt: no longer waiting for running steps")

    @property
    def stopping(self) -> bool:
        return self._interrupts > 0 or bool(self._failures)

    @property
    def abandon(self) -> bool:
        return self._interrupts > 1

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        if self.abandon:
            return
        self._wake.clear()

    def _emit(self, kind: str, message: str, step: Step | None = None, servers: tuple[str, ...] = (),
              **data: object) -> None:  # fmt: skip
        self.events.emit(Event(kind, message, step.id if step else None, servers, data))

    # -- the run ------------------------------------------------------------------------------------

    def execute(self) -> RunReport:
        total = self.plan.step_count
        self._emit("run-started", f"run: {total} steps to {self.plan.target} on {self.plan.deployment}",
                   target=self.plan.target, steps=total)  # fmt: skip
        for lanes, width in self._batches():
            if self.stopping:
                break
            self._run_lanes(lanes, width)
        if self._failures:
            outcome = "failed"
        elif self._interrupts:
            outcome = "interrupted"
        else:
            outcome = "succeeded"
        report = RunReport(outcome, self.state, self._steps_done, [f.message for f in self._failures])
        self._emit("run-finished", f"run {outcome}: {self._steps_done} of {total} steps done",
                   outcome=outcome, fleet={n: _state_dict(s) for n, s in self.state.items()})  # fmt: skip
        return report

    def _batches(self) -> Iterator[tuple[list[list[Step]], int]]:
        """Lanes that may run side by side: prepare steps, or the phases of different host groups."""
        hosts: list[Phase] = []
        for phase in self.plan.phases:
            if phase.group is not None and phase.group != self.inv.main.name:
                hosts.append(phase)
                continue
            if hosts:
                yield [list(p.steps) for p in hosts], self.options.parallel
                hosts = []
            if phase.id == "prepare":
                yield [[s] for s in phase.steps], self.options.prepare_parallel
            else:
                yield [list(phase.steps)], 1
        if hosts:
            yield [list(p.steps) for p in hosts], self.options.parallel

    def _run_lanes(self, lanes: list[list[Step]], width: int) -> None:
        if len(lanes) == 1 or width <= 1:
            for lane in lanes:
                if self.stopping:
                    return
                self._run_lane(lane)
            return
        with ThreadPoolExecutor(max_workers=min(width, len(lanes))) as pool:
            futures = [pool.submit(self._run_lane, lane) for lane in lanes]
            self._wait(futures)

    def _wait(self, futures: list[Future[None]]) -> None:
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.result()

    def _run_lane(self, steps: list[Step]) -> None:
        for step in steps:
            if self.stopping:
                return
            try:
                self._run_step(step)
            except StepFailed as failure:
                with self._lock:
                    self._failures.append(failure)
                return

    def _run_step(self, step: Step) -> None:
        if step.action is Action.INSTALL:
            self._check_skew(step)
        own = {"per_server": dict(step.per_server)} if step.per_server else {}
        self._emit("step-started", f"{step.action.value} on {', '.join(step.servers)} ({step.id})", step,
                   step.servers, command=step.command, **own)  # fmt: skip
        started = time.monotonic()
        try:
            if step.action is Action.VALIDATE:
                self._validate(step)
            else:
                self._each(step, self._handler(step.action))
        except StepFailed as failure:
            self._mark(step, "failed")
            self._emit("step-finished", failure.message, step, step.servers, outcome="failed",
                       error=failure.message, seconds=round(time.monotonic() - started, 3))  # fmt: skip
            raise
        self._mark(step, "ok")
        with self._lock:
            self._steps_done += 1
        versions = {s: str(self.state[s].version) for s in step.servers if self.state[s].version}
        self._emit("step-finished", f"done: {step.action.value} on {', '.join(step.servers)}", step, step.servers,
                   outcome="ok", seconds=round(time.monotonic() - started, 3), versions=versions)  # fmt: skip

    def _mark(self, step: Step, outcome: str) -> None:
        with self._lock:
            for server in step.servers:
                self.state[server].last_step = step.id
                self.state[server].outcome = outcome

    def _handler(self, action: Action) -> Callable[[Step, str], None]:
        return {
            Action.BACKUP: self._command,
            Action.STOP: self._stop,
            Action.START: self._start,
            Action.FETCH: self._fetch,
            Action.INSTALL: self._install,
            Action.HEALTHY: self._healthy,
        }[action]

    def _each(self, step: Step, handler: Callable[[Step, str], None]) -> None:
        """Run `handler` for each of the step's servers at once; the step fails if any server fails."""
        if len(step.servers) == 1:
            self._guarded(handler, step, step.servers[0])
            return
        with ThreadPoolExecutor(max_workers=len(step.servers)) as pool:
            futures = [pool.submit(self._guarded, handler, step, s) for s in step.servers]
            errors = []
            for future in futures:
                try:
                    future.result()
                except StepFailed as failure:
                    errors.append(failure)
        if errors:
            if len(errors) == 1:
                raise errors[0]
            raise StepFailed(step, None, "; ".join(e.detail for e in errors), hint=errors[0].hint)

    def _guarded(self, handler: Callable[[Step, str], None], step: Step, server: str) -> None:
        try:
            handler(step, server)
        except StepFailed:
            raise
        except RemoteError as exc:
            raise StepFailed(step, server, exc.message, hint=exc.hint) from None

    # -- the skew rule, on what the servers really run ----------------------------------------------

    def _check_skew(self, step: Step) -> None:
        with self._lock:
            releases = {n: s.version.release for n, s in self.state.items() if s.version is not None}
        for server in step.servers:
            releases[server] = step.release
        main = {n: r for n, r in releases.items() if n in self._main}
        hosts = {n: r for n, r in releases.items() if n not in self._main}
        verdict = judge(main, hosts, self.inv.releases)
        if verdict.verdict is Verdict.UNSUPPORTED:
            reasons = "; ".join(f.reason for f in verdict.faults if f.verdict is Verdict.UNSUPPORTED)
            raise StepFailed(step, None, f"refused: it would leave the deployment unsupported ({reasons})",
                             hint="the servers do not run what the plan expected; check them and plan again")  # fmt: skip

    # -- actions ------------------------------------------------------------------------------------

    def _run(self, step: Step, server: str, command: str, *, stdin: str | None = None,
             timeout: float | None = 600) -> Result:  # fmt: skip
        result = self.shell_for(server).run(self._for(server, command), stdin=stdin, timeout=timeout)
        if not result.ok:
            raise StepFailed(step, server, f"exit {result.exit_code}: {result.tail(5) or 'no output'}")
        return result

    def _for(self, server: str, command: str) -> str:
        """Fill in the per-server placeholders a step's command may hold ({server}, {address})."""
        return fill_per_server(command, {"server": server, "address": self.inv.server(server).address})

    def _command(self, step: Step, server: str) -> None:
        self._run(step, server, step.command_on(server))

    def _stop(self, step: Step, server: str) -> None:
        self._run(step, server, step.command_on(server))
        with self._lock:
            self.state[server].running = False

    def _start(self, step: Step, server: str) -> None:
        self._run(step, server, step.command_on(server))
        with self._lock:
            self.state[server].running = True

    def _fetch(self, step: Step, server: str) -> None:
        installer = self.inv.installer
        if installer.delivery == "upload":
            self._upload(step, server)
            return
        if self.secrets.link is None:
            raise StepFailed(step, server, "no download link (installer.link in the inventory)")
        link = normalise_link(self.secrets.link, step.release, installer.build)
        self._run(step, server, step.command_on(server), stdin=link + "\n", timeout=3600)

    def _upload(self, step: Step, server: str) -> None:
        """Send the operator's installer over SFTP unless the server has it already; the server checks it."""
        local = self._local_installer(step, server)
        remote = installer_path(self.inv.installer, step.release)
        shell = self.shell_for(server)
        have = shell.run(f"sha256sum {shlex.quote(remote)} 2>/dev/null", timeout=120)
        if have.ok and have.stdout.split()[:1] == [local.sha256]:
            self._emit("step-output", f"{server}: installer already present, not sent again", step, (server,))
        else:
            self._run(step, server, f"mkdir -p {shlex.quote(self.inv.installer.directory)}")
            shell.put(local.path, remote, self._upload_progress(step, server))
        self._run(step, server, step.command_on(server), stdin=local.sha256 + "\n", timeout=300)

    def _local_installer(self, step: Step, server: str) -> LocalInstaller:
        """The installer to upload: downloaded once from the link, or the operator's own file."""
        if self.downloads is not None:
            try:
                found = self.downloads.get(step.release, self._download_progress(step))
            except DownloadFailed as exc:
                raise StepFailed(step, server, exc.message, hint=exc.hint) from None
            self._announce(step, found)
            return found
        if self.inv.installer.file is None:
            raise StepFailed(step, server, "no local installer file to upload (installer.file)")
        local = local_installer(self.inv.installer, self.inv.path, step.release)
        if not local.is_file():
            raise StepFailed(step, server, f"the installer for {step.release} is not at {local}")
        digest = self._local_digest(local)
        expected = self.inv.installer.sha256.get(step.release)
        if expected and expected != digest:
            raise StepFailed(
                step,
                server,
                f"local installer {local.name} has sha256 {digest}, the inventory expects {expected}",
            )
        return LocalInstaller(local, digest)

    def _announce(self, step: Step, found: LocalInstaller) -> None:
        """Say once per release where the uploaded installer came from (the journal keeps its sha256)."""
        with self._lock:
            if step.release in self._announced:
                return
            self._announced.add(step.release)
        self._emit("installer-downloaded", f"installer for {step.release} {found.how}: {found.path} "
                   f"(sha256 {found.sha256})", step,
                   release=step.release, sha256=found.sha256, path=str(found.path), reused=found.reused)  # fmt: skip

    def _download_progress(self, step: Step) -> Callable[[int, int], None]:
        """Reports the one local download at every 2% (or every 64 MiB when the size is unknown)."""
        reported = [-1]

        def progress(received: int, total: int) -> None:
            mark = received * 50 // total if total else received >> 26
            if mark > reported[0]:
                reported[0] = mark
                of = f" of {total >> 20}" if total else ""
                self._emit("step-output", f"downloading the {step.release} installer: {received >> 20}{of} MiB",
                           step, received=received, total=total, release=step.release)  # fmt: skip

        return progress

    def _upload_progress(self, step: Step, server: str) -> Callable[[int, int], None]:
        """Reports an upload at every 2% of the file, so a large installer shows it is moving."""
        reported = [-1]

        def progress(sent: int, total: int) -> None:
            mark = sent * 50 // total if total else 50
            if mark > reported[0]:
                reported[0] = mark
                self._emit("step-output", f"{server}: uploaded {sent >> 20} of {total >> 20} MiB", step,
                           (server,), sent=sent, total=total)  # fmt: skip

        return progress

    def _local_digest(self, path: Path) -> str:
        """sha256 of a local installer, read once however many servers it goes to."""
        with self._lock:
            if path not in self._digests:
                self._digests[path] = file_sha256(path)
            return self._digests[path]

    def _install(self, step: Step, server: str) -> None:
        files = InstallFiles(self.inv.installer.directory, step.release)
        shell = self.shell_for(server)
        started = self._run(step, server, files.launch(step.command_on(server)), timeout=120)
        if "ATTACHED" in started.stdout:
            self._emit("warning", f"{server}: an installer is already running; following it", step, (server,))
        log = self.run_dir.server_log(server) if self.run_dir else None
        offset, began = 0, time.monotonic()
        while True:
            if self.abandon:
                raise StepFailed(
                    step,
                    server,
                    "stopped waiting (second interrupt); the installer keeps running "
                    "on the server and `--resume` will follow it",
                )
            # Poll at a tenth of the time waited so far: the lag in noticing the end stays near 10%.
            elapsed = time.monotonic() - began
            self._sleep(max(self.options.poll_min, min(self.options.poll_max, elapsed / 10)))
            try:
                polled = shell.run(files.poll(offset), timeout=60)
            except ConnectionLost as lost:
                self._emit("warning", f"{server}: {lost.message}; the installer keeps running; reconnecting",
                           step, (server,))  # fmt: skip
                self._reconnect(step, shell)
                continue
            code, _, output = polled.stdout.partition("\n")
            if output:
                offset += len(output.encode())
                if log:
                    log.append(output)
                last = output.strip().splitlines()[-1:] or [""]
                self._emit("step-output", f"{server}: {last[0]}", step, (server,), line=last[0])
            if code.strip() not in ("", "-"):
                break
        if code.strip() != "0":
            tail = "\n".join(shell.run(f"tail -n 5 {files.log}", timeout=60).stdout.splitlines()[-5:])
            raise StepFailed(step, server, f"the installer exited {code.strip()}: {tail or 'no output'}",
                             hint="read the server's log, fix the cause, then `xsoar-mt upgrade run --resume`")  # fmt: skip
        version = self._version_after_install(step, server, shell)
        if version.release != step.release:
            raise StepFailed(step, server, f"the installer finished but the server reports {version}, "
                             f"not {step.release}")  # fmt: skip
        with self._lock:
            self.state[server].version = version

    def _version_after_install(self, step: Step, server: str, shell: RemoteShell) -> Version:
        """The installer starts the service; read the version once it answers (within the health timeout)."""
        deadline = time.monotonic() + self.inv.health.timeout
        interval = self.options.poll_min
        while True:
            try:
                version = read_version(shell, self.inv, self.secrets.api_key)
                with self._lock:
                    self.state[server].running = True
                return version
            except ConnectionLost:
                self._reconnect(step, shell)
            except RemoteError as exc:
                if time.monotonic() > deadline or self.abandon:
                    raise StepFailed(
                        step, server, f"no version readable after the install: {exc.message}"
                    ) from None
            self._sleep(interval)
            interval = min(self.inv.health.max_interval, interval * 2)

    def _reconnect(self, step: Step, shell: RemoteShell) -> None:
        deadline = time.monotonic() + self.options.reconnect_timeout
        delay = 0.5
        while True:
            if self.abandon:
                raise StepFailed(step, shell.server, "stopped waiting to reconnect (second interrupt)")
            try:
                shell.connect()
                self._emit("warning", f"{shell.server}: reconnected", step, (shell.server,))
                return
            except HostKeyRefused:
                raise
            except RemoteError as exc:
                if time.monotonic() > deadline:
                    raise StepFailed(step, shell.server, f"could not reconnect: {exc.message}") from None
            self._sleep(delay)
            delay = min(5.0, delay * 2)

    def _healthy(self, step: Step, server: str) -> None:
        health = self.inv.health
        deadline = time.monotonic() + health.timeout
        interval = min(health.interval, self.options.poll_max)
        shell = self.shell_for(server)
        command = self._for(server, step.command_on(server))
        last = "no answer yet"
        while True:
            try:
                result = shell.run(command, timeout=60)
                if _answers_healthy(result):
                    with self._lock:
                        self.state[server].running = True
                    return
                last = f"exit {result.exit_code}: {result.tail(2) or result.stdout.strip()[-60:]}"
            except ConnectionLost:
                self._reconnect(step, shell)
            if self.abandon:
                raise StepFailed(step, server, "stopped waiting for health (second interrupt)")
            if time.monotonic() > deadline:
                raise StepFailed(step, server, f"not healthy after {health.timeout:g}s ({last})",
                                 hint="check the service on the server; raise health.timeout if it is slow")  # fmt: skip
            self._sleep(interval)
            interval = min(health.max_interval, interval * 2)

    def _validate(self, step: Step) -> None:
        problems = validate_step(step, self.inv, self.shell_for, self.secrets.api_key)
        if problems:
            raise StepFailed(step, step.servers[0], "; ".join(problems))


def _answers_healthy(result: Result) -> bool:
    """Exit 0, and when the command ends with an HTTP status code, that code is 200."""
    if not result.ok:
        return False
    code = re.search(r"(\d{3})\s*$", result.stdout)
    return code is None or code.group(1) == "200"


def _state_dict(state: ServerState) -> dict[str, object]:
    return {
        "version": str(state.version) if state.version else None,
        "running": state.running,
        "last_step": state.last_step,
        "outcome": state.outcome,
    }
