"""What every part of a run shares: the inventory and plan, each server's state, the events, the interrupts,
the one waiter, and running a command on a server (again after a dropped connection).

The scheduler makes one `RunContext` per run and hands it to every step handler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from xsoar_mt.download import Downloads
from xsoar_mt.engine.model import Measured, RunOptions, ServerState, ShellFor, StepFailed
from xsoar_mt.engine.waiter import Waiter
from xsoar_mt.events import Event, EventSink
from xsoar_mt.inventory import Inventory
from xsoar_mt.journal import RunDir
from xsoar_mt.known import KnownState
from xsoar_mt.observed import Marker, Observed, Prepared, ServerView, Service, Source
from xsoar_mt.plan import Phase, PhaseKind, Plan, Step
from xsoar_mt.probe import marker_command, marker_path
from xsoar_mt.releases import Version
from xsoar_mt.remote import (
    CommandKind,
    ConnectionLost,
    HostKeyRefused,
    RemoteCommand,
    RemoteError,
    RemoteShell,
    Result,
)
from xsoar_mt.secrets import RunSecrets
from xsoar_mt.shellwords import fill_per_server

T = TypeVar("T")


class RunContext:
    def __init__(
        self,
        inventory: Inventory,
        plan: Plan,
        shell_for: ShellFor,
        events: EventSink,
        observed: Observed,
        secrets: RunSecrets,
        options: RunOptions,
        run_dir: RunDir | None,
        downloads: Downloads | None,
        known: KnownState | None,
        run_id: str | None,
        write_markers: bool,
        clock: Callable[[], float],
        prepared: Mapping[str, Sequence[Prepared]] | None = None,
    ) -> None:
        self.inv = inventory
        self.plan = plan
        self.shell_for = shell_for
        self.events = events
        self.state = {name: ServerState(view) for name, view in observed.views.items()}
        self.step_outcomes: list[dict[str, Any]] = []  # each step-finished record, as the journal has it
        self.secrets = secrets
        self.options = options
        self.run_dir = run_dir
        self.downloads = downloads  # upload delivery from a link: each installer is downloaded here once
        self.known = known
        self.run_id = run_id
        self.write_markers = write_markers
        self.clock = clock  # times each server's steps (`measured`)
        self.lock = threading.Lock()
        self._outcomes_lock = threading.Lock()  # step outcomes kept in the journal's order (emit)
        self.interrupts = 0  # written by the signal handler: nothing else happens there
        self._noticed = 0
        self._local_record_warned = False
        self.measured: Measured = {}  # what each server's stop, install, start and health gate took
        self._not_measured: set[tuple[str, str]] = set()  # (step id, server): an installer only followed
        self._group_phases = {p.id for p in plan.phases if p.group is not None}
        self._phases = {p.id: p for p in plan.phases}
        self.waiter = Waiter(lambda: self.abandon, self.notice)
        self._prepared = dict(prepared or {})  # what each server's prepared records said when it was read
        # release -> the build its installer is fetched for, where it is not `installer.build` (a rollback)
        self.builds: dict[str, str | None] = {}
        self.snapshots: dict[str, str] = {}  # group -> the snapshot its rollback restores (RollbackPlan)

    def prepared_records(self, server: str) -> list[Prepared]:
        """The installers `upgrade prepare` left on `server`: the local record's first (this machine wrote
        them), then the server's own records for the releases the local record does not hold."""
        local = self.known.prepared().get(server, []) if self.known is not None else []
        held = {r.release for r in local}
        return [*local, *(r for r in self._prepared.get(server, ()) if r.release not in held)]

    @property
    def rollback(self) -> bool:
        """Whether the plan takes servers back (rollback/planner.py): its steps are judged by its own rule."""
        return self.plan.target in ("rollback", "rollback-release-only")

    def phase_of(self, step: Step) -> Phase | None:
        return self._phases.get(step.phase)

    def phase_kind(self, step: Step) -> PhaseKind:
        """The kind of the step's phase (a phase the plan does not hold counts as a group's)."""
        phase = self._phases.get(step.phase)
        return phase.kind if phase is not None else PhaseKind.GROUP

    # -- interrupts ---------------------------------------------------------------------------------

    @property
    def abandon(self) -> bool:
        """A second interrupt: stop waiting for anything."""
        return self.interrupts > 1

    def cancelled(self) -> bool:
        """`abandon`, as the callable a remote command polls."""
        return self.abandon

    def notice(self) -> None:
        """Report interrupts the signal handler counted (from the run's own threads, never the handler)."""
        seen = self.interrupts
        if seen <= self._noticed:
            return
        with self.lock:
            if seen <= self._noticed:
                return
            first, self._noticed = self._noticed, seen
        if first == 0:
            self.emit(
                "warning",
                "interrupt: finishing the groups under way so none is left stopped, starting "
                "nothing new (interrupt again to stop waiting; installers already started keep running)",
            )
        if seen > 1:
            self.emit("warning", "second interrupt: no longer waiting for running steps")

    def emit(
        self, kind: str, message: str, step: Step | None = None, servers: tuple[str, ...] = (), **data: object
    ) -> None:
        event = Event(kind, message, step.id if step else None, servers, data)
        if kind != "step-finished":
            self.events.emit(event)
            return
        # The recap's source is these records in the order the journal has them: lanes finish steps at
        # the same moment, so keeping a record and handing it to the journal is one step under its own
        # lock (not `lock`, which a failing journal's sink takes through fail_run).
        with self._outcomes_lock:
            self.step_outcomes.append(event.to_dict())
            self.events.emit(event)

    def outcomes(self) -> list[dict[str, Any]]:
        """The step-finished records so far, in the order the journal got them (the recap's source)."""
        with self._outcomes_lock:
            return list(self.step_outcomes)

    # -- the observed state -------------------------------------------------------------------------

    def update(self, server: str, step: Step | None = None, **changes: object) -> ServerView:
        """Change what the run knows of `server`, report it (the journal keeps it) and record it locally."""
        with self.lock:
            view = replace(self.state[server].view, **changes)  # type: ignore[arg-type]  # ServerView fields
            self.state[server].view = view
        self.emit(
            "server-state",
            f"{server}: {view.describe_version()}, {view.service.value}",
            step,
            (server,),
            **view.to_dict(),
        )
        if self.known is not None:
            try:
                self.known.record([view], self.run_id)
            except OSError as exc:
                if not self._local_record_warned:
                    self._local_record_warned = True
                    self.emit(
                        "warning",
                        f"cannot update the local record {self.known.path}: {exc}; "
                        "the journal still records every change",
                    )
        return view

    def answered(self, step: Step, server: str, version: Version) -> None:
        """`/about` answered with `version`: the server is up and healthy, its version known for sure."""
        self.update(
            server,
            step,
            version=version,
            source=Source.API,
            at=time.time(),
            unknown=None,
            basis=None,
            service=Service.RUNNING,
            healthy=True,
        )

    def verified(self, step: Step, server: str, version: Version) -> None:
        """`/about` answered: the version is known for sure; xsoar-mt's marker on the server says so too."""
        self.answered(step, server, version)
        if self.write_markers:
            marker = Marker(version, time.time(), "api", self.run_id)
            try:
                self.shell_for(server).run(marker_command(self.inv, server, marker), timeout=60)
            except RemoteError as exc:
                self.emit(
                    "warning",
                    f"{server}: could not write the marker {marker_path(self.inv)}: {exc.detail}",
                    step,
                    (server,),
                )

    # -- what each server's steps took --------------------------------------------------------------

    def unmeasured(self, step: Step, server: str) -> None:
        """Only the end of this step was seen on `server` (an installer followed): not how long it takes."""
        with self.lock:
            self._not_measured.add((step.id, server))

    def measure(self, step: Step, server: str, key: str, began: float) -> None:
        """Keep what a group phase's step took on `server`, under `key` (estimate.MEASURED_KEYS)."""
        if step.phase not in self._group_phases:
            return
        with self.lock:
            if (step.id, server) not in self._not_measured:
                self.measured.setdefault(server, {})[key] = (self.clock() - began) / 60

    # -- running commands ---------------------------------------------------------------------------

    def stamp(self) -> str:
        """When a backup is taken, with the run: no two backups share a name."""
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + (
            f"-{self.run_id[-4:]}" if self.run_id else ""
        )

    def command(
        self, server: str, text: str, kind: CommandKind, release: str | None = None, stamp: str | None = None
    ) -> RemoteCommand:
        """`text` with, quoted, the per-server placeholders a step's command may hold ({server}, {address},
        and {stamp}: when the backup is taken, so no two backups share a name)."""
        stamp = stamp or self.stamp()
        filled = fill_per_server(
            text, {"server": server, "address": self.inv.server(server).address, "stamp": stamp}
        )
        return RemoteCommand(filled, kind, release)

    def checked(
        self,
        step: Step,
        server: str,
        command: RemoteCommand,
        *,
        stdin: str | None = None,
        timeout: float | None = 600,
    ) -> Result:
        """Run `command`; a non-zero exit fails the step on `server`."""
        result = self.shell_for(server).run(command, stdin=stdin, timeout=timeout, cancel=self.cancelled)
        if not result.ok:
            raise StepFailed(step, server, f"exit {result.exit_code}: {result.tail(5) or 'no output'}")
        return result

    def retrying(self, step: Step, server: str, attempt: Callable[[], T]) -> tuple[T, bool]:
        """Run an idempotent command; after a dropped connection, reconnect and run it again.

        Returns the result and whether the connection dropped on the way.
        """
        dropped = False
        pace = self.waiter.pace(timeout=self.options.reconnect_timeout, first=0, most=0)
        while True:
            try:
                return attempt(), dropped
            except ConnectionLost as lost:
                if pace.cancelled or pace.expired:
                    raise
                dropped = True
                self.emit(
                    "warning", f"{server}: {lost.detail}; reconnecting to run it again", step, (server,)
                )
                self.reconnect(step, self.shell_for(server))

    def reconnect(self, step: Step, shell: RemoteShell) -> None:
        """Connect `shell` again, pausing longer after each failure, until `reconnect_timeout`."""
        pace = self.waiter.pace(timeout=self.options.reconnect_timeout, first=0.5, most=5.0)
        while True:
            if pace.cancelled:
                raise StepFailed(
                    step, shell.server, "stopped waiting to reconnect (second interrupt)", interrupted=True
                )
            try:
                shell.connect()
                self.emit("warning", f"{shell.server}: reconnected", step, (shell.server,))
                return
            except HostKeyRefused:
                raise
            except RemoteError as exc:
                if pace.expired:
                    raise StepFailed(step, shell.server, f"could not reconnect: {exc.detail}") from None
            pace.pause()
