"""`rollback run`: the rollback plan carried out with upgrade run's habits: secrets read first, the run
lock here and the deployment lock on main, a rollback preflight before anything stops, a saved plan checked,
the journal, `--resume`, events and the recap (the same executor, whose handlers do rollback's steps).

Resume and rollback: `upgrade run --resume` finishes an upgrade; `rollback run` undoes one, and
`rollback run --resume` finishes an interrupted rollback. A group whose way back began in the run resumed
(a step of its phase ran, its last did not finish) goes back again from its purge: every step of the way
back is safe to repeat.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from xsoar_mt.commands import check_saved_plan, read_plan
from xsoar_mt.engine import Executor, RunOptions
from xsoar_mt.engine.dry_run import recorded_responder
from xsoar_mt.errors import InvalidInput, PlanRefused, StalePlan, UsageError, XsoarMtError
from xsoar_mt.events import Event, EventSink, Fanout
from xsoar_mt.inventory import Inventory, load_inventory
from xsoar_mt.journal import Journal, RunDir, new_run_id, read_journal, run_origin
from xsoar_mt.known import KnownState
from xsoar_mt.lock import DeploymentLock, RunLock, lock_server
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.remote import CommandKind, Recorder, RecordingShell, RemoteCommand, RemoteError, RemoteShell
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.rollback.backups import (
    Backup,
    BackupRecord,
    NoBackup,
    backup_check_command,
    backup_check_verdict,
    read_backup,
    read_backups,
)
from xsoar_mt.rollback.planner import (
    ROLLBACK,
    ROLLBACK_RELEASE_ONLY,
    RollbackFacts,
    RollbackPlan,
    plan_rollback,
)
from xsoar_mt.run import (
    DEFAULT_STATE_DIR,
    DRY_RUN_LINK,
    JournalSink,
    PreflightFailed,
    RunOutcome,
    ShellPool,
    load_secrets,
    observe_deployment,
    ssh_pool,
)
from xsoar_mt.secrets import read_secret
from xsoar_mt.shellwords import word
from xsoar_mt.waves import WaveSpec

ROLLBACK_TARGETS = (ROLLBACK, ROLLBACK_RELEASE_ONLY)
_RECORD_MARK = "xsoar-mt-backup-record:"


@dataclass
class RollbackRequest:
    inventory_path: Path
    scope: Scope = field(default_factory=Scope)
    plan_file: Path | None = None
    resume: str | None = None
    release_only: bool = False
    dry_run: bool = False
    accept_new_host_keys: bool = False
    state_dir: Path = DEFAULT_STATE_DIR
    options: RunOptions = field(default_factory=RunOptions)
    yes: bool = False
    json_output: bool = False
    waves: WaveSpec | None = None


def refuse_rollback_plan(plan: Plan, path: Path) -> None:
    """`upgrade run --plan` with a rollback's saved plan: refused (exit 2) before anything is read."""
    if plan.target in ROLLBACK_TARGETS:
        raise UsageError(
            f"--plan {path}: this is a rollback plan (made by `rollback plan`), not an upgrade plan",
            hint=f"run it with `xsoar-mt rollback run --plan {path}`",
        )


def run_rollback(request: RollbackRequest, events: EventSink, *, prompt: Callable[[str], str] | None,
                 confirm: Callable[[Plan], bool], on_executor: Callable[[Executor], None] = lambda e: None,
                 ) -> tuple[RunOutcome, RollbackPlan]:  # fmt: skip
    inventory = load_inventory(request.inventory_path)
    known = KnownState(request.state_dir, inventory)
    if known.problem:
        events.emit(Event("warning", known.problem))
    resumed = RunDir.find(request.state_dir, request.resume, known.key) if request.resume else None
    saved = read_plan(request.plan_file, inventory) if request.plan_file is not None else None
    scope, release_only, unfinished = _intent(request, resumed, saved)
    names = [s.name for s in inventory.servers]
    sudo, secrets = load_secrets(
        inventory, names, need_sudo=True, need_link=not request.dry_run, prompt=prompt
    )
    if inventory.elasticsearch_credentials is not None:
        secrets = replace(secrets, elasticsearch=read_secret(inventory.elasticsearch_credentials,
                                                             "Elasticsearch credentials", prompt=prompt))  # fmt: skip
    lock = RunLock(request.state_dir, known.key)
    run_id = resumed.run_id if resumed else new_run_id()
    if not request.dry_run:
        lock.acquire(run_id)
    deployment_lock: DeploymentLock | None = None
    journal: Journal | None = None
    pool = ssh_pool(inventory, sudo, request.accept_new_host_keys)
    lost: list[str] = []  # the deployment lock, broken by someone else while this run held it
    on_lost: list[Callable[[str], None]] = [lost.append]
    try:
        if not request.dry_run:
            deployment_lock = DeploymentLock(inventory, pool(lock_server(inventory)), run_id)
            deployment_lock.acquire()
            deployment_lock.start_heartbeat(lambda message: _tell(on_lost, message))
        rollback, observed = _preflight(inventory, pool, secrets.api_key, known, scope, release_only,
                                        unfinished, request, events)  # fmt: skip
        plan = rollback.plan
        if saved is not None:
            check_saved_plan(saved, plan, request.scope)
            plan = saved
        recorder = Recorder(listener=lambda server, command: events.emit(
            Event("would-run", f"{server}: {command}", servers=(server,))))  # fmt: skip
        run_dir = None
        sinks: list[EventSink] = [events]
        shells: Callable[[str], RemoteShell] = pool
        options = request.options
        if request.dry_run:
            secrets = replace(secrets, link=secrets.link or DRY_RUN_LINK)
            options = replace(options, parallel=1, prepare_parallel=1, poll_min=0, poll_max=0)
            responder = recorded_responder(inventory, dict(observed.versions()))
            shells = ShellPool(lambda name: RecordingShell(name, recorder, responder))
        else:
            if plan.nothing_to_do:
                return RunOutcome(None, plan, None, None), rollback
            if not confirm(plan):
                raise XsoarMtError("not confirmed: nothing was changed")
            run_dir = resumed or RunDir.create(request.state_dir, run_id)
            run_dir.write_private(f"plan-{new_run_id()}.json", json.dumps(plan.to_dict(), indent=2))
            journal = Journal(run_dir.journal_path)
            journal.append({"kind": "run-resumed" if resumed else "run-intent", "deployment": known.key,
                            "inventory": str(request.inventory_path.resolve()), "target": plan.target,
                            **run_origin(run_id, inventory.digest, options.parallel),
                            "scope": scope.to_dict(), "rollback": True,
                            **({"waves": plan.waves.to_dict()} if plan.waves is not None else {}),
                            "observed": {n: v.to_dict() for n, v in observed.views.items()}})  # fmt: skip
        executor = Executor(inventory, plan, shells, Fanout(*sinks), observed, secrets, options, run_dir,
                            None, known=None if request.dry_run else known, run_id=run_id,
                            write_markers=not request.dry_run, builds=rollback.builds)  # fmt: skip
        if journal is not None:
            executor.events = Fanout(*sinks, JournalSink(journal, executor.fail_run))
        on_lost.append(executor.fail_run)
        for message in lost:
            executor.fail_run(message)
        on_executor(executor)
        report = executor.execute()
        if deployment_lock is not None:
            deployment_lock.release()
        resume = None
        if report.outcome != "succeeded" and not request.dry_run:
            resume = resume_command(request, run_id)
        outcome = RunOutcome(report, plan, run_id if run_dir else None, run_dir.path if run_dir else None,
                             recorder.lines, resume)  # fmt: skip
        return outcome, rollback
    finally:
        if deployment_lock is not None:
            deployment_lock.release()
        pool.close()
        if not request.dry_run:
            lock.release()
        if journal is not None:
            journal.close()


def _tell(hooks: list[Callable[[str], None]], message: str) -> None:
    for hook in hooks:
        hook(message)


def _preflight(inventory: Inventory, pool: ShellPool, api_key: str | None, known: KnownState, scope: Scope,
               release_only: bool, unfinished: frozenset[str], request: RollbackRequest, events: EventSink,
               ) -> tuple[RollbackPlan, Any]:  # fmt: skip
    """Before anything stops: every server read, every backup that goes back checked on its server (size
    and sha256), the rollback planned from that (backups, the skew rule, Elasticsearch), and for each old
    release an installer that can be fetched (a link, and a build recorded for it). Raises with every
    reason; nothing was changed."""
    events.emit(Event("probe", f"rollback preflight: reading {len(inventory.servers)} servers (read only)"))
    observed, readings = observe_deployment(inventory, pool, api_key, known)
    unreachable = [f"{r.server}: {r.error}" for r in readings.values() if r.error]
    if unreachable:
        raise PreflightFailed(
            unreachable, hint="nothing was changed; the rollback needs every server's answer"
        )
    backups = _backups(inventory, pool, known)
    unusable: dict[str, str] = {}
    covered = {s.name for g in inventory.groups if scope.covers(g.name, g.is_main) for s in g.servers}
    for name, backup in backups.items():
        if name not in covered or not isinstance(backup, BackupRecord):
            continue
        try:
            result = pool(name).run(
                RemoteCommand(backup_check_command(backup), CommandKind.STATUS), timeout=600
            )
        except RemoteError as exc:
            unusable[name] = f"the backup could not be checked ({exc.detail})"
            continue
        reason = backup_check_verdict(backup, result.stdout) if result.ok else (
            f"the backup could not be checked ({result.tail(1) or f'exit {result.exit_code}'})")  # fmt: skip
        if reason is not None:
            unusable[name] = reason
    facts = RollbackFacts(
        backups=backups,
        unsettled=frozenset(v.server for v in observed.views.values() if v.version is None) | unfinished,
        in_flight={n: r for n, r in observed.in_flight().items() if n not in unfinished},
        unusable=unusable,
    )
    rollback = plan_rollback(inventory, observed.versions(), facts, scope, release_only=release_only,
                             waves=request.waves)  # fmt: skip
    if not rollback.nothing_to_do and inventory.installer.delivery == "upload":
        raise PlanRefused(
            "rollback run fetches the old releases' installers with server-download delivery only",
            hint="set installer.delivery: server-download for the rollback (the link must allow the old release)",
        )
    for view in observed.views.values():
        events.emit(Event("probe", f"{view.server}: {view.describe_version()}", servers=(view.server,),
                          data=view.to_dict()))  # fmt: skip
    for ret in rollback.returns:
        events.emit(Event("probe", f"{ret.label}: goes back to {ret.release}, backups checked on its servers",
                          servers=ret.servers, data={"release": ret.release, "build": ret.build}))  # fmt: skip
    return rollback, observed


def _backups(inventory: Inventory, pool: ShellPool, known: KnownState) -> dict[str, Backup]:
    """Each server's backup record: the local record's, or else the one beside the marker on the server
    (a run from another machine), both read strictly. A server's record that cannot be read is no backup."""
    names = [s.name for s in inventory.servers]
    local = read_backups(names, known.backup_records(), inventory.releases)
    out: dict[str, Backup] = {}
    path = word(RemotePaths.of(inventory).backup_record)
    for name in names:
        if isinstance(local[name], BackupRecord):
            out[name] = local[name]
            continue
        command = RemoteCommand(f'echo "{_RECORD_MARK} $(cat {path} 2>/dev/null)"', CommandKind.STATUS)
        try:
            answer = pool(name).run(command, timeout=60).stdout
        except RemoteError:
            out[name] = local[name]
            continue
        out[name] = read_server_record(name, answer, inventory) or local[name]
    return out


def read_server_record(server: str, answer: str, inventory: Inventory) -> Backup | None:
    """The record the server keeps beside its marker, framed: exactly one answer line, one JSON object read
    as strictly as the local record. None: there is none on the server."""
    lines = [ln for ln in answer.splitlines() if ln.startswith(_RECORD_MARK)]
    if len(lines) != 1:
        return NoBackup(server, "the server's answer about its backup record could not be read")
    text = lines[0][len(_RECORD_MARK) :].strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return NoBackup(server, "the backup record on the server is not JSON")
    return read_backup(server, data, inventory.releases)


def _intent(request: RollbackRequest, resumed: RunDir | None, saved: Plan | None
            ) -> tuple[Scope, bool, frozenset[str]]:  # fmt: skip
    """Scope, release-only and (resuming) the servers whose way back began and did not finish."""
    if saved is not None:
        if saved.target not in ROLLBACK_TARGETS:
            raise UsageError(f"--plan {request.plan_file}: this is an upgrade plan, not a rollback plan",
                             hint="run it with `xsoar-mt upgrade run --plan`")  # fmt: skip
        if request.release_only != (saved.target == ROLLBACK_RELEASE_ONLY):
            raise StalePlan(["--release-only differs from the saved plan's"],
                            lead="the saved plan is not what the command line asks")  # fmt: skip
        return (request.scope if request.scope != Scope() else saved.scope), request.release_only, frozenset()
    if resumed is None:
        return request.scope, request.release_only, frozenset()
    records = read_journal(resumed.journal_path)
    intent = next((r for r in records if r.get("kind") == "run-intent"), None)
    if intent is None or intent.get("target") not in ROLLBACK_TARGETS:
        raise InvalidInput(f"run {resumed.run_id} is not a rollback",
                           hint="`xsoar-mt upgrade run --resume` finishes an upgrade; rollback run undoes it")  # fmt: skip
    plans = [read_plan(p) for p in sorted(resumed.path.glob("plan-*.json"))]
    unfinished = unfinished_servers(records, plans)
    return Scope.from_dict(intent["scope"]), intent["target"] == ROLLBACK_RELEASE_ONLY, unfinished


def unfinished_servers(records: list[dict[str, Any]], plans: list[Plan]) -> frozenset[str]:
    """The servers of each group phase (of the resumed run's plans) where a step began and the phase's last
    step did not finish: they go back again whole (purge, install, restore), never from the middle."""
    last = {p.id: p.steps[-1].id for plan in plans for p in plan.phases if p.group is not None and p.steps}
    begun: dict[str, set[str]] = {}
    done: set[str] = set()
    for record in records:
        step = str(record.get("step") or "")
        data = record.get("data") or {}
        if record.get("kind") == "step-started" and step.split("/")[0] in last:
            begun.setdefault(step.split("/")[0], set()).update(str(s) for s in record.get("servers") or ())
        elif record.get("kind") == "step-finished" and isinstance(data, dict) and data.get("outcome") == "ok":
            done.add(step)
    return frozenset(s for phase, servers in begun.items() if last[phase] not in done for s in servers)


def resume_command(request: RollbackRequest, run_id: str) -> str:
    words = ["xsoar-mt", "rollback", "run", "-i", str(request.inventory_path), "--resume", run_id]
    if request.state_dir != DEFAULT_STATE_DIR:
        words += ["--state-dir", str(request.state_dir)]
    if request.options.parallel is not None:
        words += ["--parallel", str(request.options.parallel)]
    if request.json_output:
        words += ["-o", "json"]
    if request.yes:
        words.append("--yes")
    return shlex.join(words)
