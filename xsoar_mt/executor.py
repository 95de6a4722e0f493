"""Carrying out a plan: steps in order, the skew rule checked before each install, a clean stop on failure.

The executor keeps one `ServerView` per server (observed.py) and updates it from what every step saw:
a stop, an installer's exit code, a start, a health gate and the version `/about` reports after it. Each
change is reported as a `server-state` event (the journal keeps them) and written to the deployment's
local record. On a failure or a first interrupt no new group is started, and a group already under way
is finished (or, if nothing was installed in it yet, started again), so no server is left stopped and no
HA group or DR pair is left on mixed versions where the vendor's order allows it.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from xsoar_mt.download import DownloadFailed, Downloads, LocalInstaller
from xsoar_mt.errors import ExitCode, XsoarMtError
from xsoar_mt.estimate import batches
from xsoar_mt.events import Event, EventSink
from xsoar_mt.installer import file_sha256, installer_path, local_installer, normalise_link, verify_before_run
from xsoar_mt.inventory import Inventory
from xsoar_mt.journal import RunDir
from xsoar_mt.known import KnownState
from xsoar_mt.observed import Installer, Marker, Observed, ServerView, Service, Source
from xsoar_mt.plan import Action, Phase, Plan, Scope, Step
from xsoar_mt.probe import marker_command, marker_path, read_version
from xsoar_mt.releases import Version
from xsoar_mt.remote import Cancelled, ConnectionLost, HostKeyRefused, RemoteError, RemoteShell, Result
from xsoar_mt.shellwords import LATER, fill, fill_per_server, word
from xsoar_mt.skew import DEGRADED_FUNCTIONS, Judgement, Verdict, judge_releases
from xsoar_mt.validation import validate_step
from xsoar_mt.window import Refusal

ShellFor = Callable[[str], RemoteShell]
T = TypeVar("T")
Measured = dict[str, dict[str, float]]  # server -> action -> minutes this run took


class WindowCheck(Protocol):
    """Would these phases, started now, end before the window does? (window.py)"""

    end: float

    def check(
        self, phases: Sequence[Phase], measured: Mapping[str, Mapping[str, float]]
    ) -> Refusal | None: ...


class StepFailed(XsoarMtError):
    exit_code = ExitCode.STEP_FAILED

    def __init__(
        self,
        step: Step,
        server: str | None,
        message: str,
        *,
        hint: str | None = None,
        servers: tuple[str, ...] | None = None,
        interrupted: bool = False,
    ) -> None:
        where = f" on {server}" if server else ""
        super().__init__(f"step {step.id} ({step.action.value}){where} failed: {message}", hint=hint)
        self.step = step
        self.server = server
        self.detail = f"{server}: {message}" if server else message
        # the servers this failure is about (an HA step may fail on one server and succeed on another)
        self.servers = servers if servers is not None else ((server,) if server else step.servers)
        self.interrupted = interrupted  # cut off by the operator's second interrupt, not a fault


class ValidationFailed(StepFailed):
    exit_code = ExitCode.VALIDATION_FAILED


@dataclass
class ServerState:
    """What the run knows of a server now: its view, and how the run went for it."""

    view: ServerView
    last_step: str | None = None
    outcome: str | None = None  # ok | failed | incomplete | not started | skipped

    @property
    def version(self) -> Version | None:
        return self.view.version

    @property
    def running(self) -> bool | None:
        return self.view.running


@dataclass(frozen=True)
class RunSecrets:
    link: str | None = None
    api_key: str | None = None


@dataclass(frozen=True)
class RunOptions:
    # Host groups at once; None: one at a time, or a whole wave at once (estimate.batches).
    parallel: int | None = None
    prepare_parallel: int = 16
    poll_min: float = 0.5
    poll_max: float = 5.0
    reconnect_timeout: float = 300.0


@dataclass(frozen=True)
class WindowClosed:
    """Where a run stopped for its window: the group it did not start, the group phases it finished and
    those left, and what does not work until the hosts catch up with main."""

    refusal: Refusal
    done: tuple[Phase, ...]
    left: tuple[Phase, ...]
    degraded_functions: tuple[str, ...]


@dataclass
class RunReport:
    outcome: str  # succeeded | failed | interrupted | window-closed
    servers: dict[str, ServerState]
    steps_done: int
    failures: list[str] = field(default_factory=list)
    validation_only: bool = False  # every failure was a validation step's
    window: WindowClosed | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome == "failed" and self.validation_only:
            return ExitCode.VALIDATION_FAILED
        return {
            "succeeded": ExitCode.OK,
            "failed": ExitCode.STEP_FAILED,
            "interrupted": ExitCode.INTERRUPTED,
            "window-closed": ExitCode.WINDOW_CLOSED,
        }[self.outcome]


class InstallFiles:
    """Where a detached installer leaves its output, exit code, pid and boot id on the server."""

    def __init__(self, directory: str, release: str) -> None:
        base = f"{directory.rstrip('/')}/install-{release}"
        self.log, self.rc, self.pid, self.boot = (
            word(f"{base}.{ext}") for ext in ("log", "rc", "pid", "boot")
        )
        self.marker = word(f"{directory.rstrip('/')}/state.json")
        self.marker_tmp = word(f"{directory.rstrip('/')}/state.json.installer")
        self._alive = (
            f'xm_p=$(cat {self.pid} 2>/dev/null); xm_a=0; if [ -n "$xm_p" ] && [ -d "/proc/$xm_p" ] && '
            f'grep -qa "install-{release}" "/proc/$xm_p/cmdline" 2>/dev/null; then xm_a=1; fi; '
        )
        # `follow` and `launch` both begin so: an installer still running (no exit code yet) is attached to
        self._attach = f'{self._alive}if [ "$xm_a" = 1 ] && [ ! -s {self.rc} ]; then echo ATTACHED; '

    def follow(self) -> str:
        """For an installer seen running when the plan was made: attach to it, or find it finished; never
        start another (it may have ended between that look and this step)."""
        return f"{self._attach}elif [ -s {self.rc} ]; then echo FINISHED; else echo VANISHED; fi"

    def launch(self, install_command: str, marker: str, verify: str = "") -> str:
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
        inner = (
            f"{run} > {self.log} 2>&1; xm_rc=$?; rm -f {self.rc}; echo $xm_rc > {self.rc}; "
            f'if [ "$xm_rc" = 0 ]; then printf \'%s%s}}\\n\' {word(marker)} "$(date +%s)" '
            f"> {self.marker_tmp} && mv -f {self.marker_tmp} {self.marker}; fi"
        )
        launch = (
            f"{self._attach}else rm -f {self.rc} {self.log} {self.boot} {self.pid} {self.marker_tmp}; "
            f"cat /proc/sys/kernel/random/boot_id > {self.boot} 2>/dev/null; "
            f"nohup setsid sh -c {word(inner)} >/dev/null 2>&1 </dev/null & "
            f"echo $! > {self.pid}; echo STARTED; fi"
        )
        return f"sudo sh -c {word(launch)}" if elevated else launch

    def poll(self, offset: int) -> str:
        """First line: `<exit code or -> <alive 0|1> <boot id now> <boot id at launch>`; then the log from
        byte `offset` on."""
        return (
            f"{self._alive}xm_c=$(cat {self.rc} 2>/dev/null); xm_k=$(cat {self.boot} 2>/dev/null); "
            f'echo "${{xm_c:--}} $xm_a $(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo -) ${{xm_k:--}}"; '
            f"tail -c +{offset + 1} {self.log} 2>/dev/null"
        )


@dataclass(frozen=True)
class _Poll:
    code: str | None  # the exit code, or None while there is none
    alive: bool
    rebooted: bool
    output: str

    @classmethod
    def parse(cls, stdout: str) -> _Poll:
        head, _, output = stdout.partition("\n")
        fields = head.split()
        if len(fields) != 4:  # a scripted or older answer: just the exit code or `-`
            code = head.strip()
            return cls(None if code in ("", "-") else code, code in ("", "-"), False, output)
        code, alive, boot_now, boot_then = fields
        rebooted = boot_now != "-" and boot_then != "-" and boot_now != boot_then
        return cls(None if code == "-" else code, alive == "1" and not rebooted, rebooted, output)


class Executor:
    def __init__(
        self,
        inventory: Inventory,
        plan: Plan,
        shell_for: ShellFor,
        events: EventSink,
        observed: Observed,
        secrets: RunSecrets,
        options: RunOptions = RunOptions(),
        run_dir: RunDir | None = None,
        downloads: Downloads | None = None,
        known: KnownState | None = None,
        run_id: str | None = None,
        write_markers: bool = True,
        window: WindowCheck | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inv = inventory
        self.plan = plan
        self.shell_for = shell_for
        self.events = events
        self.state = {name: ServerState(view) for name, view in observed.views.items()}
        self.secrets = secrets
        self.options = options
        self.run_dir = run_dir
        self.known = known
        self.run_id = run_id
        self.write_markers = write_markers
        self._lock = threading.Lock()
        self._failures: list[StepFailed] = []
        self._fatal: list[str] = []
        self._interrupts = 0  # written by the signal handler: nothing else happens there
        self._noticed = 0
        self._steps_done = 0
        self._skipped = False
        self._main = {s.name for s in inventory.main.servers}
        self._digests: dict[Path, str] = {}
        self.downloads = downloads  # upload delivery from a link: each installer is downloaded here once
        self._announced: set[str] = set()
        self._local_record_warned = False
        self.window = window
        self.clock = clock  # times each server's steps (`measured`)
        self._window_closed: Refusal | None = None
        self.measured: Measured = {}  # what each server's stop, install, start and health gate took
        self._not_measured: set[tuple[str, str]] = set()  # (step id, server): an installer only followed
        self._begun: set[str] = set()  # phases a step of which started
        self._group_phases = {p.id for p in plan.phases if p.group is not None}
        self._wave_of = {p.id: p.wave for p in plan.phases if p.wave is not None}
        self._finished: set[str] = set()  # steps finished ok

    # -- control ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Called from a signal handler: it only counts. The run notices it between and within steps.

        First: finish the groups under way, start nothing new. Second: stop waiting for anything.
        """
        self._interrupts += 1

    def fail_run(self, message: str) -> None:
        """Something outside any step (the journal, say) went wrong: start nothing new, and say why."""
        with self._lock:
            if message not in self._fatal:
                self._fatal.append(message)

    def _notice(self) -> None:
        """Report interrupts the signal handler counted (from the run's own threads, never the handler)."""
        seen = self._interrupts
        if seen <= self._noticed:
            return
        with self._lock:
            if seen <= self._noticed:
                return
            first, self._noticed = self._noticed, seen
        if first == 0:
            self._emit("warning", "interrupt: finishing the groups under way so none is left stopped, starting "
                       "nothing new (interrupt again to stop waiting; installers already started keep running)")  # fmt: skip
        if seen > 1:
            self._emit("warning", "second interrupt: no longer waiting for running steps")

    @property
    def stopping(self) -> bool:
        return (
            self._interrupts > 0
            or bool(self._failures)
            or bool(self._fatal)
            or self._window_closed is not None
        )

    @property
    def abandon(self) -> bool:
        return self._interrupts > 1

    def _cancelled(self) -> bool:
        """`abandon`, as the callable a remote command polls."""
        return self.abandon

    def _sleep(self, seconds: float) -> None:
        """Wait, waking at once for a second interrupt (checked every 50 ms: nothing is signalled to wake us)."""
        deadline = time.monotonic() + seconds
        while True:
            self._notice()
            left = deadline - time.monotonic()
            if left <= 0 or self.abandon:
                return
            time.sleep(min(0.05, left))

    def _emit(self, kind: str, message: str, step: Step | None = None, servers: tuple[str, ...] = (),
              **data: object) -> None:  # fmt: skip
        self.events.emit(Event(kind, message, step.id if step else None, servers, data))

    # -- the observed state -------------------------------------------------------------------------

    def _update(self, server: str, step: Step | None = None, **changes: object) -> ServerView:
        """Change what the run knows of `server`, report it (the journal keeps it) and record it locally."""
        with self._lock:
            view = replace(self.state[server].view, **changes)  # type: ignore[arg-type]  # ServerView fields
            self.state[server].view = view
        self._emit("server-state", f"{server}: {view.describe_version()}, {view.service.value}", step,
                   (server,), **view.to_dict())  # fmt: skip
        if self.known is not None:
            try:
                self.known.record([view], self.run_id)
            except OSError as exc:
                if not self._local_record_warned:
                    self._local_record_warned = True
                    self._emit("warning", f"cannot update the local record {self.known.path}: {exc}; "
                               "the journal still records every change")  # fmt: skip
        return view

    def _verified(self, step: Step, server: str, version: Version) -> None:
        """`/about` answered: the version is known for sure; xsoar-mt's marker on the server says so too."""
        self._update(server, step, version=version, source=Source.API, at=time.time(), unknown=None, basis=None,
                     service=Service.RUNNING, healthy=True)  # fmt: skip
        if self.write_markers:
            marker = Marker(version, time.time(), "api", self.run_id)
            try:
                self.shell_for(server).run(marker_command(self.inv, server, marker), timeout=60)
            except RemoteError as exc:
                self._emit("warning", f"{server}: could not write the marker {marker_path(self.inv)}: "
                           f"{exc.detail}", step, (server,))  # fmt: skip

    # -- the run ------------------------------------------------------------------------------------

    def execute(self) -> RunReport:
        total = self.plan.step_count
        self._emit("run-started", f"run: {total} steps to {self.plan.target} on {self.plan.deployment}",
                   target=self.plan.target, steps=total)  # fmt: skip
        phases = list(self.plan.phases)
        try:
            for batch, width in batches(phases, self.options.parallel):
                self._notice()
                if self.stopping:
                    self._skipped = True
                    break
                if batch[0].id == "prepare":
                    following = next((p for p in phases if p.group is not None), None)
                    if following is not None and not self._fits([batch[0], following]):
                        self._skipped = True
                        break
                    self._run_lanes([(batch[0], [s]) for s in batch[0].steps], self.options.prepare_parallel)
                else:
                    if batch[0].wave is not None and batch[0].group is not None:
                        self._announce_wave(batch, width)
                    self._run_lanes([(p, list(p.steps)) for p in batch], width)
        except Exception as exc:  # a bug or an I/O error outside any step: still a recap and an exit code
            self.fail_run(f"unexpected error: {type(exc).__name__}: {exc}")
        self._notice()
        failures = [f.message for f in self._failures] + self._fatal
        cut_off = self._interrupts > 0 and not self._fatal and all(f.interrupted for f in self._failures)
        if failures and not cut_off:
            outcome = "failed"
        elif self._interrupts and (failures or self._skipped or self._steps_done < total):
            outcome = "interrupted"
        elif self._window_closed is not None:
            outcome = "window-closed"
        else:
            outcome = "succeeded"
        self._settle_outcomes()
        self._learn()
        validation_only = (
            bool(self._failures)
            and not self._fatal
            and all(isinstance(f, ValidationFailed) for f in self._failures)
        )
        window = self._window_report() if outcome == "window-closed" else None
        report = RunReport(outcome, self.state, self._steps_done, failures, validation_only, window)
        more: dict[str, Any] = {}  # Any: **-passed beside _emit's own parameters
        if window is not None:
            more = {"window": {"closes": window.refusal.window_end, "not_started": window.refusal.phase.id,
                               "done": [p.id for p in window.done], "left": [p.id for p in window.left],
                               "degraded_functions": list(window.degraded_functions)}}  # fmt: skip
        try:
            self._emit("run-finished", f"run {outcome}: {self._steps_done} of {total} steps done",
                       outcome=outcome, fleet={n: _state_dict(s) for n, s in self.state.items()}, **more)  # fmt: skip
        except Exception as exc:  # the recap still comes, from the report
            report.failures.append(f"could not report the end of the run: {exc}")
        return report

    def _announce_wave(self, batch: list[Phase], width: int) -> None:
        wave, count = batch[0].wave, self.plan.waves.count if self.plan.waves else 0
        groups = [p.group or "" for p in batch]
        at_once = "one at a time" if width <= 1 else f"up to {min(width, len(batch))} at once"
        self._emit("wave-started", f"wave {wave} of {count} to {batch[0].release}: {len(batch)} host group"
                   f"{'' if len(batch) == 1 else 's'} ({', '.join(groups)}), {at_once}", wave=wave,
                   groups=groups, release=batch[0].release, parallel=width)  # fmt: skip

    # -- the window ---------------------------------------------------------------------------------

    def _fits(self, phases: list[Phase]) -> bool:
        """Before a group (or prepare, with the group after it) starts: does the window leave time for it?
        If not, nothing more is started (the groups under way finish) and the run ends `window-closed`."""
        if self.window is None:
            return True
        with self._lock:
            if self._window_closed is not None:
                return False
            measured = {server: dict(minutes) for server, minutes in self.measured.items()}
        refusal = self.window.check(phases, measured)
        if refusal is None:
            return True
        with self._lock:
            first = self._window_closed is None
            if first:
                self._window_closed = refusal
        if first:
            self._emit("window-closed", refusal.message, phase=refusal.phase.id, window_end=refusal.window_end,
                       expected_end=refusal.ends)  # fmt: skip
        return False

    def _window_report(self) -> WindowClosed:
        assert self._window_closed is not None
        groups = [p for p in self.plan.phases if p.group is not None]
        done = tuple(p for p in groups if all(s.id in self._finished for s in p.steps))
        left = tuple(p for p in groups if p.id not in self._begun)
        releases = self._releases()
        lagging = any(n in self._main for n in releases) and self._judge(releases).verdict is not Verdict.OK
        return WindowClosed(self._window_closed, done, left, DEGRADED_FUNCTIONS if lagging else ())

    def _learn(self) -> None:
        """Keep what each server's steps took in the deployment's local record, for the next estimates."""
        if self.known is None or not self.measured:
            return
        try:
            self.known.record_durations(self.measured, self.run_id)
        except OSError as exc:
            self._emit("warning", f"cannot record the measured durations in {self.known.path}: {exc}")

    def _settle_outcomes(self) -> None:
        """Every server's own outcome: ok, failed, incomplete (some of its steps ran), not started, skipped."""
        last_of: dict[str, str] = {}  # each planned server's last step (validation aside)
        for step in self.plan.steps:
            if step.action is not Action.VALIDATE:
                last_of.update(dict.fromkeys(step.servers, step.id))
        phase_of = {step.id: step.phase for step in self.plan.steps}
        for name, state in self.state.items():
            if state.outcome == "failed":
                continue
            last = last_of.get(name)
            if last is None:
                state.outcome = "skipped"
            elif state.outcome is None or (
                phase_of.get(state.last_step or "") == "prepare" and state.last_step != last
            ):
                state.outcome = "not started"  # nothing but its backup and installer delivery ran
            elif state.last_step != last:
                state.outcome = "incomplete"

    def _run_lanes(self, lanes: list[tuple[Phase, list[Step]]], width: int) -> None:
        if len(lanes) == 1 or width <= 1:
            for phase, lane in lanes:
                self._notice()
                if self.stopping:
                    self._skipped = True
                    return
                self._run_lane(phase, lane)
            return
        # The lanes that start at once are let through the window here, in the plan's order (as the
        # estimate takes them), not in whichever order their threads happen to ask; the rest when they start.
        admitted = 0
        for phase, _ in lanes[:width]:
            if phase.group is not None and not self._fits([phase]):
                self._skipped = True
                lanes = lanes[:admitted]
                break
            admitted += 1
        with ThreadPoolExecutor(max_workers=min(width, len(lanes)) or 1) as pool:
            futures = [
                pool.submit(self._run_lane, phase, lane, i < admitted)
                for i, (phase, lane) in enumerate(lanes)
            ]
            self._wait(futures)

    def _wait(self, futures: list[Future[None]]) -> None:
        pending = set(futures)
        while pending:
            self._notice()
            _, pending = wait(pending, timeout=0.2)
        for future in futures:
            try:
                future.result()
            except Exception as exc:  # _run_lane catches everything it can; this is the last net
                self.fail_run(f"unexpected error in a lane: {type(exc).__name__}: {exc}")

    def _run_lane(self, phase: Phase, steps: list[Step], admitted: bool = False) -> None:
        """One phase (or one prepare step). Once its first step ran, it is finished unless a step of its own
        fails or a second interrupt comes: a group is never left half-done because another lane failed, or
        because the window closed. A group starts only if the window leaves time for it (`admitted`: it
        was let through already, with the lanes starting beside it)."""
        self._notice()
        halted = self._interrupts > 0 or bool(self._failures) or bool(self._fatal)
        window = admitted or phase.group is None or self._fits([phase])
        if halted or not window:
            self._skipped = True
            return
        with self._lock:
            self._begun.add(phase.id)
        began: list[Step] = []
        for step in steps:
            self._notice()
            if self.abandon or self._fatal:
                self._skipped = True
                return
            began.append(step)
            try:
                self._run_step(step)
            except StepFailed as failure:
                with self._lock:
                    self._failures.append(failure)
                self._restore(began)
                return
            except Exception as exc:  # a bug, or an I/O error around the step: a failure all the same
                unexpected = StepFailed(step, None, f"unexpected error: {type(exc).__name__}: {exc}")
                with self._lock:
                    self._failures.append(unexpected)
                return

    def _restore(self, began: list[Step]) -> None:
        """After a failure in a group before any install began: start again what this phase stopped.

        The group is then running on the release it had, as before the run. Once an install began there is
        no consistent version to go back to; the recap says what each server runs and `--resume` finishes.
        """
        if not began or began[0].phase in ("prepare", "recover", "validate") or self.abandon:
            return
        if any(s.action is Action.INSTALL for s in began):
            return
        stopped = [n for s in began if s.action is Action.STOP for n in s.servers
                   if self.state[n].view.service is not Service.RUNNING]  # fmt: skip
        if not stopped:
            return
        self._emit("warning", f"nothing was installed in {began[0].phase}: starting {', '.join(stopped)} "
                   "again on the release it had", servers=tuple(stopped))  # fmt: skip
        start = fill(self.inv.commands.start, server=LATER, address=LATER)
        for server in stopped:
            try:
                self._service(began[-1], server, self._for(server, start), True)
            except (StepFailed, RemoteError) as exc:
                self._emit("warning", f"{server}: could not start it again: {exc.message}", servers=(server,))

    def _run_step(self, step: Step) -> None:
        if step.action is Action.INSTALL:
            self._check_skew(step)
        own: dict[str, Any] = {"per_server": dict(step.per_server)} if step.per_server else {}
        if (wave := self._wave_of.get(step.phase)) is not None:
            own["wave"] = wave
        self._emit("step-started", f"{step.action.value} on {', '.join(step.servers)} ({step.id})", step,
                   step.servers, command=step.command, **own)  # fmt: skip
        started = time.monotonic()
        try:
            if step.action is Action.VALIDATE:
                self._validate(step)
            else:
                self._each(step, self._handler(step.action))
        except StepFailed as failure:
            failed = set(failure.servers)
            self._mark(step, [s for s in step.servers if s not in failed], "ok")
            self._mark(step, [s for s in step.servers if s in failed], "failed")
            self._emit("step-finished", failure.message, step, step.servers, outcome="failed",
                       error=failure.message, failed=sorted(failed),
                       seconds=round(time.monotonic() - started, 3))  # fmt: skip
            raise
        self._mark(step, step.servers, "ok")
        with self._lock:
            self._steps_done += 1
            self._finished.add(step.id)
        versions = {s: str(self.state[s].version) for s in step.servers if self.state[s].version}
        self._emit("step-finished", f"done: {step.action.value} on {', '.join(step.servers)}", step, step.servers,
                   outcome="ok", seconds=round(time.monotonic() - started, 3), versions=versions)  # fmt: skip

    def _mark(self, step: Step, servers: list[str] | tuple[str, ...], outcome: str) -> None:
        with self._lock:
            for server in servers:
                self.state[server].last_step = step.id
                self.state[server].outcome = outcome

    def _handler(self, action: Action) -> Callable[[Step, str], None]:
        return {
            Action.BACKUP: self._backup,
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
            raise StepFailed(step, None, "; ".join(e.detail for e in errors), hint=errors[0].hint,
                             servers=tuple(s for e in errors for s in e.servers))  # fmt: skip

    def _guarded(self, handler: Callable[[Step, str], None], step: Step, server: str) -> None:
        """Any error on one server becomes that server's step failure: never an escape without a recap.
        What a group phase's stop, install, start or health gate took on the server is kept (`measured`)."""
        began = self.clock()
        try:
            handler(step, server)
            key = _MEASURED.get(step.action)
            if key is not None and step.phase in self._group_phases:
                with self._lock:
                    if (step.id, server) not in self._not_measured:
                        self.measured.setdefault(server, {})[key] = (self.clock() - began) / 60
        except StepFailed:
            raise
        except Cancelled as exc:
            raise StepFailed(step, server, exc.detail, interrupted=True) from None
        except RemoteError as exc:
            raise StepFailed(step, server, exc.detail, hint=exc.hint) from None
        except Exception as exc:
            raise StepFailed(step, server, f"unexpected error: {type(exc).__name__}: {exc}") from None

    # -- the skew rule, on what the servers really run ----------------------------------------------

    def _releases(self) -> dict[str, str]:
        """Each server's release as the run now knows it (servers it cannot tell left out)."""
        with self._lock:
            return {n: v.release for n, s in self.state.items() if (v := s.view.planning_version) is not None}

    def _judge(self, releases: Mapping[str, str]) -> Judgement:
        """The skew rule on `releases` (server -> release), main's servers told from the hosts'."""
        return judge_releases(releases, self._main, self.inv.releases)

    def _check_skew(self, step: Step) -> None:
        releases = self._releases() | dict.fromkeys(step.servers, step.release)
        verdict = self._judge(releases)
        if verdict.verdict is Verdict.UNSUPPORTED:
            reasons = "; ".join(f.reason for f in verdict.faults if f.verdict is Verdict.UNSUPPORTED)
            raise StepFailed(step, None, f"refused: it would leave the deployment unsupported ({reasons})",
                             hint="the servers do not run what the plan expected; check them and plan again")  # fmt: skip

    # -- running commands ---------------------------------------------------------------------------

    def _run(self, step: Step, server: str, command: str, *, stdin: str | None = None,
             timeout: float | None = 600) -> Result:  # fmt: skip
        result = self.shell_for(server).run(command, stdin=stdin, timeout=timeout, cancel=self._cancelled)
        if not result.ok:
            raise StepFailed(step, server, f"exit {result.exit_code}: {result.tail(5) or 'no output'}")
        return result

    def _retrying(self, step: Step, server: str, attempt: Callable[[], T]) -> tuple[T, bool]:
        """Run an idempotent command; after a dropped connection, reconnect and run it again.

        Returns the result and whether the connection dropped on the way.
        """
        dropped = False
        deadline = time.monotonic() + self.options.reconnect_timeout
        while True:
            try:
                return attempt(), dropped
            except ConnectionLost as lost:
                if self.abandon or time.monotonic() > deadline:
                    raise
                dropped = True
                self._emit(
                    "warning", f"{server}: {lost.detail}; reconnecting to run it again", step, (server,)
                )
                self._reconnect(step, self.shell_for(server))

    def _for(self, server: str, command: str) -> str:
        """Fill in, quoted, the per-server placeholders a step's command may hold ({server}, {address}, and
        {stamp}: when the backup is taken, so no two backups share a name)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + (
            f"-{self.run_id[-4:]}" if self.run_id else ""
        )
        return fill_per_server(
            command, {"server": server, "address": self.inv.server(server).address, "stamp": stamp}
        )

    # -- actions ------------------------------------------------------------------------------------

    def _backup(self, step: Step, server: str) -> None:
        # a fresh stamp each attempt: a backup that was cut off is never overwritten, nor any other
        self._retrying(
            step, server, lambda: self._run(step, server, self._for(server, step.command_on(server)))
        )
        if self.known is not None:
            try:
                self.known.record_backup([server], step.release)
            except OSError as exc:
                self._emit("warning", f"cannot record {server}'s backup locally: {exc}", step, (server,))
        self._emit("backup-taken", f"{server}: backed up before {step.release}", step, (server,),
                   release=step.release)  # fmt: skip

    def _stop(self, step: Step, server: str) -> None:
        self._service(step, server, self._for(server, step.command_on(server)), False)

    def _start(self, step: Step, server: str) -> None:
        self._service(step, server, self._for(server, step.command_on(server)), True)

    def _service(self, step: Step, server: str, command: str, start: bool) -> None:
        """Stop or start (both idempotent): run again after a dropped connection, then confirm with status."""
        try:
            _, dropped = self._retrying(step, server, lambda: self._run(step, server, command, timeout=300))
        except StepFailed:
            if start:
                self._update(server, step, service=Service.FAILED, healthy=False)
            raise
        if dropped:
            check = self._for(server, fill(self.inv.commands.status, server=LATER, address=LATER))
            status = self.shell_for(server).run(check, timeout=60, cancel=self._cancelled)
            if (status.exit_code == 0) != start:
                seen = "running" if status.exit_code == 0 else f"not running (status {status.exit_code})"
                raise StepFailed(step, server, f"after reconnecting, the service is {seen}")
        if start:
            self._update(server, step, service=Service.RUNNING, healthy=None)
        else:
            self._update(server, step, service=Service.STOPPED, healthy=False)

    def _fetch(self, step: Step, server: str) -> None:
        installer = self.inv.installer
        if installer.delivery == "upload":
            self._upload(step, server)
            return
        if self.secrets.link is None:
            raise StepFailed(step, server, "no download link (installer.link in the inventory)")
        link = normalise_link(self.secrets.link, step.release, installer.build)
        command = self._for(server, step.command_on(server))
        self._retrying(
            step, server, lambda: self._run(step, server, command, stdin=link + "\n", timeout=3600)
        )

    def _upload(self, step: Step, server: str) -> None:
        """Send the operator's installer over SFTP unless the server has it already; the server checks it."""
        local = self._local_installer(step, server)
        remote = installer_path(self.inv.installer, step.release)
        shell = self.shell_for(server)
        have = shell.run(f"sha256sum {word(remote)} 2>/dev/null", timeout=120)
        if have.ok and have.stdout.split()[:1] == [local.sha256]:
            self._emit("step-output", f"{server}: installer already present, not sent again", step, (server,))
        else:
            self._run(step, server, f"mkdir -p {word(self.inv.installer.directory)}")
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
        """Launch the installer detached (or attach to the one still running) and follow it by pid and boot id."""
        files = InstallFiles(self.inv.installer.directory, step.release)
        shell = self.shell_for(server)
        before = self.state[server].view
        basis = before.planning_version
        marker = Marker(Version.parse(step.release), 0, "installer", self.run_id).prefix(server)
        following = before.in_flight == step.release
        verify = verify_before_run(self.inv.installer, step.release, step.command_on(server))
        command = (
            files.follow()
            if following
            else files.launch(self._for(server, step.command_on(server)), marker, verify)
        )
        launched = self._run(step, server, command, timeout=120)
        if "VANISHED" in launched.stdout:
            raise StepFailed(step, server, f"the installer for {step.release} seen running before is gone and left "
                             "no exit code", hint="check the server, then `--resume` (the install runs again)")  # fmt: skip
        attached = "ATTACHED" in launched.stdout or "FINISHED" in launched.stdout
        if attached:
            with self._lock:
                self._not_measured.add((step.id, server))  # only its end was seen: not how long it takes
            self._emit("warning", f"{server}: an installer for {step.release} was already running; following it "
                       "(none is started again)", step, (server,))  # fmt: skip
        now = time.time()
        self._update(server, step, version=None, source=None, at=None, basis=basis, service=Service.STOPPED,
                     healthy=False, unknown=f"installer for {step.release} running since {_hhmm(now)}",
                     installer=Installer(step.release, None, None, True, False, now, None))  # fmt: skip
        code = self._follow(step, server, shell, files)
        finished = time.time()
        if code != "0":
            tail = ""
            with contextlib.suppress(RemoteError):  # the exit code is what matters; its log is a courtesy
                tail = "\n".join(shell.run(f"tail -n 5 {files.log}", timeout=60).stdout.splitlines()[-5:])
            done = Installer(step.release, None, int(code) if code.lstrip("-").isdigit() else None, False, False,
                             now, finished)  # fmt: skip
            self._update(server, step, unknown=done.describe(), installer=done)
            self._emit("install-failed", f"{server}: installer for {step.release} exited {code}", step, (server,),
                       release=step.release, exit_code=code)  # fmt: skip
            raise StepFailed(step, server, f"the installer exited {code}: {tail or 'no output'}",
                             hint="read the server's log, fix the cause, then `xsoar-mt upgrade run --resume`")  # fmt: skip
        self._update(server, step, version=Version.parse(step.release), source=Source.MARKER, at=finished,
                     unknown=None, basis=None,
                     installer=Installer(step.release, None, 0, False, False, now, finished))  # fmt: skip
        self._emit("installed", f"{server}: installed {step.release}", step, (server,), release=step.release,
                   attached=attached)  # fmt: skip

    def _follow(self, step: Step, server: str, shell: RemoteShell, files: InstallFiles) -> str:
        """Poll the installer until it leaves an exit code; fail when it vanished or ran past the limit."""
        log = self.run_dir.server_log(server) if self.run_dir else None
        offset, began = 0, time.monotonic()
        limit = self.inv.installer.max_minutes * 60
        while True:
            if self.abandon:
                raise StepFailed(step, server, "stopped waiting (second interrupt); the installer keeps running "
                                 "on the server and `--resume` will follow it", interrupted=True)  # fmt: skip
            # Poll at a tenth of the time waited so far: the lag in noticing the end stays near 10%.
            elapsed = time.monotonic() - began
            self._sleep(max(self.options.poll_min, min(self.options.poll_max, elapsed / 10)))
            if self.abandon:
                continue
            try:
                polled = shell.run(files.poll(offset), timeout=60, cancel=self._cancelled)
            except ConnectionLost as lost:
                self._emit("warning", f"{server}: {lost.detail}; the installer keeps running; reconnecting",
                           step, (server,))  # fmt: skip
                self._reconnect(step, shell)
                continue
            seen = _Poll.parse(polled.stdout)
            if seen.output:
                offset += len(seen.output.encode())
                if log:
                    log.append(seen.output)
                last = seen.output.strip().splitlines()[-1:] or [""]
                self._emit("step-output", f"{server}: {last[0]}", step, (server,), line=last[0])
            if seen.code is not None:
                return seen.code
            if seen.rebooted:
                raise StepFailed(step, server, f"the server restarted while the installer for {step.release} "
                                 "ran; it left no exit code, so what it installed is unknown",
                                 hint="check the server, then `--resume` (the install runs again)")  # fmt: skip
            if not seen.alive:
                raise StepFailed(step, server, f"the installer for {step.release} is gone and left no exit code "
                                 "(killed, or its exit code could not be written: is the disk full?)",
                                 hint="check the server's disk and log, then `--resume` (the install runs again)")  # fmt: skip
            if time.monotonic() - began > limit:
                raise StepFailed(step, server, f"the installer for {step.release} still runs after "
                                 f"{self.inv.installer.max_minutes:g} minutes (installer.max_minutes); it was left running",
                                 hint="`--resume` follows it to its end once it finishes")  # fmt: skip

    def _reconnect(self, step: Step, shell: RemoteShell) -> None:
        deadline = time.monotonic() + self.options.reconnect_timeout
        delay = 0.5
        while True:
            if self.abandon:
                raise StepFailed(
                    step, shell.server, "stopped waiting to reconnect (second interrupt)", interrupted=True
                )
            try:
                shell.connect()
                self._emit("warning", f"{shell.server}: reconnected", step, (shell.server,))
                return
            except HostKeyRefused:
                raise
            except RemoteError as exc:
                if time.monotonic() > deadline:
                    raise StepFailed(step, shell.server, f"could not reconnect: {exc.detail}") from None
            self._sleep(delay)
            delay = min(5.0, delay * 2)

    def _healthy(self, step: Step, server: str) -> None:
        """Wait for the health check, then read the version from `/about` (JSON only) and check the release."""
        health = self.inv.health
        deadline = time.monotonic() + health.timeout
        interval = min(health.interval, self.options.poll_max)
        shell = self.shell_for(server)
        command = self._for(server, step.command_on(server))
        last = "no answer yet"
        while True:
            try:
                result = shell.run(command, timeout=60, cancel=self._cancelled)
                if _answers_healthy(result):
                    break
                last = f"exit {result.exit_code}: {result.tail(2) or result.stdout.strip()[-60:]}"
            except ConnectionLost:
                self._reconnect(step, shell)
            if self.abandon:
                raise StepFailed(
                    step, server, "stopped waiting for health (second interrupt)", interrupted=True
                )
            if time.monotonic() > deadline:
                self._update(server, step, healthy=False)
                raise StepFailed(step, server, f"not healthy after {health.timeout:g}s ({last})",
                                 hint="check the service on the server; raise health.timeout if it is slow")  # fmt: skip
            self._sleep(interval)
            interval = min(health.max_interval, interval * 2)
        version = self._read_version(step, server, shell, deadline)
        group_phase = step.phase not in ("recover", "validate")
        if group_phase and version.release != step.release:
            self._update(server, step, version=version, source=Source.API, at=time.time(), unknown=None,
                         basis=None, service=Service.RUNNING, healthy=True)  # fmt: skip
            raise StepFailed(step, server, f"it is healthy but runs {version}, not {step.release} as planned",
                             hint="the installer did not install the release the plan expected: check the "
                             "installer file and link, then plan again")  # fmt: skip
        self._verified(step, server, version)

    def _read_version(self, step: Step, server: str, shell: RemoteShell, deadline: float) -> Version:
        interval = self.options.poll_min or 0.05
        while True:
            try:
                return read_version(shell, self.inv, self.secrets.api_key)
            except ConnectionLost:
                self._reconnect(step, shell)
            except RemoteError as exc:
                if time.monotonic() > deadline or self.abandon:
                    raise StepFailed(
                        step,
                        server,
                        f"healthy, but its version cannot be read: {exc.detail}",
                        interrupted=self.abandon,
                    ) from None
            self._sleep(interval)
            interval = min(self.inv.health.max_interval, interval * 2)

    def _validate(self, step: Step) -> None:
        entry = step.servers[0]
        scope, only = self.plan.scope, False
        wave = self._wave_of.get(step.phase)
        if wave is not None and self.plan.waves is not None:  # a wave's tenants, before the next wave
            scope, only = Scope(main=False, groups=self.plan.waves.members(wave)), True
        try:
            problems, _ = self._retrying(
                step,
                entry,
                lambda: validate_step(
                    step,
                    self.inv,
                    self.shell_for,
                    self.secrets.api_key,
                    scope,
                    self._cancelled,
                    only_scope=only,
                ),
            )
        except Cancelled as exc:
            raise StepFailed(step, entry, exc.detail, interrupted=True) from None
        except RemoteError as exc:
            raise ValidationFailed(step, entry, exc.detail) from None
        if problems:
            raise ValidationFailed(step, entry, "; ".join(problems))


# The steps whose minutes a run measures per server and keeps (estimate.MEASURED_KEYS).
_MEASURED = {Action.STOP: "stop", Action.INSTALL: "install", Action.START: "start", Action.HEALTHY: "healthy"}


def _hhmm(epoch: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch))


def _answers_healthy(result: Result) -> bool:
    """Exit 0, and when the command ends with an HTTP status code, that code is 200."""
    if not result.ok:
        return False
    code = re.search(r"(\d{3})\s*$", result.stdout)
    return code is None or code.group(1) == "200"


def _state_dict(state: ServerState) -> dict[str, object]:
    return {
        **state.view.to_dict(),
        "running": state.running,
        "last_step": state.last_step,
        "outcome": state.outcome,
    }
