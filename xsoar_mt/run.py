"""`upgrade run`: secrets, lock, probe, plan (or a saved plan checked for staleness), then the executor."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from xsoar_mt.commands import check_saved_plan, read_plan
from xsoar_mt.download import Downloads, from_link, simulated
from xsoar_mt.errors import ExitCode, InvalidInput, XsoarMtError
from xsoar_mt.events import Event, EventSink, Fanout
from xsoar_mt.executor import Executor, RunOptions, RunReport, RunSecrets, ServerState
from xsoar_mt.inventory import Inventory, SecretRef, load_inventory
from xsoar_mt.journal import Journal, RunDir, RunLock, new_run_id, read_journal
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.planner import plan_upgrade, with_extract_dirs
from xsoar_mt.probe import Observation, probe
from xsoar_mt.releases import Version, parse_target
from xsoar_mt.remote import Recorder, RecordingShell, RemoteShell, Result
from xsoar_mt.secrets import read_secret

# A dry run never reads the real link; this stands in for it (the fetch step shows it masked anyway).
DRY_RUN_LINK = "https://download.demisto.com/download-params/?token=dry-run&eula=accept"


class PreflightFailed(XsoarMtError):
    exit_code = ExitCode.PREFLIGHT_FAILED

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        super().__init__("cannot start: " + "; ".join(problems), hint=hint)
        self.problems = problems


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
    state_dir: Path = Path(".xsoar-mt")
    options: RunOptions = field(default_factory=RunOptions)


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
    """The journal records every event but the installer's streamed output."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def emit(self, event: Event) -> None:
        if event.kind not in ("step-output", "would-run"):
            self.journal.append(event.to_dict())


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


def probe_all(inventory: Inventory, pool: Callable[[str], RemoteShell], api_key: str | None,
              servers: list[str]) -> dict[str, Observation]:  # fmt: skip
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(servers)))) as workers:
        found = list(workers.map(lambda name: probe(pool(name), inventory, api_key), servers))
    return {o.server: o for o in found}


def observed_versions(inventory: Inventory, seen: Mapping[str, Observation],
                      last_known: Mapping[str, str]) -> dict[str, Version]:  # fmt: skip
    """A running server's probed version; for a stopped one, the last version the journal or inventory knows."""
    versions: dict[str, Version] = {}
    unknown = []
    for server in inventory.servers:
        observation = seen.get(server.name)
        if observation is not None and observation.version is not None:
            versions[server.name] = observation.version
        elif server.name in last_known:
            versions[server.name] = Version.parse(last_known[server.name])
        elif server.version is not None:
            versions[server.name] = server.version
        else:
            unknown.append(server.name)
    if unknown:
        raise PreflightFailed([f"{n}: the service is stopped and no version is known" for n in unknown],
                              hint="start the service, or give its `version:` in the inventory")  # fmt: skip
    return versions


def _recorded_responder(inventory: Inventory, versions: dict[str, Version]) -> Callable[[str, str], Result]:
    """Answers for a dry run: every command succeeds and servers reach the release their installer names."""
    installed = re.compile(r"install-(\d+\.\d+)\.rc")

    def respond(server: str, command: str) -> Result:
        if "__xsoar_mt_sudo" in command:
            return Result(server, command, 0, "__xsoar_mt_sudo=0\n__xsoar_mt_status=0\n")
        if command.startswith("cat ") and (found := installed.search(command)):
            versions[server] = Version.parse(found.group(1))
            return Result(server, command, 0, "0\n")
        if "/about" in command and "/acc_" not in command and "for t in" not in command:
            return Result(server, command, 0, json.dumps({"demistoVersion": str(versions[server])}))
        if "for t in" in command:
            out = "".join(f"== tenant {t.account}\n{{\"demistoVersion\": \"{versions[server]}\"}}\n"
                          for g in inventory.groups for t in g.tenants)  # fmt: skip
            return Result(server, command, 0, out)
        if "sha256sum" in command:
            return Result(server, command, 0, "0" * 64 + "  installer\n")
        if "http_code" in command:
            return Result(server, command, 0, "200")
        return Result(server, command, 0, "")

    return respond


def run_upgrade(request: RunRequest, events: EventSink, *, prompt: Callable[[str], str] | None,
                confirm: Callable[[Plan], bool], on_executor: Callable[[Executor], None] = lambda e: None,
                ) -> RunOutcome:  # fmt: skip
    inventory = load_inventory(request.inventory_path)
    resumed = RunDir.find(request.state_dir, request.resume) if request.resume else None
    saved = read_plan(request.plan_file, inventory) if request.plan_file is not None else None
    target, scope, last_known, downloaded = _intent(request, resumed, inventory, saved)
    uses_ssh = not request.dry_run or request.probe_in_dry_run
    names = [s.name for g in inventory.groups if scope.covers(g.name, g.is_main) for s in g.servers]
    sudo, secrets = load_secrets(
        inventory, names, need_sudo=uses_ssh, need_link=not request.dry_run, prompt=prompt
    )
    lock = RunLock(request.state_dir, request.inventory_path)
    run_id = resumed.run_id if resumed else new_run_id()
    if not request.dry_run:
        lock.acquire(run_id)
    pool: ShellPool | None = None
    try:
        seen: dict[str, Observation] = {}
        extract_dirs: Mapping[str, str] = {}
        if uses_ssh:
            pool = ssh_pool(inventory, sudo, request.accept_new_host_keys)
            seen, extract_dirs = _check_servers(inventory, pool, secrets, target, names, request, events)
        versions = observed_versions(inventory, seen, last_known)
        plan = plan_upgrade(inventory, versions, target, scope)
        if saved is not None:
            check_saved_plan(saved, plan, request.scope)
            plan = saved
        plan = with_extract_dirs(_with_recovery(plan, inventory, seen, scope), inventory, extract_dirs)
        state = {
            s.name: ServerState(versions.get(s.name), seen[s.name].running if s.name in seen else None)
            for s in inventory.servers
        }
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
            simulated = dict(versions)
            responder = _recorded_responder(inventory, simulated)

            def recording(name: str) -> RemoteShell:
                return RecordingShell(name, recorder, responder)

            shells: Callable[[str], RemoteShell] = ShellPool(recording)
        else:
            if plan.nothing_to_do and not any(p.id == "recover" for p in plan.phases):
                return RunOutcome(None, plan, None, None)
            if not confirm(plan):
                raise XsoarMtError("not confirmed: nothing was changed")
            run_dir = resumed or RunDir.create(request.state_dir, run_id)
            run_dir.write_private(f"plan-{new_run_id()}.json", json.dumps(plan.to_dict(), indent=2))
            journal = Journal(run_dir.journal_path)
            journal.append({"kind": "run-resumed" if resumed else "run-intent", "inventory":
                            str(request.inventory_path.resolve()), "target": target, "scope": scope.to_dict()})  # fmt: skip
            sinks.append(JournalSink(journal))
            assert pool is not None
            shells = pool
            executor_options = request.options
        executor = Executor(
            inventory,
            plan,
            shells,
            Fanout(*sinks),
            state,
            secrets,
            executor_options,
            run_dir,
            _downloads(inventory, request, secrets, downloaded),
        )
        on_executor(executor)
        report = executor.execute()
        if pool is not None:
            events.emit(Event("ssh-stats", "SSH use per server", data=pool.stats()))
        resume = None
        if report.outcome != "succeeded" and not request.dry_run:
            resume = f"xsoar-mt upgrade run -i {request.inventory_path} --resume {run_id}"
        return RunOutcome(report, plan, run_id if run_dir else None, run_dir.path if run_dir else None,
                          recorder.lines, resume)  # fmt: skip
    finally:
        if pool is not None:
            pool.close()
        if not request.dry_run:
            lock.release()


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
                   request: RunRequest, events: EventSink) -> tuple[dict[str, Observation], Mapping[str, str]]:  # fmt: skip
    """Before any change: the preflight checks (a real run) or a probe (a dry run with --probe).

    Either way each server is reached in one or two round trips, and what they saw is what the plan is
    made from. A preflight failure that is not ignored stops the run here, with nothing changed. Also
    returns the servers whose installer gets `-target` because their /tmp is mounted noexec.
    """
    extract_dirs: Mapping[str, str] = {}
    if request.dry_run:
        events.emit(Event("probe", f"probing {len(names)} servers"))
        seen = probe_all(inventory, pool, secrets.api_key, names)
    else:
        from xsoar_mt.checks import run_preflight
        from xsoar_mt.checks.preflight import blocking_summary

        events.emit(Event("probe", f"preflight checks on {len(names)} servers"))
        report = run_preflight(
            inventory, pool, secrets, target, request.ignore_preflight_errors, servers=names
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
        seen = dict(report.observed)
        extract_dirs = report.extract_dirs
    problems = [f"{o.server}: {o.error}" for o in seen.values() if o.error]
    if problems:
        raise PreflightFailed(problems, hint="nothing was changed; fix these and run again")
    for o in seen.values():
        state = "" if o.running else " (service stopped)"
        events.emit(Event("probe", f"{o.server}: {o.version or 'version unknown'}{state}", servers=(o.server,),
                          data={"version": str(o.version) if o.version else None, "running": o.running}))  # fmt: skip
    return seen, extract_dirs


def _intent(request: RunRequest, resumed: RunDir | None, inventory: Inventory, saved: Plan | None
            ) -> tuple[str, Scope, dict[str, str], dict[str, str]]:  # fmt: skip
    """Target, scope, last known versions and the sha256 of each installer downloaded so far: from the
    flags, a saved plan, or the journal of the run being resumed (read once, here)."""
    if resumed is None:
        if saved is not None and request.target is None:
            return saved.target, saved.scope, {}, {}
        if request.target is None:
            raise InvalidInput("give --to RELEASE, --plan FILE or --resume RUN")
        return parse_target(request.target, inventory.releases), request.scope, {}, {}
    records = read_journal(resumed.journal_path)
    intent = next((r for r in records if r.get("kind") == "run-intent"), None)
    if intent is None:
        raise InvalidInput(f"run {resumed.run_id} has no recorded intent; start a new run with --to")
    last_known: dict[str, str] = {}
    downloaded: dict[str, str] = {}
    for record in records:
        data = record.get("data", {})
        for name, version in (data.get("versions") or {}).items():
            last_known[name] = version
        if record.get("kind") == "installer-downloaded":
            downloaded[data["release"]] = data["sha256"]
    target = intent["target"]
    if request.target is not None and parse_target(request.target, inventory.releases) != target:
        raise InvalidInput(f"run {resumed.run_id} targets {target}, not {request.target}")
    return target, Scope.from_dict(intent["scope"]), last_known, downloaded


def _with_recovery(plan: Plan, inventory: Inventory, seen: Mapping[str, Observation], scope: Scope) -> Plan:
    """Servers found stopped that the plan will not install are started first (a failed run's leftovers)."""
    from xsoar_mt.planner import recovery_phase

    installing = set(plan.servers_to_upgrade)
    stopped = [n for n, o in seen.items() if o.running is False and n not in installing]
    if not stopped:
        return plan
    return replace(plan, phases=(recovery_phase(inventory, stopped, plan.target), *plan.phases))
