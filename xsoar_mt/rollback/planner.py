"""The rollback planner: from the inventory, each server's version and its backup, the ordered way back.

A server goes back the way the vendor's installer allows: the installer refuses to install an older
release over a newer one, so the release is purged (`-- -purge`), the old release installed cleanly, the
backup's files put back (and with Elasticsearch the snapshot restored), then the service is started and
gated healthy. The order keeps the skew rule (skew.py, the one rule engine) at every step, with one
rollback-specific allowance, `rollback_judgement`: a host kept stopped may lag main by more than one
release while main still runs the newer release, since a stopped host talks to nobody. A host is never
ahead of main, stopped or not. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from xsoar_mt.errors import ExitCode, InvalidInput, PlanRefused, UsageError, XsoarMtError, named
from xsoar_mt.estimate import Durations, group_downtime
from xsoar_mt.installer import download_name, fetch_command, installer_path, upload_check_command
from xsoar_mt.inventory import Group, Inventory, Topology, url_address
from xsoar_mt.plan import (
    ROLLBACK,
    ROLLBACK_RELEASE_ONLY,
    Action,
    Basis,
    Phase,
    Plan,
    Scope,
    Skipped,
    Step,
    ValidationKind,
    Waves,
)
from xsoar_mt.planner import health_command
from xsoar_mt.releases import ReleaseLine, Version
from xsoar_mt.rollback.backups import BackupRecord, NoBackup, ServerBackup, restore_command
from xsoar_mt.shellwords import LATER, fill, squash
from xsoar_mt.skew import DEGRADED_FUNCTIONS, Fault, FleetState, Judgement, SkewVerdict, judge
from xsoar_mt.waves import WaveSpec, assign, keep, ordered

RELEASE_ONLY_LINE = (
    "RELEASE ONLY: the releases go back, the data does NOT (Elasticsearch keeps what the upgraded "
    "release wrote; --release-only)"
)

_PER_SERVER = {"server": LATER, "address": LATER}

_WHY = {
    "stop": "the installer refuses to run while the service is up",
    "ha-stop": "HA: the whole group goes back: every server is stopped first",
    "dr-stop-primary": "DR: stop the primary first",
    "dr-stop-secondary": "DR: then stop the secondary",
    "purge": "the installer refuses to install an older release over a newer one: purge the newer one first",
    "install": "install the release the server ran before the upgrade (clean, after the purge)",
    "restore": "put back the files of the backup taken just before the upgrade (sha256 checked first)",
    "snapshot": "restore the Elasticsearch snapshot taken before the upgrade (the data is not in the file backup)",
    "start": "start the service on the old release and its old data",
    "healthy": "wait until the service is up and its /health answers",
    "dr-secondary-up": "DR: the secondary is back and healthy before the primary goes back",
    "ha-first-healthy": "HA: the first server is back and healthy before the rest",
    "held-start": "start the host only now: before main went back it was more than one release behind main",
    "held-dr-secondary": "DR: the secondary is up and healthy before the primary starts",
    "validate-main": "main answers on its communication port",
    "validate-lb": "HA: main answers through the load balancer as before",
    "validate-tenants": "every tenant answers through main",
    "validate-wave": "a wave goes back only once every tenant of the wave before it answers through main",
    "validate-wave-main": "a wave goes back only once main answers after the wave before it",
    "verify-healthy": "a resumed rollback: every server in scope is up and healthy on its release",
}


class BackupUnusable(XsoarMtError):
    """Some server that must go back has no backup rollback can use: one line per server, with the reason."""

    exit_code = ExitCode.PREFLIGHT_FAILED

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            problems[0] if len(problems) == 1 else f"{len(problems)} servers have no usable backup",
            hint="nothing was changed; a server can only go back to a backup xsoar-mt took and recorded",
        )
        self.problems = problems


@dataclass(frozen=True)
class RollbackFacts:
    """What rollback knows besides the versions: each server's backup, and what a reading of the servers found."""

    backups: Mapping[str, ServerBackup] = field(default_factory=dict)
    unsettled: frozenset[str] = frozenset()  # version not certain (an installer failed or vanished): go back
    in_flight: Mapping[str, str] = field(
        default_factory=dict
    )  # server -> release an installer still installs
    unusable: Mapping[str, str] = field(default_factory=dict)  # server -> why its backup on the server is bad
    verify: bool = (
        False  # resuming: every server in scope gated healthy and validated, even if none goes back
    )


@dataclass(frozen=True)
class GroupReturn:
    """One server group's way back, as the plan text states it."""

    group: str
    label: str
    servers: tuple[str, ...]
    from_release: str  # the newest release its servers run now
    release: str  # the release it goes back to
    build: str | None
    taken_at: float  # its oldest backup: everything written after it is lost
    size: int  # bytes, all its backups together
    held: bool = False  # started only once main is back
    snapshot: str | None = None


@dataclass(frozen=True)
class RollbackPlan:
    plan: Plan
    returns: tuple[GroupReturn, ...]
    release_only: bool
    builds: Mapping[str, str | None]  # release -> the build its installer is fetched for

    @property
    def nothing_to_do(self) -> bool:
        return not self.returns

    @property
    def snapshots(self) -> dict[str, str]:
        """Group -> the Elasticsearch snapshot its restore-snapshot step restores (the one recorded with
        the group's backup): what the run restores, never read back out of the step's command text."""
        return {r.group: r.snapshot for r in self.returns if r.snapshot is not None}


def rollback_judgement(
    main: Mapping[str, str], hosts: Mapping[str, str], held: Collection[str], line: ReleaseLine
) -> Judgement:
    """The skew verdict during a rollback: `skew.judge`, except that a host in `held` (kept stopped until main
    is back) may lag main by more than one release. A host ahead of main is never excused.

    `run` must judge each rollback step with this, against the versions it observed.
    """
    full = judge(main, hosts, line)
    kept = tuple(f for f in full.faults if f.ahead or f.server not in held)
    if any(f.verdict is SkewVerdict.UNSUPPORTED for f in kept):
        return Judgement(SkewVerdict.UNSUPPORTED, kept)
    return Judgement(SkewVerdict.DEGRADED if kept else SkewVerdict.OK, kept)


def plan_rollback(
    inventory: Inventory,
    versions: Mapping[str, Version],
    facts: RollbackFacts,
    scope: Scope = Scope(),
    *,
    release_only: bool = False,
    waves: WaveSpec | Waves | None = None,
) -> RollbackPlan:
    """The ordered plan that takes each server group in `scope` back to the release and data of its backup.

    Host groups go back before main, one group at a time (or side by side, as `--parallel` and `--waves`
    run them: with waves, wave by wave, each wave after the first once the tenants of the one before
    answer through main; a resumed rollback's `Waves` are kept); an HA group goes back whole; a DR
    secondary goes back and is healthy before its primary.
    Raises BackupUnusable (no backup, a bad record, a changed archive), PlanRefused (no order keeps the
    skew rule; Elasticsearch without a snapshot repository and no `--release-only`; an installer still
    running), UsageError for a bad scope.
    """
    _check_scope(inventory, scope)
    releases = _current_releases(inventory, versions)
    _refuse_while_installing(facts, releases)
    returns = _returns(inventory, releases, facts, scope)
    es = inventory.database == "elasticsearch"
    if es and not release_only:
        returns = _with_snapshots(inventory, facts, returns)
    builds = _builds(facts, returns)
    builder = _Builder(inventory, releases, facts, release_only and es, builds)
    builder.prepare(returns)
    host_groups, plan_waves = _host_order(inventory, returns, waves)
    _go_back_in_order(inventory, builder, returns, host_groups, plan_waves)
    warnings = _warnings(builder.judge(), release_only_es=release_only and es)
    if builder.phases or facts.verify:
        builder.validate(_in_scope(inventory, scope) if facts.verify else ())
    plan = _plan(
        inventory, versions, scope, returns, builder, warnings, plan_waves, release_only=release_only
    )
    order = [g.name for g in (*host_groups, inventory.main) if g.name in returns]
    return RollbackPlan(plan, tuple(returns[n] for n in order), release_only, builds)


def _refuse_while_installing(facts: RollbackFacts, releases: Mapping[str, str]) -> None:
    busy = {s: r for s, r in facts.in_flight.items() if s in releases}
    if busy:
        server, release = next(iter(busy.items()))
        raise PlanRefused(
            f"{server} is still installing {release}: nothing can go back while an installer runs",
            hint=f"let the installer on {server} finish, then plan the rollback again",
        )


def _with_snapshots(
    inventory: Inventory, facts: RollbackFacts, returns: dict[str, GroupReturn]
) -> dict[str, GroupReturn]:
    """With Elasticsearch the data comes back from a snapshot: each group's ways back name the one its
    backup recorded. Refused without a snapshot repository, or when a server's backup recorded none."""
    if returns and not inventory.elasticsearch_snapshot_repository:
        raise PlanRefused(
            "the deployment keeps its data in Elasticsearch and the inventory names no snapshot repository "
            "(deployment.elasticsearch_snapshot_repository): the file backup does not hold that data, so it "
            "cannot come back",
            hint="give --release-only to take back the releases alone (the data stays as the upgrade left it)",
        )
    missing = [
        f"{s}: no Elasticsearch snapshot recorded with its backup"
        for r in returns.values()
        for s in r.servers
        if _record(facts, s).es_snapshot is None
    ]
    if missing:
        raise BackupUnusable(missing)
    return {g: replace(r, snapshot=_record(facts, r.servers[0]).es_snapshot) for g, r in returns.items()}


def _host_order(
    inventory: Inventory, returns: Mapping[str, GroupReturn], waves: WaveSpec | Waves | None
) -> tuple[list[Group], Waves | None]:
    """The host groups that go back, in the order they go (by wave first when waves are given; a resumed
    rollback's waves kept as they were)."""
    host_groups = [g for g in ordered(inventory.hosts) if g.name in returns]
    plan_waves = None
    if isinstance(waves, Waves):
        plan_waves = Waves(waves.spec, keep(host_groups, waves.groups)) if host_groups else None
    elif waves is not None and host_groups:
        plan_waves = Waves(str(waves), assign(host_groups, waves))
    if plan_waves is not None:
        place = {g.name: i for i, g in enumerate(host_groups)}
        host_groups.sort(key=lambda g: (plan_waves.groups[g.name], place[g.name]))
    return host_groups, plan_waves


def _go_back_in_order(
    inventory: Inventory,
    builder: _Builder,
    returns: dict[str, GroupReturn],
    host_groups: list[Group],
    plan_waves: Waves | None,
) -> None:
    """The host groups (with waves: wave by wave, each wave after the first behind the validation of the
    one before), then main, then the host groups kept stopped until main was back. A host group that
    would lag main by more than one release is kept stopped (marked held in `returns`), or refused when
    main stays."""
    line = inventory.releases
    main_back = inventory.main.name in returns
    held: list[Group] = []
    wave_of = dict(plan_waves.groups) if plan_waves is not None else {}
    wave_groups: list[Group] = []  # the groups of the wave under way
    for group in host_groups:
        ret = returns[group.name]
        wave = wave_of.get(group.name)
        if wave_groups and wave != wave_of[wave_groups[0].name]:  # the next wave: validate the one before
            builder.validate_wave(wave_of[wave_groups[0].name], wave_groups)
            wave_groups = []
        main_now = builder.newest_main()
        if line.distance(ret.release, main_now) > 1:
            if not main_back:
                raise PlanRefused(
                    f"{group.label} would go back to {ret.release}, {line.distance(ret.release, main_now)} "
                    f"releases behind main ({main_now}), which stays: the vendor does not support that",
                    hint="roll main back too (leave out --group), or upgrade that group again instead",
                )
            held.append(group)
            returns[group.name] = replace(ret, held=True)
        builder.go_back(group, ret.release, held=group in held, wave=wave)
        if wave is not None:
            wave_groups.append(group)
    if main_back:
        builder.go_back(inventory.main, returns[inventory.main.name].release)
    for group in held:
        builder.start_held(group, returns[group.name].release)


def _warnings(final: Judgement, *, release_only_es: bool) -> list[str]:
    """The plan's warnings, from the verdict once everything went back; refused if that is unsupported."""
    if final.verdict is SkewVerdict.UNSUPPORTED:
        raise PlanRefused(
            "after this rollback the deployment would be unsupported: "
            + "; ".join(f.reason for f in final.faults if f.verdict is SkewVerdict.UNSUPPORTED),
            hint="widen the scope so those groups go back too",
        )
    warnings: list[str] = []
    if release_only_es:
        warnings.append(RELEASE_ONLY_LINE)
    if final.verdict is SkewVerdict.DEGRADED:
        lagging = ", ".join(f.server for f in final.faults)
        warnings.append(
            f"after this rollback, hosts lag main by one release ({lagging}): some functions do not work "
            "until they run main's release again"
        )
    return warnings


def _plan(
    inventory: Inventory,
    versions: Mapping[str, Version],
    scope: Scope,
    returns: Mapping[str, GroupReturn],
    builder: _Builder,
    warnings: list[str],
    plan_waves: Waves | None,
    *,
    release_only: bool,
) -> Plan:
    """The plan in the saved-plan format: its basis, its phases, and every server that stays as it is."""
    target = ROLLBACK_RELEASE_ONLY if release_only else ROLLBACK
    basis = Basis(
        inventory_digest=inventory.digest,
        versions={name: str(v) for name, v in sorted(versions.items())},
        target=target,
        scope=scope,
    )
    return Plan(
        deployment=inventory.name,
        target=target,
        scope=scope,
        hops=tuple(dict.fromkeys(r.release for r in returns.values())),
        phases=tuple(builder.phases),
        basis=basis,
        skipped=_skipped(inventory, versions, scope, returns),
        warnings=tuple(warnings),
        degraded_functions=DEGRADED_FUNCTIONS if builder.ever_degraded else (),
        downtime_minutes=group_downtime(builder.phases, Durations.of(inventory.durations)),
        waves=plan_waves,
    )


def _skipped(
    inventory: Inventory, versions: Mapping[str, Version], scope: Scope, returns: Mapping[str, GroupReturn]
) -> tuple[Skipped, ...]:
    going = {s for r in returns.values() for s in r.servers}
    return tuple(
        Skipped(
            s.name,
            str(versions[s.name]),
            "nothing to go back to" if scope.covers(g.name, g.is_main) else "out of scope",
        )
        for g in inventory.groups
        for s in g.servers
        if s.name not in going
    )


def _check_scope(inventory: Inventory, scope: Scope) -> None:
    known = [g.name for g in inventory.hosts]
    for name in scope.groups or ():
        if name not in known:
            raise UsageError(
                f"--group {named(name)}: no such host group (known: {', '.join(known) or 'none'})"
            )
    if not scope.main and scope.groups == ():
        raise UsageError("the scope is empty: give --only main, --group NAME, or neither for everything")


def _current_releases(inventory: Inventory, versions: Mapping[str, Version]) -> dict[str, str]:
    missing = [s.name for s in inventory.servers if s.name not in versions]
    if missing:
        raise InvalidInput(
            f"no version known for {', '.join(missing)}: set `version:` in the inventory or probe the servers"
        )
    out = {}
    for server in inventory.servers:
        release = versions[server.name].release
        inventory.releases.index(release)
        out[server.name] = release
    return out


def _record(facts: RollbackFacts, server: str) -> BackupRecord:
    record = facts.backups.get(server)
    assert isinstance(record, BackupRecord)
    return record


def _returns(
    inventory: Inventory, releases: Mapping[str, str], facts: RollbackFacts, scope: Scope
) -> dict[str, GroupReturn]:
    """The groups in scope that go back, and to what. A group goes back whole, when any of its servers runs
    a newer release than its backup or its version is not certain; every one of its servers then needs a
    usable backup, all of one release."""
    line = inventory.releases
    problems: list[str] = []
    out: dict[str, GroupReturn] = {}
    covered = [g for g in inventory.groups if scope.covers(g.name, g.is_main)]
    floor = _floor(line, facts, covered)
    for group in covered:
        names = tuple(s.name for s in group.servers)
        records = {n: b for n in names if isinstance(b := facts.backups.get(n), BackupRecord)}
        wants = any(
            n in facts.unsettled
            or (n in records and line.index(records[n].release) < line.index(releases[n]))
            or (n not in records and line.index(releases[n]) > floor)
            for n in names
        )
        explicit = not scope.everything and (group.is_main or scope.groups is not None)
        if not wants and not explicit:
            continue
        bad = [
            f"{n}: {facts.unusable[n]}" if n in facts.unusable else f"{n}: {_why_none(facts.backups.get(n))}"
            for n in names
            if n in facts.unusable or n not in records
        ]
        if bad:
            problems += bad
            continue
        if wants:
            out[group.name] = _group_return(group, names, records, releases, line)
    if problems:
        raise BackupUnusable(problems)
    return out


def _floor(line: ReleaseLine, facts: RollbackFacts, covered: list[Group]) -> int:
    """The index of the oldest release a backup in scope returns to (-1 with none): a server with no backup
    that runs something newer must have been upgraded too, and cannot come back. With no backup at all,
    every server in scope is such a one."""
    usable = [
        b.release
        for g in covered
        for s in g.servers
        if isinstance(b := facts.backups.get(s.name), BackupRecord)
    ]
    return min((line.index(r) for r in usable), default=-1)


def _group_return(
    group: Group,
    names: tuple[str, ...],
    records: Mapping[str, BackupRecord],
    releases: Mapping[str, str],
    line: ReleaseLine,
) -> GroupReturn:
    """One group's way back, once every one of its servers has a usable backup: refused when those
    backups were taken on different releases."""
    back_to = {records[n].release for n in names}
    if len(back_to) > 1:
        raise PlanRefused(
            f"the backups of {group.label} were taken on different releases "
            f"({', '.join(f'{n} {records[n].release}' for n in names)}): it cannot go back whole",
            hint="an HA group or DR pair goes back to one release; restore the odd server by hand",
        )
    return GroupReturn(
        group.name,
        group.label,
        names,
        max((releases[n] for n in names), key=line.index),
        back_to.pop(),
        records[names[0]].build,
        min(records[n].taken_at for n in names),
        sum(records[n].size for n in names),
    )


def _why_none(backup: ServerBackup | None) -> str:
    if isinstance(backup, NoBackup):
        return backup.reason
    return "no backup recorded"


def _builds(facts: RollbackFacts, returns: Mapping[str, GroupReturn]) -> dict[str, str | None]:
    """The build of each release the plan installs again: the one the servers ran when backed up."""
    builds: dict[str, str | None] = {}
    seen: dict[str, str] = {}
    for ret in returns.values():
        for server in ret.servers:
            build = _record(facts, server).build
            if ret.release in builds and builds[ret.release] != build:
                raise PlanRefused(
                    f"{seen[ret.release]} ran build {builds[ret.release] or 'unknown'} of {ret.release} before the "
                    f"upgrade, {server} build {build or 'unknown'}: one installer cannot take both back",
                    hint="roll back the groups of each build separately (--group)",
                )
            builds[ret.release] = build
            seen.setdefault(ret.release, server)
    return builds


class _Builder:
    """Turns the groups' ways back into phases and steps, tracking versions and the verdict step by step."""

    def __init__(
        self,
        inventory: Inventory,
        releases: Mapping[str, str],
        facts: RollbackFacts,
        release_only_es: bool,
        builds: Mapping[str, str | None],
    ) -> None:
        self.inv = inventory
        main = {s.name for s in inventory.main.servers}
        self.state = FleetState(
            {n: r for n, r in releases.items() if n in main},
            {n: r for n, r in releases.items() if n not in main},
            inventory.releases,
        )
        self.facts = facts
        self.release_only_es = release_only_es
        self.builds = builds
        self.held: set[str] = set()
        self.phases: list[Phase] = []
        self.ever_degraded = self.judge().verdict is not SkewVerdict.OK
        cmds = inventory.commands
        self._stop = fill(cmds.stop, **_PER_SERVER)
        self._start = fill(cmds.start, **_PER_SERVER)
        self._health = health_command(inventory)

    def judge(self) -> Judgement:
        return rollback_judgement(self.state.main, self.state.hosts, self.held, self.inv.releases)

    def newest_main(self) -> str:
        line = self.inv.releases
        return max(self.state.main.values(), key=line.index)

    # -- prepare --------------------------------------------------------------------------------------

    def prepare(self, returns: Mapping[str, GroupReturn]) -> None:
        """Every old release's installer reaches its servers before anything is stopped."""
        per_release: dict[str, list[str]] = {}
        for ret in returns.values():
            per_release.setdefault(ret.release, []).extend(ret.servers)
        steps = []
        for release, servers in per_release.items():
            settings = replace(self.inv.installer, build=self.builds.get(release))
            command = (
                upload_check_command(settings, release)
                if settings.delivery == "upload"
                else fetch_command(settings, release)
            )
            name = download_name(release, settings.build)
            why = f"the installer of {release} the servers ran before (downloadName {name}) reaches them before anything is stopped"
            label = servers[0] if len(servers) == 1 else f"{servers[0]}+{len(servers) - 1}"
            steps.append(
                Step(
                    f"prepare/fetch-installer-{release}/{label}",
                    "prepare",
                    Action.FETCH,
                    tuple(servers),
                    command,
                    why,
                    release,
                    self.judge().verdict,
                )
            )
        if steps:
            self.phases.append(
                Phase("prepare", "Prepare: deliver the old releases' installers", tuple(steps))
            )

    # -- one group ------------------------------------------------------------------------------------

    def go_back(self, group: Group, release: str, *, held: bool = False, wave: int | None = None) -> None:
        phase_id = f"{group.name}@{release}"
        names = tuple(s.name for s in group.servers)
        steps: list[Step] = []

        def add(action: Action, servers: tuple[str, ...], why: str) -> None:
            steps.append(self._step(phase_id, action, servers, why, release))

        def back(servers: tuple[str, ...], first_of_group: bool) -> None:
            add(Action.PURGE, servers, "purge")
            if first_of_group and self._snapshot_for(group):
                add(Action.RESTORE_SNAPSHOT, (servers[0],), "snapshot")
            add(Action.INSTALL, servers, "install")
            add(Action.RESTORE, servers, "restore")

        def up(servers: tuple[str, ...], why: str) -> None:
            if held:
                return
            add(Action.START, servers, "start")
            add(Action.HEALTHY, servers, why)

        if group.topology is Topology.DR:
            primary, secondary = group.primary.name, group.secondary.name
            add(Action.STOP, (primary,), "dr-stop-primary")
            add(Action.STOP, (secondary,), "dr-stop-secondary")
            back((secondary,), True)
            up((secondary,), "dr-secondary-up")
            back((primary,), False)
            up((primary,), "healthy")
        elif group.topology is Topology.HA and len(names) > 1:
            add(Action.STOP, names, "ha-stop")
            first, rest = names[:1], names[1:]
            add(Action.PURGE, names, "purge")
            if self._snapshot_for(group):
                add(Action.RESTORE_SNAPSHOT, first, "snapshot")
            for servers, why in ((first, "ha-first-healthy"), (rest, "healthy")):
                add(Action.INSTALL, servers, "install")
                add(Action.RESTORE, servers, "restore")
                up(servers, why)
        else:
            add(Action.STOP, names, "stop")
            back(names, True)
            up(names, "healthy")
        if held:
            self.held.update(names)
        title = f"{group.label}: back to {release}" + (" (started once main is back)" if held else "")
        self.phases.append(Phase(phase_id, title, tuple(steps), group.name, release, wave))

    def start_held(self, group: Group, release: str) -> None:
        """A host group kept stopped while main was newer than it by two releases or more: started now."""
        self.held.difference_update(s.name for s in group.servers)
        phase_id = f"{group.name}@{release}:start"
        steps = []
        order = (
            [(group.secondary.name,), (group.primary.name,)]
            if group.topology is Topology.DR
            else [tuple(s.name for s in group.servers)]
        )
        for servers in order:
            steps.append(self._step(phase_id, Action.START, servers, "held-start", release))
            why = "held-dr-secondary" if group.topology is Topology.DR and len(steps) == 1 else "healthy"
            steps.append(self._step(phase_id, Action.HEALTHY, servers, why, release))
        self.phases.append(
            Phase(
                phase_id,
                f"{group.label}: start on {release} now that main is back",
                tuple(steps),
                group.name,
                release,
            )
        )

    def _snapshot_for(self, group: Group) -> str | None:
        if self.inv.database != "elasticsearch" or self.release_only_es:
            return None
        return _record(self.facts, group.servers[0].name).es_snapshot

    def _command(self, action: Action, servers: tuple[str, ...], release: str) -> tuple[str, dict[str, str]]:
        """The step's command, and the servers whose own command differs (a restore names each one's archive)."""
        if action is Action.STOP:
            return self._stop, {}
        if action is Action.START:
            return self._start, {}
        if action is Action.HEALTHY:
            return self._health, {}
        if action in (Action.PURGE, Action.INSTALL):
            return self._installer(release, purge=action is Action.PURGE), {}
        if action is Action.RESTORE:
            template = self.inv.commands.restore
            own = {s: restore_command(_record(self.facts, s), template) for s in servers}
            return own[servers[0]], {s: c for s, c in own.items() if s != servers[0]}
        assert action is Action.RESTORE_SNAPSHOT
        record = _record(self.facts, servers[0])
        repository = self.inv.elasticsearch_snapshot_repository
        url = (self.inv.elasticsearch_url or "").rstrip("/")
        return (
            f"POST {url}/_snapshot/{repository}/{record.es_snapshot}/_restore?wait_for_completion=true "
            "(the group's indices closed first; the snapshot API, from this machine)",
            {},
        )

    def _installer(self, release: str, *, purge: bool) -> str:
        """The old release's installer: with `-- -purge` (and `-purge-mount` for a mounted data directory
        under Elasticsearch) to remove the newer release, or as the inventory installs it."""
        installer = self.inv.installer
        flags = list(installer.extra_flags)
        if purge:
            flags = ["-purge", *(["-purge-mount"] if self.inv.database == "elasticsearch" else [])]
        return squash(
            fill(
                self.inv.commands.install,
                installer=installer_path(installer, release),
                target=["-target", installer.target_dir] if installer.target_dir else [],
                flags=flags,
                port=self.inv.communication_port,
                **_PER_SERVER,
            )
        )

    def _step(self, phase: str, action: Action, servers: tuple[str, ...], why: str, release: str) -> Step:
        sets_release = None
        if action is Action.INSTALL:
            for server in servers:
                self.state.set(server, release)
            sets_release = release
        verdict = self._verdict_after(servers, action)
        command, own = self._command(action, servers, release)
        label = servers[0] if len(servers) == 1 else f"{servers[0]}+{len(servers) - 1}"
        return Step(
            f"{phase}/{action.value}/{label}",
            phase,
            action,
            servers,
            command,
            _WHY[why],
            release,
            verdict,
            sets_release,
            own,
        )

    def _verdict_after(self, servers: tuple[str, ...], action: Action) -> SkewVerdict:
        if action is not Action.INSTALL:
            return self.judge().verdict
        group = self.inv.group_of(servers[0])
        if (
            not group.is_main
            and self.inv.releases.distance(self.state.release_of(servers[0]), self.newest_main()) > 1
        ):
            self.held.update(s.name for s in group.servers)  # it stays stopped until main is back
        judgement = self.judge()
        if judgement.verdict is SkewVerdict.UNSUPPORTED:
            raise PlanRefused(
                f"taking {', '.join(servers)} back to {self.state.release_of(servers[0])} would break the skew "
                "rule: "
                + "; ".join(f.reason for f in judgement.faults if f.verdict is SkewVerdict.UNSUPPORTED),
                hint=_hint(judgement.faults),
            )
        self.ever_degraded |= judgement.verdict is SkewVerdict.DEGRADED
        return judgement.verdict

    # -- validate -------------------------------------------------------------------------------------

    def validate_wave(self, wave: int, groups: list[Group]) -> None:
        """Before the next wave, as upgrade's waves: the tenants of this wave's groups answer through main;
        main's health instead when none of them has tenants, or one is kept stopped until main is back."""
        phase_id = f"validate:wave-{wave}"
        tenants = [t.account for g in groups for t in g.tenants]
        stopped = any(s.name in self.held for g in groups for s in g.servers)
        at = (self.state.release_of(self.inv.main.servers[0].name), self.judge().verdict)
        if tenants and not stopped:
            whose = f"{'the tenant' if len(tenants) == 1 else f'the {len(tenants)} tenants'} of wave {wave}"
            step = _tenants_step(self.inv, phase_id, tenants, whose, "validate-wave", *at)
        else:
            step = _main_health_step(self.inv, phase_id, "validate-wave-main", *at)
        what = f"{len(groups)} host group{'' if len(groups) == 1 else 's'}"
        title = f"Validate wave {wave} ({what}) before the next wave goes back"
        self.phases.append(Phase(phase_id, title, (step,), wave=wave))

    def validate(self, verify: Collection[str] = ()) -> None:
        """Main, then every tenant, answer through main; a resume first gates healthy each server in
        `verify` that no phase took back (a rollback whose validation failed is validated again)."""
        at = (self.state.release_of(self.inv.main.servers[0].name), self.judge().verdict)
        touched = {s for p in self.phases for step in p.steps for s in step.servers}
        steps = [
            self._step("validate", Action.HEALTHY, (s.name,), "verify-healthy", self.state.release_of(s.name))
            for s in self.inv.servers
            if s.name in verify and s.name not in touched
        ]
        why = "validate-lb" if self.inv.main.load_balancer else "validate-main"
        steps.append(_main_health_step(self.inv, "validate", why, *at))
        tenants = [t.account for g in self.inv.groups for t in g.tenants]
        if tenants:
            whose = f"{len(tenants)} tenants"
            steps.append(_tenants_step(self.inv, "validate", tenants, whose, "validate-tenants", *at))
        self.phases.append(Phase("validate", "Validate", tuple(steps)))


# -- validation steps: the kind in each id is what the run checks (Step.check), as in upgrade plans ------


def _main_health_step(inv: Inventory, phase: str, why: str, release: str, verdict: SkewVerdict) -> Step:
    """Main's health, as the upgrade checks it: through its load balancer where it has one."""
    main = inv.main
    kind = ValidationKind.LOAD_BALANCER if main.load_balancer else ValidationKind.MAIN
    base = main.load_balancer or f"https://{url_address(main.servers[0].address)}:{inv.communication_port}"
    entry = main.servers[0].name
    return Step(
        f"{phase}/{kind.value}/{entry}",
        phase,
        Action.VALIDATE,
        (entry,),
        f"GET {base}/health",
        _WHY[why],
        release,
        verdict,
        check=kind,
    )


def _tenants_step(
    inv: Inventory, phase: str, tenants: list[str], whose: str, why: str, release: str, verdict: SkewVerdict
) -> Step:
    """Every tenant in `tenants` answers through main."""
    entry = inv.main.servers[0].name
    return Step(
        f"{phase}/{ValidationKind.TENANTS.value}/{entry}",
        phase,
        Action.VALIDATE,
        (entry,),
        f"GET /accounts, then GET /<tenant>/about for {whose} "
        f"({', '.join(tenants[:5])}{', ...' if len(tenants) > 5 else ''})",
        _WHY[why],
        release,
        verdict,
        check=ValidationKind.TENANTS,
    )


def _in_scope(inventory: Inventory, scope: Scope) -> frozenset[str]:
    return frozenset(s.name for g in inventory.groups if scope.covers(g.name, g.is_main) for s in g.servers)


def _hint(faults: tuple[Fault, ...]) -> str:
    if any(f.ahead for f in faults):
        ahead = ", ".join(f.server for f in faults if f.ahead)
        return f"roll the host groups of {ahead} back first (add their --group, or leave out --only main)"
    return "widen the scope so main goes back too"
