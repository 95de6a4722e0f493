"""`upgrade run`: what the run is to do (flags, a saved plan, or the journal of the run resumed), the plan
made from the observed state, then the executor; a real run and a dry run differ only in their mode."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import replace

from xsoar_mt.engine import Executor
from xsoar_mt.engine import WindowClosed as WindowClosed  # what the recap shows of a window that closed
from xsoar_mt.errors import InvalidInput, UsageError
from xsoar_mt.events import Event, EventSink
from xsoar_mt.inventory import Inventory
from xsoar_mt.journal import RunDir, read_journal
from xsoar_mt.plan import Plan, Scope, Waves
from xsoar_mt.planner import check_scope, plan_upgrade, with_extract_dirs
from xsoar_mt.recap import lagging_functions, tenants_down
from xsoar_mt.releases import parse_target
from xsoar_mt.state_home import default_state_dir
from xsoar_mt.usecases.run_modes import DryRun, RealRun
from xsoar_mt.usecases.run_request import Intent, Sight
from xsoar_mt.usecases.run_request import RunOutcome as RunOutcome
from xsoar_mt.usecases.run_request import RunRequest as RunRequest
from xsoar_mt.usecases.saved_plan import check_plan_request, check_saved_plan, read_plan, refuse_rollback_plan
from xsoar_mt.usecases.session import Session
from xsoar_mt.waves import saved_spec


def run_upgrade(
    session: Session,
    request: RunRequest,
    events: EventSink,
    *,
    confirm: Callable[[Plan], bool],
    on_executor: Callable[[Executor], None] = lambda e: None,
) -> RunOutcome:
    """Carry out the upgrade: checked, planned, confirmed, then step by step (or, dry, recorded)."""
    inventory, known = session.inventory, session.known
    check_scope(inventory, request.scope)  # a wrong --group is a usage error before any server is read
    if known.problem:
        events.emit(Event("warning", known.problem))
    resumed = RunDir.find(session.state, request.resume, known.key) if request.resume else None
    saved = read_plan(request.plan_file, inventory) if request.plan_file is not None else None
    if saved is not None and request.plan_file is not None:
        refuse_rollback_plan(saved, request.plan_file)
    intent = _intent(request, resumed, inventory, saved)
    if saved is not None:
        check_plan_request(saved, intent.target, request.scope)
    mode = (DryRun if request.dry_run else RealRun)(session, request, events, resumed)
    with mode:
        sight = mode.look(intent)
        plan = _plan(session, request, intent, sight, saved)
        executor = mode.executor(plan, sight, intent, confirm)
        if executor is None:
            return RunOutcome(None, plan, None, None)
        on_executor(executor)
        report = executor.execute()
        mode.finish()
        stats = session.shell_stats()
        if stats is not None:
            events.emit(Event("ssh-stats", "SSH use per server", data=stats))
        outcome = mode.outcome(report, plan, resume_command(session, request, mode.run_id))
        releases = {n: v.release for n, st in report.servers.items() if (v := st.view.planning_version)}
        running = {n: st.running for n, st in report.servers.items()}
        return replace(
            outcome,
            tenants_down=tenants_down(inventory, running),
            lagging_functions=lagging_functions(inventory, releases),
        )


def _plan(session: Session, request: RunRequest, intent: Intent, sight: Sight, saved: Plan | None) -> Plan:
    """The plan from the observed state, or the saved plan once it is shown to be that same plan."""
    inventory, observed = session.inventory, sight.observed
    facts = observed.facts(session.known.backups(), verify=intent.resuming)
    plan = plan_upgrade(
        inventory, observed.versions(), intent.target, intent.scope, facts, intent.waves or request.waves
    )
    if saved is not None:
        check_saved_plan(saved, plan, request.scope)
        plan = saved
    return with_extract_dirs(plan, inventory, sight.extract_dirs)


def resume_command(session: Session, request: RunRequest, run_id: str) -> str:
    """The command that continues this run, with the flags it used (never a secret: none has a flag)."""
    verb = "prepare" if request.prepare_only else "run"
    words = ["xsoar-mt", "upgrade", verb, "-i", str(session.inventory_path), "--resume", run_id]
    if session.state.root.absolute() != default_state_dir():  # absolute: it works from any directory
        words += ["--state-dir", str(session.state.root.absolute())]
    if request.ignore_preflight_errors:
        words += ["--ignore-preflight-errors", request.ignore_preflight_errors]
    if request.parallel is not None:
        words += ["--parallel", str(request.parallel)]
    if request.json_output:
        words += ["-o", "json"]
    if request.yes:
        words.append("--yes")
    return shlex.join(words)


def _intent(request: RunRequest, resumed: RunDir | None, inventory: Inventory, saved: Plan | None) -> Intent:
    """Target, scope, the waves a resumed run started with, and the sha256 of each installer downloaded so
    far: from the flags, a saved plan, or the journal of the run being resumed (read once, here)."""
    if saved is not None and request.waves is not None:
        raise UsageError("--waves goes with --to: a saved plan carries its own waves (upgrade plan --waves)")
    if resumed is None:
        if saved is not None:  # the plan's own target, scope and waves, unless the flags say otherwise
            target = parse_target(request.target, inventory.releases) if request.target else saved.target
            spec = saved_spec(saved.waves.spec) if saved.waves is not None else None  # rebuilt, not copied
            return Intent(target, request.scope if request.scope != Scope() else saved.scope, spec)
        if request.target is None:
            raise UsageError("give --to RELEASE, --plan FILE or --resume RUN")
        return Intent(parse_target(request.target, inventory.releases), request.scope)
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
    if bool(intent.get("prepare")) != request.prepare_only:
        was, verb = ("a prepare", "prepare") if intent.get("prepare") else ("an upgrade run", "run")
        raise UsageError(f"run {resumed.run_id} is {was}: resume it with `upgrade {verb} --resume`")
    target = str(intent["target"])
    if request.target is not None and parse_target(request.target, inventory.releases) != target:
        raise UsageError(f"run {resumed.run_id} targets {target}, not {request.target}")
    waves = Waves.from_dict(intent["waves"]) if intent.get("waves") else None
    if request.waves is not None and (waves is None or waves.spec != str(request.waves)):
        started = f"in waves {waves.spec}" if waves else "without waves"
        raise UsageError(
            f"--waves {request.waves}: run {resumed.run_id} started {started}, and a resume keeps them"
        )
    return Intent(target, Scope.from_dict(intent["scope"]), waves, downloaded, resuming=True)
