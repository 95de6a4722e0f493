"""`upgrade run`: secrets, lock, the observed state (preflight), plan (or a saved plan checked), then the executor."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from xsoar_mt.commands import check_plan_request, check_saved_plan, read_plan
from xsoar_mt.download import Downloads, from_link, simulated
from xsoar_mt.engine import Executor, RunOptions, RunReport, RunSecrets, WindowCheck
from xsoar_mt.engine.dry_run import recorded_responder
from xsoar_mt.errors import ExitCode, InvalidInput, UsageError, XsoarMtError
from xsoar_mt.estimate import Durations, clock, estimate
from xsoar_mt.events import Event, EventSink, Fanout
from xsoar_mt.inventory import Inventory, SecretRef, load_inventory
from xsoar_mt.journal import Journal, RunDir, new_run_id, read_journal, run_origin
from xsoar_mt.known import KnownState, deployment_key
from xsoar_mt.lock import DeploymentLock, LockHeld, RunLock, lock_server
from xsoar_mt.observed import Marker, Observed, Reading, Source, offline_state, require_versions, resolve
from xsoar_mt.plan import Plan, Scope, Waves
from xsoar_mt.planner import plan_upgrade, with_extract_dirs
from xsoar_mt.probe import marker_command, observe_all
from xsoar_mt.releases import parse_target
from xsoar_mt.remote import Recorder, RecordingShell, RemoteError, RemoteShell
from xsoar_mt.secrets import read_secret
from xsoar_mt.waves import WaveSpec
from xsoar_mt.window import EstimatedWindow, WindowGuard, at, closing

# A dry run never reads the real link; this stands in for it (the fetch step shows it masked anyway).
DRY_RUN_LINK = "https://download.demisto.com/download-params/?token=dry-run&eula=accept"
DEFAULT_STATE_DIR = Path(".xsoar-mt")


class PreflightFailed(XsoarMtError):
    exit_code = ExitCode.PREFLIGHT_FAILED

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        super().__init__("cannot start: " + "; ".join(problems), hint=hint)
        self.problems = [f"cannot start: {problem}" for problem in problems]


@dataclass
class RunRequest:
    inventory_path: Path
    target: str | None = None
    scope: Scope = field(default_factory=Scope)
    plan_file: Path | None = None
    resume: str | None = None
    dry_run: bool = False
    probe_in_dry_run: bool = False
    accept_new_host_keys: bool = False
    ignore_preflight_errors: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    options: RunOptions = field(default_factory=RunOptions)
    yes: bool = False  # repeated in the printed resume command, as are the flags below
    json_output: bool = False
    waves: WaveSpec | None = None  # a resumed run keeps the waves it started with (its journal's intent)
    window_end: datetime | None = None  # start no group that would end after it (not repeated on resume)
    clock: Callable[[], float] = time.time  # now, in epoch seconds: the window's clock


@dataclass
class RunOutcome:
    report: RunReport | None
    plan: Plan
    run_id: str | None
    run_dir: Path | None
    recorded: list[tuple[str, str]] = field(default_factory=list)
    resume_command: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        return self.report.exit_code if self.report else ExitCode.OK


class JournalSink:
    """The journal records every event but the installer's streamed output.

    A journal that cannot be written (a full disk) must not take the run down mid-step: the failure is
    handed to `on_failure` (the executor then starts nothing new) and reported once on the console.
    """

    def __init__(self, journal: Journal, on_failure: Callable[[str], None]) -> None:
        self.journal = journal
        self.on_failure = on_failure
        self.failed: str | None = None

    def emit(self, event: Event) -> None:
        if event.kind in ("step-output", "would-run") or self.failed is not None:
            return
        try:
            self.journal.append(event.to_dict())
        except OSError as exc:
            self.failed = f"the journal {self.journal.path} cannot be written ({exc.strerror or exc})"
            self.on_failure(self.failed)


class PreflightNotes:
    """Passes every event on, and keeps the preflight's warnings (said before the journal opens) for it."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.kept: list[Event] = []

    def emit(self, event: Event) -> None:
        if event.kind == "warning" and "check" in event.data:
            self.kept.append(event)
        self.sink.emit(event)


class ShellPool:
    """One shell per server for the whole run, made on first use."""

    def __init__(self, make: Callable[[str], RemoteShell]) -> None:
        self._make = make
        self._shells: dict[str, RemoteShell] = {}
        self._lock = threading.Lock()

    def __call__(self, server: str) -> RemoteShell:
        with self._lock:
            if server not in self._shells:
                self._shells[server] = self._make(server)
            return self._shells[server]

    def stats(self) -> dict[str, dict[str, int]]:
        """Connections opened and commands run per server (SSH shells count them)."""
        return {
            name: {
                "connections": int(getattr(shell, "connections_opened", 0)),
                "commands": int(getattr(shell, "commands_run", 0)),
            }
            for name, shell in sorted(self._shells.items())
        }

    def close(self) -> None:
        for shell in self._shells.values():
            shell.close()


def load_secrets(
    inventory: Inventory,
    servers: list[str],
    *,
    need_sudo: bool,
    need_link: bool,
    prompt: Callable[[str], str] | None,
) -> tuple[dict[str, str], RunSecrets]:
    """Read every secret the run needs before anything is changed (each source once; a prompt happens here).

    Returns the sudo password of each server that has one (servers may override `ssh.sudo_password`).
    """
    sudo: dict[str, str] = {}
    if need_sudo:
        by_source: dict[SecretRef, str] = {}
        for name in servers:
            ref = inventory.server(name).ssh.sudo_password
            if ref is None:
                continue
            if ref not in by_source:
                label = "sudo password" if ref == inventory.ssh.sudo_password else f"sudo password for {name}"
                by_source[ref] = read_secret(ref, label, prompt=prompt)
            sudo[name] = by_source[ref]
    link = None
    installer = inventory.installer
    if need_link and (installer.delivery == "server-download" or installer.link is not None):
        if installer.link is None:
            raise InvalidInput(
                "installer.link is not set: the servers need the download link",
                hint="set installer.link: {env: NAME} or {file: PATH}, or use delivery: upload",
            )
        link = read_secret(installer.link, "download link", prompt=None)
    api_key = read_secret(inventory.api_key, "API key", prompt=prompt) if inventory.api_key else None
    return sudo, RunSecrets(link=link, api_key=api_key)


def ssh_pool(inventory: Inventory, sudo: Mapping[str, str], accept_new: bool) -> ShellPool:
    """Shells over SSH, one per server; `sudo` holds the password of each server that needs one."""
    from xsoar_mt.ssh import SshShell  # fabric and paramiko load only when a command needs SSH

    return ShellPool(
        lambda name: SshShell(
            inventory.server(name), sudo_password=sudo.get(name), accept_new_host_keys=accept_new
        )
    )


def observe_deployment(
    inventory: Inventory,
    pool: Callable[[str], RemoteShell],
    api_key: str | None,
    known: KnownState | None,
) -> tuple[Observed, Mapping[str, Reading]]:
    """Every server read at once (read only), resolved with the local record, which is then updated."""
    readings = observe_all(inventory, pool, api_key)
    observed = resolve(inventory, readings, known.servers() if known else {})
    if known is not None:
        known.record(observed.views.values())
    return observed, readings


def resume_command(request: RunRequest, run_id: str) -> str:
    """The command that continues this run, with the flags it used (never a secret: none has a flag)."""
    words = ["xsoar-mt", "upgrade", "run", "-i", str(request.inventory_path), "--resume", run_id]
    if request.state_dir != DEFAULT_STATE_DIR:
        words += ["--state-dir", str(request.state_dir)]
    if request.ignore_preflight_errors:
        words += ["--ignore-preflight-errors", request.ignore_preflight_errors]
    if request.options.parallel is not None:
        words += ["--parallel", str(request.options.parallel)]
    if request.json_output:
        words += ["-o", "json"]
    if request.yes:
        words.append("--yes")
    return shlex.join(words)


def run_upgrade(request: RunRequest, events: EventSink, *, prompt: Callable[[str], str] | None,
                confirm: Callable[[Plan], bool], on_executor: Callable[[Executor], None] = lambda e: None,
                ) -> RunOutcome:  # fmt: skip
    inventory = load_inventory(request.inventory_path)
    events = preflight = PreflightNotes(events)
    known = KnownState(request.state_dir, inventory)
    if known.problem:
        events.emit(Event("warning", known.problem))
    resumed = RunDir.find(request.state_dir, request.resume, known.key) if request.resume else None
    saved = read_plan(request.plan_file, inventory) if request.plan_file is not None else None
    if saved is not None and request.plan_file is not None:
        from xsoar_mt.rollback_run import refuse_rollback_plan

        refuse_rollback_plan(saved, request.plan_file)
    target, scope, kept_waves, downloaded = _intent(request, resumed, inventory, saved)
    if saved is not None:
        check_plan_request(saved, target, request.scope)
    uses_ssh = not request.dry_run or request.probe_in_dry_run
    names = [s.name for g in inventory.groups if scope.covers(g.name, g.is_main) for s in g.servers]
    sudo, secrets = load_secrets(
        inventory, [s.name for s in inventory.servers], need_sudo=uses_ssh, need_link=not request.dry_run,
        prompt=prompt,
    )  # fmt: skip
    lock = RunLock(request.state_dir, known.key)
    run_id = resumed.run_id if resumed else new_run_id()
    if not request.dry_run:
        lock.acquire(run_id)
    pool: ShellPool | None = None
    deployment_lock: DeploymentLock | None = None
    journal: Journal | None = None
    lost: list[str] = []  # the deployment lock, broken by someone else while this run held it
    on_lost: list[Callable[[str], None]] = [lost.append]
    try:
        extract_dirs: Mapping[str, str] = {}
        readings: Mapping[str, Reading] = {}
        if uses_ssh:
            pool = ssh_pool(inventory, sudo, request.accept_new_host_keys)
            if not request.dry_run:
                deployment_lock = DeploymentLock(inventory, pool(lock_server(inventory)), run_id)
                deployment_lock.acquire()
                deployment_lock.start_heartbeat(lambda message: _tell(on_lost, message))
            observed, readings, extract_dirs = _check_servers(
                inventory, pool, secrets, target, names, scope, request, events, known, resumed is not None
            )
        else:
            observed = offline_state(inventory, known)
            require_versions(observed, request.inventory_path, probed=False,
                             hint="add --probe to read the servers' versions over SSH (read only)")  # fmt: skip
        facts = observed.facts(known.backups(), verify=resumed is not None)
        plan = plan_upgrade(inventory, observed.versions(), target, scope, facts, kept_waves or request.waves)
        if saved is not None:
            check_saved_plan(saved, plan, request.scope)
            plan = saved
        plan = with_extract_dirs(plan, inventory, extract_dirs)
        recorder = Recorder(
            listener=lambda server, command: events.emit(
                Event("would-run", f"{server}: {command}", servers=(server,))
            )
        )
        run_dir = None
        sinks: list[EventSink] = [events]
        if request.dry_run:
            secrets = replace(secrets, link=secrets.link or DRY_RUN_LINK)
            executor_options = replace(
                request.options, parallel=1, prepare_parallel=1, poll_min=0, poll_max=0
            )
            responder = recorded_responder(inventory, dict(observed.versions()))

            def recording(name: str) -> RemoteShell:
                return RecordingShell(name, recorder, responder)

            shells: Callable[[str], RemoteShell] = ShellPool(recording)
        else:
            if plan.nothing_to_do:
                return RunOutcome(None, plan, None, None)
            if not confirm(plan):
                raise XsoarMtError("not confirmed: nothing was changed")
            assert pool is not None
            _write_markers(inventory, pool, observed, readings, names, run_id, events)
            run_dir = resumed or RunDir.create(request.state_dir, run_id)
            run_dir.write_private(f"plan-{new_run_id()}.json", json.dumps(plan.to_dict(), indent=2))
            journal = Journal(run_dir.journal_path)
            journal.append({"kind": "run-resumed" if resumed else "run-intent", "deployment": known.key,
                            "inventory": str(request.inventory_path.resolve()), "target": target,
                            **run_origin(run_id, inventory.digest, request.options.parallel),
                            "scope": scope.to_dict(),
                            **({"waves": plan.waves.to_dict()} if plan.waves is not None else {}),
                            **({"window_end": request.window_end.timestamp()} if request.window_end else {}),
                            "observed": {n: v.to_dict() for n, v in observed.views.items()}})  # fmt: skip
            for note in preflight.kept:  # said before the journal opened; the report names them
                journal.append(note.to_dict())
            shells = pool
            executor_options = request.options
        executor = Executor(
            inventory,
            plan,
            shells,
            Fanout(*sinks),
            observed,
            secrets,
            executor_options,
            run_dir,
            _downloads(inventory, request, secrets, downloaded),
            known=None if request.dry_run else known,
            run_id=run_id,
            write_markers=not request.dry_run,
            window=_window(request, inventory, plan, known, events),
        )
        if journal is not None:
            executor.events = Fanout(*sinks, JournalSink(journal, executor.fail_run))
        on_lost.append(executor.fail_run)
        for message in lost:
            executor.fail_run(message)
        on_executor(executor)
        report = executor.execute()
        if deployment_lock is not None:
            deployment_lock.release()  # before the SSH use is counted: it is the run's last command
        if pool is not None:
            events.emit(Event("ssh-stats", "SSH use per server", data=pool.stats()))
        resume = None
        if report.outcome != "succeeded" and not request.dry_run:
            resume = resume_command(request, run_id)
        return RunOutcome(report, plan, run_id if run_dir else None, run_dir.path if run_dir else None,
                          recorder.lines, resume)  # fmt: skip
    finally:
        if deployment_lock is not None:
            deployment_lock.release()
        if pool is not None:
            pool.close()
        if not request.dry_run:
            lock.release()
        if journal is not None:
            journal.close()


def _window(request: RunRequest, inventory: Inventory, plan: Plan, known: KnownState, events: EventSink
            ) -> WindowCheck | None:  # fmt: skip
    """The window's check for the executor, with a first event saying when it ends. A real run estimates
    each group as it comes (from what it measured, then the local record, then `durations`); a dry run
    takes no time, so it stops where the plan's estimate says the window closes."""
    if request.window_end is None:
        return None
    now, end = request.clock(), request.window_end.timestamp()
    learned = known.durations()
    events.emit(Event("window", f"window ends at {at(end)} (in {clock(max(0.0, end - now) / 60)})",
                      data={"window_end": end, "learned_servers": len(learned)}))  # fmt: skip
    if not request.dry_run:
        return WindowGuard(end, Durations.of(inventory.durations, learned), request.clock)
    timing = estimate(plan, inventory.durations, request.options.parallel, learned)
    where = closing(timing, (end - now) / 60)
    if where is None:
        events.emit(
            Event(
                "window", f"by the estimate the whole run fits: it ends about {at(now + timing.minutes * 60)}"
            )
        )
    else:
        events.emit(Event("window", f"by the estimate the window closes before {where.phase.id} (it would end "
                          f"about {at(now + where.ends * 60)}): the run stops there"))  # fmt: skip
    return EstimatedWindow(end, now, where)


def _tell(hooks: list[Callable[[str], None]], message: str) -> None:
    for hook in hooks:
        hook(message)


def force_unlock(inventory_path: Path, state_dir: Path, run_id: str, accept_new_host_keys: bool) -> str:
    """`--force-unlock ID`: break the lock of run ID on this machine and on the deployment (main).

    Another run's lock is never broken (LockHeld, exit 10). When neither lock exists: exit 2. When main
    cannot be reached, the lock here is still broken and the error says the deployment's was not.
    """
    inventory = load_inventory(inventory_path)
    here = RunLock(state_dir, deployment_key(inventory)).force_unlock(run_id)
    server = lock_server(inventory)
    pool = ssh_pool(inventory, {}, accept_new_host_keys)
    try:
        there = DeploymentLock(inventory, pool(server), run_id).force_unlock(run_id)
    except LockHeld:
        raise
    except RemoteError as exc:
        done = "the lock on this machine was broken; " if here else ""
        raise RemoteError(
            server,
            f"{done}the deployment's lock on {server} could not be checked: {exc.detail}",
            hint=f"run --force-unlock {run_id} again once {server} answers",
        ) from None
    finally:
        pool.close()
    where = [w for w, broken in ((f"the deployment ({server})", there), ("this machine", here)) if broken]
    if not where:
        raise UsageError(f"--force-unlock {run_id}: there is no lock to break, here or on {server}")
    return f"lock of run {run_id} broken on {' and '.join(where)}"


def _write_markers(inventory: Inventory, pool: Callable[[str], RemoteShell], observed: Observed,
                   readings: Mapping[str, Reading], names: list[str], run_id: str, events: EventSink) -> None:  # fmt: skip
    """xsoar-mt's marker on each server in scope whose `/about` answered something the marker does not say."""
    for name in names:
        view, reading = observed[name], readings.get(name)
        if view.version is None or view.source is not Source.API or reading is None:
            continue
        if reading.marker is not None and reading.marker.version == view.version:
            continue
        try:
            pool(name).run(
                marker_command(inventory, name, Marker(view.version, 0, "api", run_id)), timeout=60
            )
        except RemoteError as exc:
            events.emit(
                Event("warning", f"{name}: could not write xsoar-mt's marker: {exc.detail}", servers=(name,))
            )


def _downloads(inventory: Inventory, request: RunRequest, secrets: RunSecrets, downloaded: Mapping[str, str]
               ) -> Downloads | None:  # fmt: skip
    """Upload delivery from a link: installers downloaded once on this machine (simulated in a dry run).

    A cached download is reused when its sha256 is one the inventory pins, or one the run being resumed
    downloaded (`downloaded`, release to sha256); the inventory's pin wins where both exist.
    """
    installer = inventory.installer
    if installer.delivery != "upload" or installer.link is None:
        return None
    if request.dry_run:
        return simulated(installer.build)
    assert secrets.link is not None  # load_secrets read it
    known = {**downloaded, **installer.sha256}
    return from_link(secrets.link, installer.build, request.state_dir / "installers", known)


def _check_servers(inventory: Inventory, pool: ShellPool, secrets: RunSecrets, target: str, names: list[str],
                   scope: Scope, request: RunRequest, events: EventSink, known: KnownState, resuming: bool,
                   ) -> tuple[Observed, Mapping[str, Reading], Mapping[str, str]]:  # fmt: skip
    """Before any change: the preflight checks (a real run) or a read-only look (a dry run with --probe).

    Either way every server of the deployment is read (the ones out of scope read only), once, and the
    observed state the plan is made from comes out of those answers and the local record. A preflight
    failure that is not ignored stops the run here, with nothing changed. Also returns the servers whose
    installer gets `-target` because their /tmp is mounted noexec.
    """
    extract_dirs: Mapping[str, str] = {}
    if request.dry_run:
        events.emit(Event("probe", f"reading {len(inventory.servers)} servers (read only)"))
        observed, readings = observe_deployment(inventory, pool, secrets.api_key, known)
        problems = [f"{r.server}: {r.error}" for r in readings.values() if r.error]
        if problems:
            raise PreflightFailed(problems, hint="nothing was changed; fix these and run again")
        require_versions(observed, request.inventory_path, probed=True, hint="nothing was changed")
    else:
        from xsoar_mt.checks import run_preflight
        from xsoar_mt.checks.preflight import blocking_summary

        events.emit(Event("probe", f"preflight checks on {len(names)} servers in scope, "
                          f"{len(inventory.servers) - len(names)} more read only"))  # fmt: skip
        report = run_preflight(
            inventory, pool, secrets, target, request.ignore_preflight_errors, servers=names,
            known=known.servers(), scope=scope, backed_up=known.backups(), verify=resuming,
        )  # fmt: skip
        observed, readings = report.observed, report.readings
        known.record(observed.views.values())
        if [(f.check, f.server) for f in report.blocking] == [
            ("version", "deployment")
        ] and not observed.unknown():
            # only the plan itself is refused: the same error (and exit code) as a dry run or `upgrade plan`
            plan_upgrade(
                inventory, observed.versions(), target, scope, observed.facts(known.backups(), resuming)
            )
        if report.blocking:
            raise PreflightFailed(
                blocking_summary(report.blocking),
                hint="nothing was changed; fix these, or pass --ignore-preflight-errors=NAME for a "
                "skippable check (see `xsoar-mt preflight`)",
            )
        warned = [f for f in report.findings if f.verdict.value in ("warn", "ignored")]
        for finding in warned:
            events.emit(Event("warning", f"preflight {finding.check} on {finding.server}: {finding.detail}",
                              data={"check": finding.check, "verdict": finding.verdict.value}))  # fmt: skip
        extract_dirs = report.extract_dirs
    for view in observed.views.values():
        state = "" if view.running else f" ({view.service.value})"
        source = f" [{view.source.value}]" if view.source else ""
        events.emit(Event("probe", f"{view.server}: {view.describe_version()}{source}{state}",
                          servers=(view.server,), data=view.to_dict()))  # fmt: skip
    return observed, readings, extract_dirs


def _intent(request: RunRequest, resumed: RunDir | None, inventory: Inventory, saved: Plan | None
            ) -> tuple[str, Scope, Waves | None, dict[str, str]]:  # fmt: skip
    """Target, scope, the waves a resumed run started with, and the sha256 of each installer downloaded so
    far: from the flags, a saved plan, or the journal of the run being resumed (read once, here)."""
    if saved is not None and request.waves is not None:
        raise UsageError("--waves goes with --to: a saved plan carries its own waves (upgrade plan --waves)")
    if resumed is None:
        if saved is not None:  # the plan's own target, scope and waves, unless the flags say otherwise
            target = parse_target(request.target, inventory.releases) if request.target else saved.target
            return target, request.scope if request.scope != Scope() else saved.scope, saved.waves, {}
        if request.target is None:
            raise UsageError("give --to RELEASE, --plan FILE or --resume RUN")
        return parse_target(request.target, inventory.releases), request.scope, None, {}
    records = read_journal(resumed.journal_path)
    intent = next((r for r in records if r.get("kind") == "run-intent"), None)
    if intent is None:
        raise InvalidInput(f"run {resumed.run_id} has no recorded intent; start a new run with --to")
    if intent.get("rollback"):
        raise InvalidInput(
            f"run {resumed.run_id} is a rollback: `xsoar-mt rollback run --resume` finishes it"
        )
    downloaded: dict[str, str] = {}
    for record in records:
        data = record.get("data", {})
        if record.get("kind") == "installer-downloaded" and isinstance(data, dict):
            downloaded[str(data.get("release"))] = str(data.get("sha256"))
    target = str(intent["target"])
    if request.target is not None and parse_target(request.target, inventory.releases) != target:
        raise UsageError(f"run {resumed.run_id} targets {target}, not {request.target}")
    waves = Waves.from_dict(intent["waves"]) if intent.get("waves") else None
    if request.waves is not None and (waves is None or waves.spec != str(request.waves)):
        started = f"in waves {waves.spec}" if waves else "without waves"
        raise UsageError(
            f"--waves {request.waves}: run {resumed.run_id} started {started}, and a resume keeps them"
        )
    return target, Scope.from_dict(intent["scope"]), waves, downloaded
