"""The report model: the runs of one upgrade stitched from their journals, and what each tenant lived.

Pure reading: the journal is the one source of what happened, the saved plan (with the inventory's
durations, estimate.py) of what was expected. A run and its resumes share a journal and a lineage id
(`upgrade` in each run-start record; journals from before that field use their run's id), so runs
are joined by that field, never by guessing from times or names.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xsoar_mt.errors import InvalidInput, UsageError, XsoarMtError, named

NOT_RECORDED = "not recorded"
REPORT_FORMAT_VERSION = 1
_STARTS = ("run-intent", "run-resumed")
_DOWN = ("stopped", "failed")


@dataclass(frozen=True)
class Interval:
    """From `start` to `end` (epoch seconds); `end` None: still so when the journal ends."""

    start: float
    end: float | None

    def seconds(self, until: float) -> float:
        return (self.end if self.end is not None else until) - self.start


@dataclass(frozen=True)
class Attempt:
    """One start of the upgrade: the run itself (number 1) or a `--resume` of it."""

    number: int
    run_id: str
    resumed: bool
    started: float
    ended: float
    outcome: str  # the run-finished outcome, or "ended without a recap"
    operator: str
    machine: str
    xsoar_mt_version: str
    inventory_sha256: str
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepRun:
    """A step as one attempt carried it out: its servers, when, and how it ended."""

    step: str
    kind: str  # the step's action: backup, fetch-installer, stop, install, start, wait-healthy, validate
    servers: tuple[str, ...]
    attempt: int
    start: float
    end: float
    outcome: str  # ok, failed, or unfinished (no step-finished: cut off by a crash or a kill)
    command: str
    error: str | None = None
    failed_on: tuple[str, ...] = ()
    wave: int | None = None


@dataclass(frozen=True)
class ServerVersions:
    server: str
    group: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class TenantWindows:
    """What one tenant lived (measured from the journal) next to what the plan estimated (minutes from the
    start of the first run)."""

    tenant: str
    group: str
    outages: tuple[Interval, ...]
    degraded: tuple[Interval, ...]
    estimated_down_at: float | None  # the first estimated outage's start
    estimated_down_minutes: float | None  # the total of the estimated outages
    estimated_degraded_minutes: float | None  # the total of the estimated degraded windows
    # each window the plan estimated: (down | degraded, start, end), minutes from the start of the run
    estimated_windows: tuple[tuple[str, float, float | None], ...] = ()


@dataclass(frozen=True)
class IgnoredFinding:
    """A preflight failure lowered to a warning with --ignore-preflight-errors."""

    check: str
    server: str
    detail: str
    attempt: int


@dataclass(frozen=True)
class Mark:
    """A moment the timeline marks: window-end, wave, resume, window-closed."""

    kind: str
    at: float
    label: str


@dataclass(frozen=True)
class Validation:
    step: str
    outcome: str
    at: float
    detail: str | None


@dataclass(frozen=True)
class Report:
    upgrade: str
    deployment: str
    target: str
    attempts: tuple[Attempt, ...]
    steps: tuple[StepRun, ...]
    servers: tuple[ServerVersions, ...]  # in the inventory's (or the plan's) order: the timeline's rows
    tenants: tuple[TenantWindows, ...]
    ignored: tuple[IgnoredFinding, ...]
    marks: tuple[Mark, ...]
    validation: Validation | None
    started: float
    ended: float
    window_end: float | None = None
    notes: tuple[str, ...] = ()
    estimated_minutes: float | None = None

    @property
    def outcome(self) -> str:
        return self.attempts[-1].outcome if self.attempts else NOT_RECORDED

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": REPORT_FORMAT_VERSION, **asdict(self), "outcome": self.outcome}


def report_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


# -- finding the journals ----------------------------------------------------------------------------


@dataclass
class _Source:
    run_id: str
    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)


def _first_start(journal: Path) -> dict[str, Any] | None:
    """The first run-start record of a journal (in its first lines), without reading the rest."""
    try:
        with journal.open(encoding="utf-8", errors="replace") as handle:
            for _, line in zip(range(5), handle, strict=False):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return None
                if isinstance(record, dict) and record.get("kind") in _STARTS:
                    return record
    except OSError:
        return None
    return None


def _lineage(record: Mapping[str, Any] | None, run_id: str) -> str:
    upgrade = record.get("upgrade") if record is not None else None
    return upgrade if isinstance(upgrade, str) and upgrade else run_id


def find_runs(state_dir: Path, which: str, deployment: str | None = None) -> tuple[str, list[Path]]:
    """The lineage id of the upgrade `which` (a run id, or `latest`: the newest run, of `deployment` when
    given) and the run directories that belong to it, oldest first."""
    runs = state_dir / "runs"
    found = sorted(p for p in runs.glob("*") if (p / "journal.jsonl").is_file()) if runs.is_dir() else []
    starts = {p: _first_start(p / "journal.jsonl") for p in found}
    if which == "latest":
        mine = [p for p in found if deployment is None or (starts[p] or {}).get("deployment") == deployment]
        if not mine:
            of = " of this deployment" if deployment is not None else ""
            raise InvalidInput(f"no run{of} to report under {runs}")
        chosen = mine[-1]
    else:
        chosen = runs / which
        if "/" in which or which in ("", ".", "..") or chosen not in starts:
            raise UsageError(
                f"report {named(which)}: no such run under {runs}", hint="`report latest` takes the newest"
            )
    upgrade = _lineage(starts[chosen], chosen.name)
    return upgrade, [p for p in found if _lineage(starts[p], p.name) == upgrade]


# -- reading -----------------------------------------------------------------------------------------


def read_report(state_dir: Path, which: str, inventory_path: Path | None) -> Report:
    """The report of the upgrade `which`, from its journals (and its saved plan and inventory for the
    estimate and the tenants)."""
    from xsoar_mt.journal import read_journal

    inventory = None
    notes: list[str] = []
    deployment = None
    if inventory_path is not None:
        from xsoar_mt.inventory import load_inventory
        from xsoar_mt.known import deployment_key

        inventory = load_inventory(inventory_path)
        deployment = deployment_key(inventory)
    upgrade, paths = find_runs(state_dir, which, deployment)
    journals = [[{**r, "_run": path.name} for r in read_journal(path / "journal.jsonl")] for path in paths]
    journals.sort(key=lambda records: _number(records[0].get("ts")) if records else 0.0)
    records = [r for each in journals for r in each]  # each journal in its own order (it is append-only)
    if not any(r.get("kind") in _STARTS for r in records):
        raise InvalidInput(f"{paths[-1] / 'journal.jsonl'}: no run-start record: not a journal of a run")
    intent = next((r for r in records if r.get("kind") in _STARTS), {})
    if inventory is None:
        inventory, note = _recorded_inventory(intent)
        if note:
            notes.append(note)
    recorded_sha = intent.get("inventory_sha256")
    if inventory is not None and isinstance(recorded_sha, str) and recorded_sha != inventory.digest:
        notes.append("the inventory changed since the run: tenants are as it lists them now")
    plan = _saved_plan(paths, notes)
    return _build(upgrade, records, plan, inventory, notes)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _text(value: Any, default: str = NOT_RECORDED) -> str:
    return value if isinstance(value, str) and value else default


def _recorded_inventory(intent: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The inventory the run was started with, if it is still where the journal says."""
    from xsoar_mt.inventory import load_inventory

    where = intent.get("inventory")
    missing = "no inventory: tenants are not known (give -i INVENTORY)"
    if not isinstance(where, str) or not Path(where).is_file():
        return None, missing
    try:
        return load_inventory(where), None
    except XsoarMtError:
        return None, f"the run's inventory {where} no longer loads: tenants are not known (give -i INVENTORY)"


def _saved_plan(paths: Sequence[Path], notes: list[str]) -> Any:
    """The plan the first run carried out (the first `plan-*.json` written in its directory)."""
    from xsoar_mt.plan import Plan

    for path in paths:
        for candidate in sorted(path.glob("plan-*.json")):
            try:
                return Plan.from_dict(json.loads(candidate.read_text(encoding="utf-8")))
            except (OSError, ValueError, XsoarMtError):
                notes.append(f"{candidate.name}: not a readable plan; no estimate from it")
    notes.append("no saved plan: no estimate to compare with")
    return None


def _build(
    upgrade: str, records: list[dict[str, Any]], plan: Any, inventory: Any, notes: list[str]
) -> Report:
    kinds: dict[str, str] = {}
    if plan is not None:
        kinds = {s.id: s.action.value for s in plan.steps}
    attempts, steps, ignored, marks = _attempts(records, kinds)
    started, ended = attempts[0].started, max(a.ended for a in attempts)
    first = next(r for r in records if r.get("kind") in _STARTS)
    run_started = next((_number(r.get("ts")) for r in records if r.get("kind") == "run-started"), started)
    groups, order = _groups(inventory, plan, records)
    timeline = _server_timeline(records, groups)
    servers = tuple(
        ServerVersions(s, groups.get(s, (NOT_RECORDED, True))[0], timeline.first.get(s), timeline.last.get(s))
        for s in order
    )
    ends = [_number(r["window_end"]) for r in records if r.get("kind") in _STARTS and "window_end" in r]
    window_end = ends[-1] if ends else None  # the window the last run was given
    estimated = _estimates(plan, inventory)
    tenants = _tenants(inventory, timeline, groups, estimated)
    validation = next(
        (Validation(s.step, s.outcome, s.end, s.error) for s in reversed(steps) if s.kind == "validate"), None
    )
    return Report(
        upgrade=upgrade,
        deployment=_text(first.get("deployment")),
        target=_text(first.get("target")),
        attempts=tuple(attempts),
        steps=tuple(steps),
        servers=servers,
        tenants=tenants,
        ignored=tuple(ignored),
        marks=tuple(sorted(marks, key=lambda m: m.at)),
        validation=validation,
        started=run_started if run_started >= started else started,
        ended=ended,
        window_end=window_end,
        notes=tuple(notes),
        estimated_minutes=estimated[1] if estimated is not None else None,
    )


def _attempts(
    records: Sequence[dict[str, Any]], kinds: Mapping[str, str]
) -> tuple[list[Attempt], list[StepRun], list[IgnoredFinding], list[Mark]]:
    """Split the records at each run start: each part is one attempt, with its steps and findings."""
    parts = _split(records)
    attempts: list[Attempt] = []
    steps: list[StepRun] = []
    ignored: list[IgnoredFinding] = []
    marks: list[Mark] = []
    for number, part in enumerate(parts, 1):
        head = part[0]
        begun: dict[str, dict[str, Any]] = {}
        finished = next((r for r in part if r.get("kind") == "run-finished"), None)
        last = max(_number(r.get("ts")) for r in part)
        failures: list[str] = []
        for record in part:
            kind, data = record.get("kind"), record.get("data")
            data = data if isinstance(data, dict) else {}
            at = _number(record.get("ts"))
            step = record.get("step")
            if kind == "step-started" and isinstance(step, str):
                begun[step] = record
            elif kind == "step-finished" and isinstance(step, str) and step in begun:
                opened = begun.pop(step)
                outcome = _text(data.get("outcome"), "ok")
                error = data.get("error") if isinstance(data.get("error"), str) else None
                if outcome == "failed" and error:
                    failures.append(error)
                steps.append(_step_run(opened, kinds, number, at, outcome, error, data.get("failed")))
            elif kind == "warning" and data.get("verdict") == "ignored":
                ignored.append(_finding(record, data, number))
            elif kind == "wave-started":
                marks.append(Mark("wave", at, f"wave {data.get('wave')}"))
            elif kind == "window-closed":
                marks.append(Mark("window-closed", at, "window closed: nothing more started"))
        for opened in begun.values():  # started, never finished: the process ended under it
            steps.append(_step_run(opened, kinds, number, last, "unfinished", None, None))
        if number > 1:
            marks.append(Mark("resume", _number(head.get("ts")), f"resume {number - 1}"))
        attempts.append(_attempt(number, head, finished, last, failures))
    steps.sort(key=lambda s: (s.start, s.step))
    return attempts, steps, ignored, marks


def _split(records: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The records cut at each run start (a journal's first records belong to its first run)."""
    parts: list[list[dict[str, Any]]] = []
    for record in records:
        if record.get("kind") in _STARTS or not parts:
            parts.append([])
        parts[-1].append(record)
    return parts


def _finding(record: Mapping[str, Any], data: Mapping[str, Any], attempt: int) -> IgnoredFinding:
    """A preflight finding the operator chose to ignore, from its warning record's fields (a journal
    written before they were recorded names the server and the detail only in the message)."""
    server, detail = data.get("server"), data.get("detail")
    if isinstance(server, str) and isinstance(detail, str):
        return IgnoredFinding(_text(data.get("check")), server, detail, attempt)
    named_servers = record.get("servers")
    server = _text(named_servers[0] if isinstance(named_servers, list) and named_servers else None, "")
    message = _text(record.get("message"), "")
    detail = message.split(": ", 1)[1] if message.startswith("preflight ") and ": " in message else message
    return IgnoredFinding(_text(data.get("check")), server or _server_in(message), detail, attempt)


def _attempt(
    number: int,
    head: Mapping[str, Any],
    finished: Mapping[str, Any] | None,
    last: float,
    failures: list[str],
) -> Attempt:
    """One run: who started it and when, from its first record; its outcome, from its recap if any."""
    fin = finished.get("data") if finished is not None else None
    outcome = _text(fin.get("outcome"), NOT_RECORDED) if isinstance(fin, dict) else "ended without a recap"
    return Attempt(
        number=number,
        run_id=str(head.get("_run")),
        resumed=head.get("kind") == "run-resumed",
        started=_number(head.get("ts")),
        ended=last,
        outcome=outcome,
        operator=_text(head.get("operator")),
        machine=_text(head.get("machine")),
        xsoar_mt_version=_text(head.get("xsoar_mt_version")),
        inventory_sha256=_text(head.get("inventory_sha256")),
        failures=tuple(failures),
    )


def _server_in(message: str) -> str:
    """`preflight NAME on SERVER: detail`: the server (older journals name it only in the message)."""
    head = message.split(":", 1)[0]
    return head.rsplit(" on ", 1)[1] if " on " in head else ""


def _step_run(
    opened: Mapping[str, Any],
    kinds: Mapping[str, str],
    attempt: int,
    end: float,
    outcome: str,
    error: str | None,
    failed: Any,
) -> StepRun:
    data = opened.get("data") if isinstance(opened.get("data"), dict) else {}
    assert isinstance(data, dict)
    step = str(opened.get("step"))
    message = _text(opened.get("message"), "")
    kind = kinds.get(step) or (message.split(" on ", 1)[0] if " on " in message else "step")
    servers = opened.get("servers")
    wave = data.get("wave")
    return StepRun(
        step=step,
        kind=kind,
        servers=tuple(str(s) for s in servers) if isinstance(servers, list) else (),
        attempt=attempt,
        start=_number(opened.get("ts")),
        end=end,
        outcome=outcome,
        command=_text(data.get("command"), ""),
        error=error,
        failed_on=tuple(str(s) for s in failed) if isinstance(failed, list) else (),
        wave=wave if isinstance(wave, int) else None,
    )


# -- servers, groups and tenants ---------------------------------------------------------------------

Groups = dict[str, tuple[str, bool]]  # server -> (its group, whether it serves the group's tenants)


def _groups(inventory: Any, plan: Any, records: Iterable[Mapping[str, Any]]) -> tuple[Groups, list[str]]:
    """Each server's group and whether it serves (a DR secondary stands by), and the rows' order."""
    groups: Groups = {}
    if inventory is not None:
        from xsoar_mt.inventory import Role, Topology

        for group in inventory.groups:
            for server in group.servers:
                serves = group.topology is not Topology.DR or server.role is Role.PRIMARY
                groups[server.name] = ("main" if group.is_main else group.name, serves)
    elif plan is not None:
        for phase in plan.phases:
            for step in phase.steps:
                for server in step.servers:
                    if phase.group is not None:
                        groups.setdefault(server, (phase.group, True))
    order = list(groups)
    for record in records:
        named = record.get("servers")
        for server in named if isinstance(named, list) else ():
            if isinstance(server, str) and server not in groups and server not in order:
                order.append(server)
        observed = record.get("observed")
        if isinstance(observed, dict):
            order += [s for s in observed if s not in groups and s not in order]
    return groups, order


@dataclass
class _Timeline:
    """Per server: versions first and last known, and when it was down (stopped, or not yet healthy)."""

    first: dict[str, str] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)
    down: dict[str, list[Interval]] = field(default_factory=dict)
    releases: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # server -> (when, release)
    end: float = 0.0


def _release(version: Any) -> str | None:
    if not isinstance(version, str) or not version:
        return None
    parts = version.split(" ")[0].split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]) else None


def _server_timeline(records: Sequence[Mapping[str, Any]], groups: Groups) -> _Timeline:
    timeline = _Timeline()
    since: dict[str, float] = {}  # server -> when it went down
    for record in records:
        at = _number(record.get("ts"))
        timeline.end = max(timeline.end, at)
        views: list[Mapping[str, Any]] = []
        observed = record.get("observed")
        if record.get("kind") in _STARTS and isinstance(observed, dict):
            views = [{**v, "server": s} for s, v in observed.items() if isinstance(v, dict)]
        elif record.get("kind") == "server-state" and isinstance(record.get("data"), dict):
            views = [record["data"]]
        for view in views:
            server = view.get("server")
            if not isinstance(server, str):
                continue
            version = view.get("version")
            if isinstance(version, str) and version:
                timeline.first.setdefault(server, version)
                timeline.last[server] = version
                release = _release(version)
                if release is not None:
                    timeline.releases.setdefault(server, []).append((at, release))
            service, healthy = view.get("service"), view.get("healthy")
            if service in _DOWN and server not in since:
                since[server] = at
            elif (
                service == "running"
                and server in since
                and (healthy is True or record.get("kind") in _STARTS)
            ):
                timeline.down.setdefault(server, []).append(Interval(since.pop(server), at))
    for server, start in since.items():
        timeline.down.setdefault(server, []).append(Interval(start, None))
    return timeline


def _all_down(intervals: Sequence[Sequence[Interval]], end: float) -> list[Interval]:
    """When every one of the servers is down at once (the intersection of their down intervals)."""
    if not intervals or any(not i for i in intervals):
        return []
    points = sorted(
        {p for each in intervals for i in each for p in (i.start, i.end if i.end is not None else end)}
    )
    out: list[Interval] = []
    for a, b in itertools.pairwise(points):
        middle = (a + b) / 2
        if all(
            any(i.start <= middle < (i.end if i.end is not None else end) for i in each) for each in intervals
        ):
            if out and out[-1].end == a:
                out[-1] = Interval(out[-1].start, b)
            else:
                out.append(Interval(a, b))
    return [Interval(i.start, None if i.end == end and _open(intervals) else i.end) for i in out]


def _open(intervals: Sequence[Sequence[Interval]]) -> bool:
    return all(any(i.end is None for i in each) for each in intervals)


def _lagging(timeline: _Timeline, main: Sequence[str], hosts: Sequence[str]) -> list[Interval]:
    """When the host group's release is behind main's (the lowest of its servers' against main's highest)."""
    moments = sorted({at for s in (*main, *hosts) for at, _ in timeline.releases.get(s, [])})
    out: list[Interval] = []
    current: dict[str, str] = {}
    changes = sorted((at, s, r) for s in (*main, *hosts) for at, r in timeline.releases.get(s, []))
    index = 0
    for at in moments:
        while index < len(changes) and changes[index][0] <= at:
            current[changes[index][1]] = changes[index][2]
            index += 1
        mains = [_key(current[s]) for s in main if s in current]
        mine = [_key(current[s]) for s in hosts if s in current]
        lags = bool(mains and mine) and min(mine) < max(mains)
        if lags and (not out or out[-1].end is not None):
            out.append(Interval(at, None))
        elif not lags and out and out[-1].end is None:
            out[-1] = Interval(out[-1].start, at)
    return out


def _key(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release.split("."))


def _estimates(plan: Any, inventory: Any) -> tuple[dict[str, Any], float] | None:
    """Per tenant the plan's estimate (estimate.py), and the night's estimated minutes."""
    if plan is None or inventory is None:
        return None
    from xsoar_mt.estimate import estimate, tenant_impact

    timing = estimate(plan, inventory.durations)
    groups = [("main" if g.is_main else g.name, [t.name for t in g.tenants]) for g in inventory.groups]
    return {i.tenant: i for i in tenant_impact(plan, groups, timing)}, timing.minutes


def _first_down(impact: Any) -> float | None:
    """Where the plan's first estimated outage of a tenant begins (None: no estimate, or no outage)."""
    if impact is None:
        return None
    downs = impact.of("down")
    return downs[0].start if downs else None


def _tenants(
    inventory: Any, timeline: _Timeline, groups: Groups, estimated: Any
) -> tuple[TenantWindows, ...]:
    if inventory is None:
        return ()
    main = [s for s, (g, _) in groups.items() if g == "main"]
    out = []
    for group in inventory.groups:
        name = "main" if group.is_main else group.name
        serving = [s for s, (g, serves) in groups.items() if g == name and serves]
        members = [s for s, (g, _) in groups.items() if g == name]
        outages = _all_down([timeline.down.get(s, []) for s in serving], timeline.end)
        degraded = [] if group.is_main else _lagging(timeline, main, members)
        for tenant in group.tenants:
            impact = estimated[0].get(tenant.name) if estimated is not None else None
            out.append(
                TenantWindows(
                    tenant=tenant.name,
                    group=name,
                    outages=tuple(outages),
                    degraded=tuple(degraded),
                    estimated_down_at=_first_down(impact),
                    estimated_down_minutes=impact.total_down if impact is not None else None,
                    estimated_degraded_minutes=impact.total_degraded if impact is not None else None,
                    estimated_windows=tuple((w.kind, w.start, w.end) for w in impact.windows)
                    if impact
                    else (),
                )
            )
    return tuple(out)
