"""`rollback run`: the rollback plan carried out with upgrade run's habits: secrets read first, the run
lock here and the deployment lock on main, the working directory checked, a rollback preflight before
anything stops, a saved plan checked, the journal, `--resume`, events and the recap (the same engine,
whose handlers do rollback's steps).

Resume and rollback: `upgrade run --resume` finishes an upgrade; `rollback run` undoes one, and
`rollback run --resume` finishes an interrupted rollback. A group whose way back began in the run resumed
(a step of its phase ran, its last did not finish) goes back again from its purge: every step of the way
back is safe to repeat.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from xsoar_mt.download import Downloads, from_link, simulated
from xsoar_mt.engine import Executor, RunOptions, RunReport
from xsoar_mt.engine.dry_run import recorded_responder
from xsoar_mt.errors import Declined, InvalidInput, PreflightFailed, StalePlan, UsageError
from xsoar_mt.events import Event, EventSink, Fanout
from xsoar_mt.journal import Journal, JournalSink, RunDir, new_run_id, read_journal, run_origin
from xsoar_mt.observed import Observed
from xsoar_mt.plan import ROLLBACK_RELEASE_ONLY, ROLLBACK_TARGETS, Plan, Scope, Waves
from xsoar_mt.remote import CommandKind, Recorder, RecordingShell, RemoteCommand, RemoteError, ShellPool
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.rollback.backups import (
    BackupRecord,
    ServerBackup,
    read_backups,
)
from xsoar_mt.rollback.planner import RollbackFacts, RollbackPlan, plan_rollback
from xsoar_mt.rollback.records import read_server_record, record_command, unfinished_servers
from xsoar_mt.secrets import RunSecrets, read_secret
from xsoar_mt.state_home import default_state_dir
from xsoar_mt.usecases.dry_run import DRY_RUN_LINK
from xsoar_mt.usecases.rollback_fetch import check_fetch, unusable_backups
from xsoar_mt.usecases.run_locks import RunLocks
from xsoar_mt.usecases.run_request import RunOutcome
from xsoar_mt.usecases.saved_plan import check_saved_plan, read_plan
from xsoar_mt.usecases.session import LinkNeed, Session
from xsoar_mt.waves import WaveSpec


@dataclass(frozen=True)
class RollbackRunRequest:
    """What `rollback run` is asked: the scope (or a saved plan, or a run to resume) and how to run."""

    scope: Scope = field(default_factory=Scope)
    plan_file: Path | None = None  # the saved rollback plan (`--plan`)
    resume: str | None = None
    release_only: bool = False
    dry_run: bool = False
    parallel: int | None = None
    yes: bool = False  # repeated in the printed resume command, as is the output below
    json_output: bool = False
    waves: WaveSpec | None = None


@dataclass(frozen=True)
class _Intent:
    scope: Scope
    release_only: bool
    unfinished: frozenset[str]  # resuming: the servers whose way back began and did not finish
    waves: WaveSpec | Waves | None = None  # `--waves`, or the waves the resumed rollback started with
    downloaded: Mapping[str, str] = field(default_factory=dict)  # resuming: release -> sha256 downloaded here


def run_rollback(
    session: Session,
    request: RollbackRunRequest,
    events: EventSink,
    *,
    confirm: Callable[[Plan], bool],
    on_executor: Callable[[Executor], None] = lambda e: None,
) -> RunOutcome:
    """Check, plan, confirm, then take the servers back step by step (or, dry, record every command)."""
    inventory, known = session.inventory, session.known
    if known.problem:
        events.emit(Event("warning", known.problem))
    resumed = RunDir.find(session.state, request.resume, known.key) if request.resume else None
    saved = read_plan(request.plan_file, inventory) if request.plan_file is not None else None
    intent = _intent(request, resumed, saved)
    secrets = _secrets(session, request)
    run_id = resumed.run_id if resumed else new_run_id()
    with _Locks(session, run_id, real=not request.dry_run) as locks:
        rollback, observed = _preflight(session, intent, request, events, secrets)
        plan = rollback.plan
        if saved is not None:
            check_saved_plan(saved, plan, request.scope)
            plan = saved
        if request.dry_run:
            return _dry_run(session, events, plan, rollback, observed, secrets, run_id, on_executor)
        if plan.nothing_to_do:
            return RunOutcome(None, plan, None, None)
        if not confirm(plan):
            raise Declined("not confirmed: nothing was changed")
        run_dir = resumed or RunDir.create(session.state, run_id)
        executor = _real_executor(
            session, request, events, plan, rollback, observed, secrets, run_dir, intent
        )
        journal = Journal(run_dir.journal_path)
        try:
            journal.append(_intent_record(session, request, plan, observed, intent, run_id, resumed))
            executor.events = Fanout(events, JournalSink(journal, executor.fail_run))
            report = locks.run(executor, on_executor)
        finally:
            journal.close()
        again = resume_command(session, request, run_id) if report.outcome != "succeeded" else None
        return RunOutcome(report, plan, run_id, run_dir.path, [], again)


def _secrets(session: Session, request: RollbackRunRequest) -> RunSecrets:
    """Every secret before any server is asked: sudo, the download link (not for a dry run), the API key,
    and the Elasticsearch credentials the snapshot restore uses."""
    secrets = session.read_secrets(sudo=True, link=LinkNeed.NONE if request.dry_run else LinkNeed.REQUIRED)
    credentials = session.inventory.elasticsearch_credentials
    if credentials is not None:
        secrets = replace(
            secrets,
            elasticsearch=read_secret(credentials, "Elasticsearch credentials", prompt=session.prompt),
        )
    return secrets


class _Locks(RunLocks):
    """For a real rollback: the run lock here, then the deployment's lock on main once the working
    directory is checked on every server (the preflight reads every backup, so they are taken first)."""

    def __init__(self, session: Session, run_id: str, *, real: bool) -> None:
        super().__init__(session, run_id)
        self.real = real

    def __enter__(self) -> _Locks:
        if self.real:
            self.take_here()
            try:
                self.take_deployment(s.name for s in self.session.inventory.servers)
            except BaseException:  # no `with` body ran, so no __exit__ either: nothing held is left behind
                self.release()
                raise
        return self

    def run(self, executor: Executor, on_executor: Callable[[Executor], None]) -> RunReport:
        self.watched_by(executor)
        on_executor(executor)
        report = executor.execute()
        self.release_deployment()
        return report

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.real:
            self.release()


def _preflight(
    session: Session, intent: _Intent, request: RollbackRunRequest, events: EventSink, secrets: RunSecrets
) -> tuple[RollbackPlan, Observed]:
    """Before anything stops: every server read, every backup that goes back checked on its server (size
    and sha256), the rollback planned from that (backups, the skew rule, Elasticsearch), then each old
    release's installer asked for the way the run will fetch it. Raises with every reason; nothing was
    changed."""
    inventory = session.inventory
    events.emit(Event("probe", f"rollback preflight: reading {len(inventory.servers)} servers (read only)"))
    observed, readings = session.observe()
    unreachable = [f"{r.server}: {r.error}" for r in readings.values() if r.error]
    if unreachable:
        raise PreflightFailed(
            unreachable, hint="nothing was changed; the rollback needs every server's answer"
        )
    backups = _backups(session)
    facts = RollbackFacts(
        backups=backups,
        unsettled=frozenset(v.server for v in observed.views.values() if v.version is None)
        | intent.unfinished,
        in_flight={n: r for n, r in observed.in_flight().items() if n not in intent.unfinished},
        unusable=unusable_backups(session, backups, intent.scope),
        verify=request.resume is not None,  # a resume gates and validates again, whatever is left to do
    )
    rollback = plan_rollback(
        inventory,
        observed.versions(),
        facts,
        intent.scope,
        release_only=intent.release_only,
        waves=intent.waves,
    )
    check_fetch(session, rollback, secrets, links=not request.dry_run)
    for view in observed.views.values():
        events.emit(
            Event(
                "probe",
                f"{view.server}: {view.describe_version()}",
                servers=(view.server,),
                data=view.to_dict(),
            )
        )
    for ret in rollback.returns:
        events.emit(
            Event(
                "probe",
                f"{ret.label}: goes back to {ret.release}, backups checked on its servers",
                servers=ret.servers,
                data={"release": ret.release, "build": ret.build},
            )
        )
    return rollback, observed


def _downloads(
    session: Session, rollback: RollbackPlan, secrets: RunSecrets, intent: _Intent, *, dry: bool
) -> Downloads | None:
    """Upload delivery from a link: each old release downloaded once on this machine, for the build its
    servers ran before (a cached one reused when its sha256 is pinned, or downloaded by the run resumed)."""
    installer = session.inventory.installer
    if installer.delivery != "upload" or installer.link is None:
        return None
    if dry:
        return simulated(installer.build, rollback.builds)
    assert secrets.link is not None  # read first, as a real run reads it
    known = {**intent.downloaded, **installer.sha256}
    return from_link(secrets.link, installer.build, session.state.installers, known, rollback.builds)


def _backups(session: Session) -> dict[str, ServerBackup]:
    """Each server's backup record: the local record's, or else the one beside the marker on the server
    (a run from another machine), both read strictly. A server's record that cannot be read is no backup."""
    inventory = session.inventory
    names = [s.name for s in inventory.servers]
    local = read_backups(names, session.known.backup_records(), inventory.releases)
    command = RemoteCommand(record_command(RemotePaths.of(inventory).backup_record), CommandKind.STATUS)
    out: dict[str, ServerBackup] = {}
    for name in names:
        if isinstance(local[name], BackupRecord):
            out[name] = local[name]
            continue
        try:
            answer = session.shells(name).run(command, timeout=60).stdout
        except RemoteError:
            out[name] = local[name]
            continue
        out[name] = read_server_record(name, answer, inventory) or local[name]
    return out


def _dry_run(
    session: Session,
    events: EventSink,
    plan: Plan,
    rollback: RollbackPlan,
    observed: Observed,
    secrets: RunSecrets,
    run_id: str,
    on_executor: Callable[[Executor], None],
) -> RunOutcome:
    """Every command the rollback would send, recorded (the servers answer as if each step worked)."""
    recorder = Recorder(
        listener=lambda server, command: events.emit(
            Event("would-run", f"{server}: {command}", servers=(server,))
        )
    )
    responder = recorded_responder(session.inventory, dict(observed.versions()))
    shells = ShellPool(lambda name: RecordingShell(name, recorder, responder))
    options = RunOptions(parallel=1, prepare_parallel=1, poll_min=0, poll_max=0)
    executor = Executor(
        session.inventory,
        plan,
        shells,
        Fanout(events),
        observed,
        replace(secrets, link=secrets.link or DRY_RUN_LINK),
        options,
        None,
        _downloads(session, rollback, secrets, _Intent(Scope(), False, frozenset()), dry=True),
        known=None,
        run_id=run_id,
        write_markers=False,
        builds=rollback.builds,
        snapshots=rollback.snapshots,
    )
    on_executor(executor)
    return RunOutcome(executor.execute(), plan, None, None, recorder.lines)


def _real_executor(
    session: Session,
    request: RollbackRunRequest,
    events: EventSink,
    plan: Plan,
    rollback: RollbackPlan,
    observed: Observed,
    secrets: RunSecrets,
    run_dir: RunDir,
    intent: _Intent,
) -> Executor:
    run_dir.write_private(f"plan-{new_run_id()}.json", json.dumps(plan.to_dict(), indent=2))
    return Executor(
        session.inventory,
        plan,
        session.shells,
        Fanout(events),
        observed,
        secrets,
        RunOptions(parallel=request.parallel),
        run_dir,
        _downloads(session, rollback, secrets, intent, dry=False),
        known=session.known,
        run_id=run_dir.run_id,
        write_markers=True,
        builds=rollback.builds,
        snapshots=rollback.snapshots,
    )


def _intent_record(
    session: Session,
    request: RollbackRunRequest,
    plan: Plan,
    observed: Observed,
    intent: _Intent,
    run_id: str,
    resumed: RunDir | None,
) -> dict[str, object]:
    return {
        "kind": "run-resumed" if resumed else "run-intent",
        "deployment": session.known.key,
        "inventory": str(session.inventory_path.resolve()),
        "target": plan.target,
        **run_origin(run_id, session.inventory.digest, request.parallel),
        "scope": intent.scope.to_dict(),
        "rollback": True,
        **({"waves": plan.waves.to_dict()} if plan.waves is not None else {}),
        "observed": {n: v.to_dict() for n, v in observed.views.items()},
    }


def _intent(request: RollbackRunRequest, resumed: RunDir | None, saved: Plan | None) -> _Intent:
    """Scope, release-only and (resuming) the servers whose way back began and did not finish."""
    if saved is not None:
        if saved.target not in ROLLBACK_TARGETS:
            raise UsageError(
                f"--plan {request.plan_file}: this is an upgrade plan, not a rollback plan",
                hint="run it with `xsoar-mt upgrade run --plan`",
            )
        if request.release_only != (saved.target == ROLLBACK_RELEASE_ONLY):
            raise StalePlan(
                ["--release-only differs from the saved plan's"],
                lead="the saved plan is not what the command line asks",
            )
        return _Intent(
            request.scope if request.scope != Scope() else saved.scope,
            request.release_only,
            frozenset(),
            request.waves,
        )
    if resumed is None:
        return _Intent(request.scope, request.release_only, frozenset(), request.waves)
    records = read_journal(resumed.journal_path)
    intent = next((r for r in records if r.get("kind") == "run-intent"), None)
    if intent is None or intent.get("target") not in ROLLBACK_TARGETS:
        raise InvalidInput(
            f"run {resumed.run_id} is not a rollback",
            hint="`xsoar-mt upgrade run --resume` finishes an upgrade; rollback run undoes it",
        )
    plans = [read_plan(p) for p in sorted(resumed.path.glob("plan-*.json"))]
    downloaded = {
        str(r["data"].get("release")): str(r["data"].get("sha256"))
        for r in records
        if r.get("kind") == "installer-downloaded" and isinstance(r.get("data"), dict)
    }
    waves = Waves.from_dict(intent["waves"]) if intent.get("waves") else None
    if request.waves is not None and (waves is None or waves.spec != str(request.waves)):
        started = f"in waves {waves.spec}" if waves else "without waves"
        raise UsageError(
            f"--waves {request.waves}: rollback {resumed.run_id} started {started}, and a resume keeps them"
        )
    return _Intent(
        Scope.from_dict(intent["scope"]),
        intent["target"] == ROLLBACK_RELEASE_ONLY,
        unfinished_servers(records, plans),
        waves,
        downloaded,
    )


def resume_command(session: Session, request: RollbackRunRequest, run_id: str) -> str:
    """The command that finishes this rollback, with the flags it used (never a secret: none has a flag)."""
    words = ["xsoar-mt", "rollback", "run", "-i", str(session.inventory_path), "--resume", run_id]
    if session.state.root.absolute() != default_state_dir():
        words += ["--state-dir", str(session.state.root.absolute())]
    if request.parallel is not None:
        words += ["--parallel", str(request.parallel)]
    if request.json_output:
        words += ["-o", "json"]
    if request.yes:
        words.append("--yes")
    return shlex.join(words)
