"""The two ways `upgrade run` carries out a plan: for real (locks, preflight, markers, the run directory
and its journal, SSH shells) or dry (no lock, a read-only look at most, recording shells)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import TracebackType

from xsoar_mt.download import Downloads, from_link, simulated
from xsoar_mt.engine import Executor, RunOptions, RunReport, WindowCheck
from xsoar_mt.engine.dry_run import recorded_responder
from xsoar_mt.errors import Declined, PreflightFailed
from xsoar_mt.estimate import Durations, estimate, hours_and_minutes
from xsoar_mt.events import Event, EventSink, Fanout
from xsoar_mt.installer import link_rewrite_note
from xsoar_mt.inventory import Inventory
from xsoar_mt.journal import Journal, JournalSink, PreflightNotes, RunDir, new_run_id, run_origin
from xsoar_mt.lock import lock_server
from xsoar_mt.observed import Marker, Observed, Source, offline_state, require_versions
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.probe import marker_command
from xsoar_mt.remote import Recorder, RecordingShell, RemoteError, RemoteShell, ShellPool
from xsoar_mt.secrets import RunSecrets
from xsoar_mt.usecases.dry_run import DRY_RUN_LINK
from xsoar_mt.usecases.run_locks import RunLocks
from xsoar_mt.usecases.run_preflight import preflight_for_run
from xsoar_mt.usecases.run_request import Intent, RunOutcome, RunRequest, Sight
from xsoar_mt.usecases.session import LinkNeed, Session
from xsoar_mt.window import EstimatedWindow, WindowGuard, at, closing


class _Mode:
    """What both modes share: the session, the request, the events, the run's id, its secrets."""

    def __init__(
        self, session: Session, request: RunRequest, events: EventSink, resumed: RunDir | None
    ) -> None:
        self.session, self.request, self.events, self.resumed = session, request, events, resumed
        self.run_id = resumed.run_id if resumed else new_run_id()
        self.secrets = RunSecrets()

    def __enter__(self) -> _Mode:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None

    def finish(self) -> None:
        return None

    def _executor(
        self,
        plan: Plan,
        sight: Sight,
        shells: Callable[[str], RemoteShell],
        options: RunOptions,
        run_dir: RunDir | None,
        downloads: Downloads | None,
    ) -> Executor:
        real = run_dir is not None
        return Executor(
            self.session.inventory,
            plan,
            shells,
            Fanout(self.events),
            sight.observed,
            self.secrets,
            options,
            run_dir,
            downloads,
            known=self.session.known if real else None,
            run_id=self.run_id,
            write_markers=real,
            window=self._window(plan),
            prepared={name: reading.prepared for name, reading in sight.readings.items()},
        )

    def _window(self, plan: Plan) -> WindowCheck | None:
        """The window's check for the executor, with a first event saying when it ends."""
        request = self.request
        if request.window_end is None:
            return None
        now, end = request.clock(), request.window_end.timestamp()
        learned = self.session.known.durations()
        self.events.emit(
            Event(
                "window",
                f"window ends at {at(end)} (in {hours_and_minutes(max(0.0, end - now) / 60)})",
                data={"window_end": end, "learned_servers": len(learned)},
            )
        )
        return self._window_check(plan, now, end, learned)

    def _window_check(
        self, plan: Plan, now: float, end: float, learned: Mapping[str, Mapping[str, float]]
    ) -> WindowCheck:
        raise NotImplementedError


class DryRun(_Mode):
    """Change nothing: no lock, no secret but what a read-only look needs, every command recorded."""

    def __init__(
        self, session: Session, request: RunRequest, events: EventSink, resumed: RunDir | None
    ) -> None:
        super().__init__(session, request, events, resumed)
        self.recorder = Recorder(
            listener=lambda server, command: events.emit(
                Event("would-run", f"{server}: {command}", servers=(server,))
            )
        )

    def __enter__(self) -> DryRun:
        self.secrets = self.session.read_secrets(sudo=self.request.probe_in_dry_run)
        return self

    def look(self, intent: Intent) -> Sight:
        """With --probe a read-only look at every server; without, what the local record and inventory say."""
        session = self.session
        if not self.request.probe_in_dry_run:
            observed = offline_state(session.inventory, session.known.servers())
            require_versions(
                observed,
                session.inventory_path,
                probed=False,
                state_dir=session.state.root,
                hint="add --probe to read the servers' versions over SSH (read only)",
            )
            return Sight(observed)
        self.events.emit(Event("probe", f"reading {len(session.inventory.servers)} servers (read only)"))
        observed, readings = session.observe()
        problems = [f"{r.server}: {r.error}" for r in readings.values() if r.error]
        if problems:
            raise PreflightFailed(problems, hint="nothing was changed; fix these and run again")
        require_versions(observed, session.inventory_path, probed=True, hint="nothing was changed")
        emit_views(observed, self.events)
        return Sight(observed, readings)

    def executor(self, plan: Plan, sight: Sight, intent: Intent, confirm: Callable[[Plan], bool]) -> Executor:
        """Recording shells that answer as the servers would; the link stood in for; one step at a time."""
        self.secrets = replace(self.secrets, link=self.secrets.link or DRY_RUN_LINK)
        options = RunOptions(
            parallel=1, prepare_parallel=1, poll_min=0, poll_max=0, prepare_only=self.request.prepare_only
        )
        responder = recorded_responder(self.session.inventory, dict(sight.observed.versions()))

        def recording(name: str) -> RemoteShell:
            return RecordingShell(name, self.recorder, responder)

        installer = self.session.inventory.installer
        delivered = installer.delivery == "upload" and installer.link is not None
        downloads = simulated(installer.build) if delivered else None
        return self._executor(plan, sight, ShellPool(recording), options, None, downloads)

    def _window_check(
        self, plan: Plan, now: float, end: float, learned: Mapping[str, Mapping[str, float]]
    ) -> WindowCheck:
        """A dry run takes no time, so it stops where the plan's estimate says the window closes."""
        timing = estimate(plan, self.session.inventory.durations, self.request.parallel, learned)
        where = closing(timing, (end - now) / 60)
        if where is None:
            fits = f"by the estimate the whole run fits: it ends about {at(now + timing.minutes * 60)}"
            self.events.emit(Event("window", fits))
        else:
            self.events.emit(
                Event(
                    "window",
                    f"by the estimate the window closes before {where.phase.id} (it would "
                    f"end about {at(now + where.ends * 60)}): the run stops there",
                )
            )
        return EstimatedWindow(end, now, where)

    def outcome(self, report: RunReport, plan: Plan, resume: str) -> RunOutcome:
        return RunOutcome(report, plan, None, None, self.recorder.lines)


def in_scope(session: Session, scope: Scope) -> list[str]:
    groups = session.inventory.groups
    return [s.name for g in groups if scope.covers(g.name, g.is_main) for s in g.servers]


def emit_views(observed: Observed, events: EventSink) -> None:
    """One event per server: its version (and where it comes from) and its service when not running."""
    for view in observed.views.values():
        state = "" if view.running else f" ({view.service.value})"
        source = f" [{view.source.value}]" if view.source else ""
        events.emit(
            Event(
                "probe",
                f"{view.server}: {view.describe_version()}{source}{state}",
                servers=(view.server,),
                data=view.to_dict(),
            )
        )


class RealRun(_Mode):
    """Locks (this machine, then the deployment), preflight, markers, the run directory and its journal."""

    def __init__(
        self, session: Session, request: RunRequest, events: EventSink, resumed: RunDir | None
    ) -> None:
        self.notes = PreflightNotes(events)  # the preflight's warnings, for the journal once it opens
        super().__init__(session, request, self.notes, resumed)
        self.locks = RunLocks(session, self.run_id)
        self.journal: Journal | None = None
        self.run_dir: RunDir | None = None
        self.names: list[str] = []  # the servers in scope

    def __enter__(self) -> RealRun:
        self.secrets = self.session.read_secrets(sudo=True, link=LinkNeed.REQUIRED)
        if (note := link_rewrite_note(self.secrets.link)) is not None:
            self.events.emit(Event("warning", note))
        self.locks.take_here()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            self.locks.release()
        finally:
            if self.journal is not None:
                self.journal.close()

    def look(self, intent: Intent) -> Sight:
        """The deployment's lock taken on main, then the preflight checks."""
        session = self.session
        self.names = in_scope(session, intent.scope)
        self.locks.take_deployment(_written_servers(session.inventory, self.names))
        sight = preflight_for_run(session, self.request, intent, self.names, self.events)
        emit_views(sight.observed, self.events)
        return sight

    def executor(
        self, plan: Plan, sight: Sight, intent: Intent, confirm: Callable[[Plan], bool]
    ) -> Executor | None:
        """None when there is nothing to do; else, once confirmed, markers and the run's records written."""
        if plan.nothing_to_do:
            return None
        if not confirm(plan):
            raise Declined("not confirmed: nothing was changed")
        self._write_markers(sight)
        self.run_dir = self.resumed or RunDir.create(self.session.state, self.run_id)
        self.run_dir.write_private(f"plan-{new_run_id()}.json", json.dumps(plan.to_dict(), indent=2))
        self.journal = Journal(self.run_dir.journal_path)
        self.journal.append(self._intent_record(plan, sight, intent))
        for note in self.notes.kept:  # said before the journal opened; the report names them
            self.journal.append(note.to_dict())
        options = RunOptions(parallel=self.request.parallel, prepare_only=self.request.prepare_only)
        executor = self._executor(
            plan, sight, self.session.shells, options, self.run_dir, self._downloads(intent)
        )
        executor.events = Fanout(self.events, JournalSink(self.journal, executor.fail_run))
        self.locks.watched_by(executor)
        return executor

    def _intent_record(self, plan: Plan, sight: Sight, intent: Intent) -> dict[str, object]:
        session = self.session
        return {
            "kind": "run-resumed" if self.resumed else "run-intent",
            "deployment": session.known.key,
            "inventory": str(session.inventory_path.resolve()),
            "target": intent.target,
            **run_origin(self.run_id, session.inventory.digest, self.request.parallel),
            "scope": intent.scope.to_dict(),
            **({"prepare": True} if self.request.prepare_only else {}),
            **({"waves": plan.waves.to_dict()} if plan.waves is not None else {}),
            **({"window_end": self.request.window_end.timestamp()} if self.request.window_end else {}),
            "observed": {n: v.to_dict() for n, v in sight.observed.views.items()},
        }

    def _write_markers(self, sight: Sight) -> None:
        """xsoar-mt's marker on each server in scope whose `/about` answered something the marker does not say."""
        for name in self.names:
            view, reading = sight.observed[name], sight.readings.get(name)
            if view.version is None or view.source is not Source.API or reading is None:
                continue
            if reading.marker is not None and reading.marker.version == view.version:
                continue
            marker = marker_command(self.session.inventory, name, Marker(view.version, 0, "api", self.run_id))
            try:
                self.session.shells(name).run(marker, timeout=60)
            except RemoteError as exc:
                self.events.emit(
                    Event(
                        "warning", f"{name}: could not write xsoar-mt's marker: {exc.detail}", servers=(name,)
                    )
                )

    def _downloads(self, intent: Intent) -> Downloads | None:
        """Upload delivery from a link: installers downloaded once on this machine. A cached download is
        reused when its sha256 is one the inventory pins, or one the run being resumed downloaded; the
        inventory's pin wins where both exist."""
        installer = self.session.inventory.installer
        if installer.delivery != "upload" or installer.link is None:
            return None
        assert self.secrets.link is not None  # read_secrets read it
        known = {**intent.downloaded, **installer.sha256}
        return from_link(self.secrets.link, installer.build, self.session.state.installers, known)

    def _window_check(
        self, plan: Plan, now: float, end: float, learned: Mapping[str, Mapping[str, float]]
    ) -> WindowCheck:
        """A real run estimates each group as it comes (from what it measured, then the local record, then
        `durations`)."""
        return WindowGuard(end, Durations.of(self.session.inventory.durations, learned), self.request.clock)

    def finish(self) -> None:
        self.locks.release_deployment()  # before the SSH use is counted: it is the run's last command

    def outcome(self, report: RunReport, plan: Plan, resume: str) -> RunOutcome:
        assert self.run_dir is not None
        again = resume if report.outcome != "succeeded" else None
        return RunOutcome(report, plan, self.run_id, self.run_dir.path, [], again)


def _written_servers(inventory: Inventory, names: list[str]) -> list[str]:
    """The servers a run writes to: those in scope and the one holding the lock, in inventory order."""
    wanted = {*names, lock_server(inventory)}
    return [s.name for s in inventory.servers if s.name in wanted]
