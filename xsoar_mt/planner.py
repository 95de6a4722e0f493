"""The planner: from an inventory, the servers' versions and a target, the vendor-ordered plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from xsoar_mt.bulk import without_gc_passes
from xsoar_mt.errors import InvalidInput, PlanRefused, UsageError, named
from xsoar_mt.estimate import Durations, group_downtime
from xsoar_mt.installer import fetch_command, installer_path, upload_check_command
from xsoar_mt.inventory import Group, Inventory, Server, Topology, url_address
from xsoar_mt.plan import (
    Action,
    Basis,
    Phase,
    PhaseKind,
    Plan,
    PlanFacts,
    Scope,
    Skipped,
    Step,
    ValidationKind,
    Waves,
)
from xsoar_mt.releases import Version
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.shellwords import LATER, fill, squash
from xsoar_mt.skew import DEGRADED_FUNCTIONS, FleetState, Judgement, SkewVerdict
from xsoar_mt.waves import WaveSpec, assign, keep, ordered

# Placeholders left in a step's command for the executor to fill in for each of the step's servers.
_PER_SERVER = {"server": LATER, "address": LATER}

_WHY = {
    "backup": "back up before any change (vendor: prepare for the upgrade)",
    "fetch": "every server gets the installer before anything is stopped",
    "main-first": "main is upgraded before any host",
    "single-stop": "the installer refuses to run while the service is up",
    "single-install": "run the installer in multi-tenant mode",
    "start": "start the service (safe if the installer already started it)",
    "healthy": "wait until the service is up and its /health answers",
    "ha-stop": "stop every server of the HA group before the first install",
    "ha-first": "install on one server of the HA group first",
    "ha-first-healthy": "the first server must be up before the others are installed",
    "ha-rest": "then install on the rest of the HA group",
    "dr-stop-primary": "DR: stop the primary first",
    "dr-stop-secondary": "DR: then stop the secondary",
    "dr-secondary": "DR: the secondary is upgraded before the primary",
    "dr-secondary-up": "DR: the secondary must be up while the primary is upgraded",
    "dr-primary": "DR: upgrade the primary once the secondary runs the new release",
    "recover-start": "start a server found down (a failed or interrupted run may have left it so)",
    "recover-healthy": "wait until it answers again",
    "verify-healthy": "every server in scope is up and healthy on its release",
    "validate-lb": "HA: main answers through the load balancer as before",
    "validate-main": "main answers on its communication port",
    "validate-tenants": "every tenant answers through main",
    "validate-wave": "a wave begins only once every tenant of the wave before it answers through main",
    "validate-wave-main": "a wave begins only once main answers after the wave before it",
}


# Enum members looked up once: attribute access on an enum class is slow, and _step runs per step.
_STOP, _INSTALL, _START, _HEALTHY = Action.STOP, Action.INSTALL, Action.START, Action.HEALTHY
_UNSUPPORTED, _DEGRADED = SkewVerdict.UNSUPPORTED, SkewVerdict.DEGRADED
_VALUE = {action: action.value for action in Action}
_PREPARE = PhaseKind.PREPARE


NO_FACTS = PlanFacts()


@dataclass(frozen=True)
class _Stage:
    """Bringing some server groups to one release (main, or the host groups lagging it)."""

    release: str
    groups: tuple[Group, ...]


@without_gc_passes
def plan_upgrade(
    inventory: Inventory,
    versions: Mapping[str, Version],
    target: str,
    scope: Scope = Scope(),
    facts: PlanFacts = NO_FACTS,
    waves: WaveSpec | Waves | None = None,
) -> Plan:
    """The ordered plan that takes the servers in `scope` to `target` without breaking the skew rule.

    `versions` are the servers' current versions (observed, recorded or from the inventory); `facts` what
    else was observed: installers still running (followed, never started again, nothing backed up, fetched
    or stopped around them), servers found down (started again; in a half-upgraded HA group or DR pair the
    upgraded members are started and gated healthy before the next install), backups already taken.
    `waves` splits the host groups of each hop into waves (`--waves`), or keeps the waves a resumed run
    started with: a wave's groups follow each other, and before each wave after the first the groups of
    the wave before it are validated through main.
    Raises PlanRefused when no order keeps the rule, InvalidInput for a bad scope or target.
    """
    line = inventory.releases
    line.index(target)
    check_scope(inventory, scope)
    releases = _current_releases(inventory, versions)
    state = _start_state(inventory, releases, target)
    stages = _stages(inventory, state, target, scope)
    _check_in_flight(inventory, state, stages, facts)
    builder = _Builder(inventory, state, scope, facts)
    builder.recover(stages)
    builder.prepare(stages)
    plan_waves = _plan_waves(inventory, stages, waves)
    for stage in stages:
        builder.upgrade_stage(stage, plan_waves)
    final = state.judge()
    if builder.phases or facts.verify:
        builder.validate(target)
    down_outside = sorted(facts.down - set(builder.touched) - _in_scope(inventory, scope))
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
        hops=tuple(dict.fromkeys(s.release for s in stages)),
        phases=tuple(builder.phases),
        basis=basis,
        skipped=_skipped(inventory, versions, releases, target, scope),
        warnings=_warnings(final, down_outside),
        degraded_functions=DEGRADED_FUNCTIONS if builder.ever_degraded or final.faults else (),
        downtime_minutes=group_downtime(builder.phases, Durations.of(inventory.durations)),
        waves=plan_waves,
    )


def _start_state(inventory: Inventory, releases: Mapping[str, str], target: str) -> FleetState:
    """The fleet's releases before the plan; refused when already unsupported or when main runs a release
    newer than the target (no downgrades)."""
    line = inventory.releases
    state = FleetState(
        {s.name: releases[s.name] for s in inventory.main.servers},
        {s.name: releases[s.name] for g in inventory.hosts for s in g.servers},
        line,
    )
    start = state.judge()
    if start.verdict is SkewVerdict.UNSUPPORTED:
        faults = "; ".join(f.reason for f in start.faults if f.verdict is SkewVerdict.UNSUPPORTED)
        raise PlanRefused(
            f"the deployment is already unsupported ({faults}); xsoar-mt plans only from a supported state",
            hint="bring the lagging hosts within one release of main by hand, then plan again",
        )
    newest_main = line.releases[max(line.index(state.main[s.name]) for s in inventory.main.servers)]
    if line.index(newest_main) > line.index(target):
        raise PlanRefused(
            f"main already runs {newest_main}, newer than the target {target}; xsoar-mt does not downgrade"
        )
    return state


def _warnings(final: Judgement, down_outside: list[str]) -> tuple[str, ...]:
    """What the plan leaves wrong: hosts out of scope lagging main after it, servers out of scope down."""
    warnings: list[str] = []
    if final.verdict is SkewVerdict.DEGRADED:
        lagging = ", ".join(f.server for f in final.faults)
        warnings.append(
            f"after this plan, hosts left out of scope lag main by one release ({lagging}): "
            "some functions do not work until they are upgraded too"
        )
    if down_outside:
        warnings.append(
            f"out of scope and not running: {', '.join(down_outside)} (this plan does not start them)"
        )
    return tuple(warnings)


def _skipped(
    inventory: Inventory,
    versions: Mapping[str, Version],
    releases: Mapping[str, str],
    target: str,
    scope: Scope,
) -> tuple[Skipped, ...]:
    """The servers the plan leaves alone: those on the target already, then those out of scope."""
    skipped = [
        Skipped(s.name, str(versions[s.name]), f"already runs {target}")
        for g in inventory.groups
        if scope.covers(g.name, g.is_main)
        for s in g.servers
        if releases[s.name] == target
    ]
    skipped += [
        Skipped(s.name, str(versions[s.name]), "out of scope")
        for g in inventory.groups
        if not scope.covers(g.name, g.is_main)
        for s in g.servers
    ]
    return tuple(skipped)


def _plan_waves(inventory: Inventory, stages: list[_Stage], waves: WaveSpec | Waves | None) -> Waves | None:
    """Each host group the plan upgrades, in its wave; a resumed run's waves kept as they were."""
    if waves is None:
        return None
    upgraded = {g.name for stage in stages for g in stage.groups if not g.is_main}
    groups = [g for g in inventory.hosts if g.name in upgraded]
    if isinstance(waves, Waves):
        return Waves(waves.spec, keep(groups, waves.groups))
    if not groups:  # no host group to upgrade (--only main, or the hosts are done): nothing to split
        return None
    return Waves(str(waves), assign(groups, waves))


def check_scope(inventory: Inventory, scope: Scope) -> None:
    """Every --group names a host group of the inventory (a usage error otherwise, before any server is
    contacted), with the likely one: a close name, or the group of a server named instead of its group."""
    known = [g.name for g in inventory.hosts]
    for name in scope.groups or ():
        if name not in known:
            raise UsageError(
                f"--group {named(name)}: no such host group (known: {', '.join(known) or 'none'})",
                hint=_likely_group(inventory, name),
            )
    if not scope.main and scope.groups == ():
        raise UsageError("the scope is empty: give --only main, --group NAME, or neither for everything")


def _likely_group(inventory: Inventory, name: str) -> str | None:
    import difflib

    for group in inventory.groups:
        if name in {s.name for s in group.servers}:
            if group.is_main:
                return f"{name} is a server of main: use --only main"
            return f"{name} is a server of group {group.name}: use --group {group.name}"
    if name == "main":
        return "main is not a host group: use --only main"
    close = difflib.get_close_matches(name, [g.name for g in inventory.hosts], n=1, cutoff=0.6)
    return f"did you mean --group {close[0]}?" if close else None


def _in_scope(inventory: Inventory, scope: Scope) -> set[str]:
    return {s.name for g in inventory.groups if scope.covers(g.name, g.is_main) for s in g.servers}


def _check_in_flight(inventory: Inventory, state: FleetState, stages: list[_Stage], facts: PlanFacts) -> None:
    """An installer still running must be the install the plan needs next on that server; it is followed."""
    for server, release in facts.in_flight.items():
        group = inventory.group_of(server)
        first = next(
            (s.release for s in stages if group in s.groups and _below(inventory, state, server, s.release)),
            None,
        )
        if first != release:
            needed = f"the plan needs {first} there first" if first else "the plan installs nothing there"
            raise PlanRefused(
                f"{server} is still installing {release}, but {needed}",
                hint=f"let the installer on {server} finish, then plan again",
            )


def _below(inventory: Inventory, state: FleetState, server: str, release: str) -> bool:
    index = inventory.releases.index
    return index(state.release_of(server)) < index(release)


def _current_releases(inventory: Inventory, versions: Mapping[str, Version]) -> dict[str, str]:
    missing = [s.name for s in inventory.servers if s.name not in versions]
    if missing:
        raise InvalidInput(
            f"no version known for {', '.join(missing)}: set `version:` in the inventory or probe the servers"
        )
    out: dict[str, str] = {}
    for server in inventory.servers:
        release = versions[server.name].release
        inventory.releases.index(release)
        out[server.name] = release
    return out


def _stages(inventory: Inventory, state: FleetState, target: str, scope: Scope) -> list[_Stage]:
    """One-release hops: hosts catch up with main, main moves one release, and again, up to target."""
    line = inventory.releases
    hosts = [g for g in inventory.hosts if scope.covers(g.name, False)]
    main_release = line.releases[max(line.index(state.main[s.name]) for s in inventory.main.servers)]
    stages: list[_Stage] = []

    def behind(group: Group, release: str) -> bool:
        return any(line.index(state.release_of(s.name)) < line.index(release) for s in group.servers)

    if scope.main and behind(inventory.main, main_release):  # a main left half-upgraded
        stages.append(_Stage(main_release, (inventory.main,)))
    release = main_release
    while True:
        lagging = tuple(g for g in hosts if behind(g, release))
        if lagging:
            stages.append(_Stage(release, lagging))
        if release == target:
            return stages
        if not scope.main:
            raise PlanRefused(
                f"main runs {main_release}: hosts cannot be upgraded past main to {target}",
                hint=f"upgrade main first (--only main), or plan hosts to --to {main_release}",
            )
        release = line.next(release)
        stages.append(_Stage(release, (inventory.main,)))


class _Builder:
    """Turns stages into phases and steps, tracking the fleet's versions and verdict step by step."""

    def __init__(self, inventory: Inventory, state: FleetState, scope: Scope, facts: PlanFacts) -> None:
        self.inv = inventory
        self.state = state
        self.scope = scope
        self.facts = facts
        self.phases: list[Phase] = []
        self.touched: dict[str, None] = {}  # servers some group phase of the plan starts or gates
        self.verdict = state.verdict()
        self.ever_degraded = self.verdict is not SkewVerdict.OK
        cmds = inventory.commands
        self._health = health_command(inventory)
        # Commands are the same for every group of a release: format each once, not once per step.
        self._stop = fill(cmds.stop, **_PER_SERVER)
        self._start = fill(cmds.start, **_PER_SERVER)
        self._installs: dict[str, str] = {}
        self._fetches: dict[str, str] = {}
        self._commands: dict[str, dict[Action, str]] = {}  # each action's command, per release

    # -- prepare ----------------------------------------------------------------------------------

    def recover(self, stages: list[_Stage]) -> None:
        """Start, first, the servers in scope found down that no group phase of this plan will start."""
        planned = {s.name for st in stages for g in st.groups for s in g.servers}
        in_scope = _in_scope(self.inv, self.scope)
        down = [s.name for s in self.inv.servers if s.name in self.facts.down and s.name in in_scope]
        todo = [name for name in down if name not in planned]
        if not todo:
            return
        steps: list[Step] = []
        for name in todo:
            release = self.state.release_of(name)
            steps.append(self._step("recover", Action.START, (name,), self._start, "recover-start", release))
            steps.append(
                self._step("recover", Action.HEALTHY, (name,), self._health, "recover-healthy", release)
            )
            self.touched[name] = None
        self.phases.append(Phase("recover", "Recover: start servers found down", tuple(steps)))

    def prepare(self, stages: list[_Stage]) -> None:
        steps: list[Step] = []
        backed_up: set[str] = set()
        cmds = self.inv.commands
        earlier = self.facts.backed_up
        backups: dict[str, str] = {}  # the backup command of each release: filled once, not per group
        for stage in stages:
            for group in stage.groups:
                todo = self._todo(group, stage.release)
                # A server whose installer for this release still runs keeps its file: no fetch, no backup.
                names = tuple(s.name for s in todo if self.facts.in_flight.get(s.name) != stage.release)
                fresh = tuple(
                    n for n in names if n not in backed_up and stage.release not in earlier.get(n, ())
                )
                backed_up.update(n for n in names)
                if fresh and cmds.backup:
                    # Named after the first release these servers move to: the backup holds what ran before it.
                    backup = backups.get(stage.release) or backups.setdefault(
                        stage.release,
                        fill(
                            cmds.backup,
                            backup_dir=RemotePaths.of(self.inv).backup_dir,
                            version=stage.release,
                            stamp=LATER,
                            **_PER_SERVER,
                        ),
                    )
                    steps.append(self._step("prepare", Action.BACKUP, fresh, backup, "backup", stage.release))
                if names:
                    fetch = self._fetch_command(stage.release)
                    steps.append(self._step("prepare", Action.FETCH, names, fetch, "fetch", stage.release))
        if steps:
            self.phases.append(Phase("prepare", "Prepare: back up and deliver installers", tuple(steps)))

    # -- upgrading one group ------------------------------------------------------------------------

    def _todo(self, group: Group, release: str) -> list[Server]:
        """The group's servers still below `release`, as the plan so far leaves them."""
        index, release_of = self.inv.releases.index, self.state.release_of
        goal = index(release)
        return [s for s in group.servers if index(release_of(s.name)) < goal]

    def upgrade_stage(self, stage: _Stage, waves: Waves | None) -> None:
        """The stage's groups in turn; with waves, wave by wave, each after the validation of the one before."""
        if waves is None or stage.groups[0].is_main:
            for group in stage.groups:
                self.upgrade_group(group, stage.release)
            return
        place = {g.name: i for i, g in enumerate(ordered(self.inv.hosts))}
        numbers = sorted(set(waves.groups.values()))
        current = None
        for group in sorted(stage.groups, key=lambda g: (waves.groups[g.name], place[g.name])):
            wave = waves.groups[group.name]
            if wave != current:
                before = [n for n in numbers if n < wave]
                if before:
                    self.validate_wave(before[-1], waves.members(before[-1]), stage.release)
                current = wave
            self.upgrade_group(group, stage.release, wave)

    def upgrade_group(self, group: Group, release: str, wave: int | None = None) -> None:
        todo = self._todo(group, release)
        if not todo:
            return
        names = tuple(s.name for s in todo)
        done = tuple(s.name for s in group.servers if s.name not in names)
        phase_id = f"{group.name}@{release}"  # main's group is always named main
        commands = self._commands.get(release) or self._commands.setdefault(
            release,
            {
                _STOP: self._stop,
                _START: self._start,
                _INSTALL: self._install_command(release),
                _HEALTHY: self._health,
            },
        )
        pattern = _pattern(group, names, done, self.facts)
        steps = [
            self._step(phase_id, action, servers, commands[action], why, release)
            for action, servers, why in pattern
            if servers
        ]
        self.touched.update(dict.fromkeys(s.name for s in group.servers))
        title = f"{group.label}: to {release}"
        self.phases.append(Phase(phase_id, title, tuple(steps), group.name, release, wave))

    def _install_command(self, release: str) -> str:
        if release not in self._installs:
            self._installs[release] = install_command(self.inv, release, self.inv.installer.target_dir)
        return self._installs[release]

    def _fetch_command(self, release: str) -> str:
        if release not in self._fetches:
            installer = self.inv.installer
            self._fetches[release] = (
                upload_check_command(installer, release)
                if installer.delivery == "upload"
                else fetch_command(installer, release)
            )
        return self._fetches[release]

    def _step(
        self,
        phase: str,
        action: Action,
        servers: tuple[str, ...],
        command: str,
        why: str,
        release: str,
        check: ValidationKind | None = None,
    ) -> Step:
        sets_release = None
        if action is _INSTALL:
            for server in servers:
                self.state.set(server, release)
            sets_release = release
            self.verdict = self.state.verdict()
            if self.verdict is _UNSUPPORTED:
                raise PlanRefused(
                    f"installing {release} on {', '.join(servers)} would leave the deployment unsupported: "
                    + "; ".join(
                        f.reason for f in self.state.judge().faults if f.verdict is SkewVerdict.UNSUPPORTED
                    ),
                    hint="widen the scope so those hosts are upgraded too, or choose a nearer target",
                )
            self.ever_degraded |= self.verdict is _DEGRADED
        label = servers[0] if len(servers) == 1 else f"{servers[0]}+{len(servers) - 1}"
        kind = check or (f"{_VALUE[action]}-{release}" if phase == _PREPARE else _VALUE[action])
        step_id = f"{phase}/{kind}/{label}"  # a validation step's kind in its id: what a saved plan holds
        why_text, verdict = _WHY[why], self.verdict
        return Step(
            step_id, phase, action, servers, command, why_text, release, verdict, sets_release, check=check
        )

    def _order(self, name: str) -> int:
        return [s.name for s in self.inv.servers].index(name)

    # -- validate -----------------------------------------------------------------------------------

    def validate_wave(self, wave: int, groups: tuple[str, ...], release: str) -> None:
        """Before the next wave: the tenants of `groups` (wave `wave`) answer through main on `release`; with
        no tenant in them, main answers."""
        entry = self.inv.main.servers[0].name
        phase_id = f"validate:wave-{wave}@{release}"
        tenants = [t.account for name in groups for t in self.inv.group(name).tenants]
        if tenants:
            step = self._step(
                phase_id,
                Action.VALIDATE,
                (entry,),
                f"GET /accounts, then GET /<tenant>/about for "
                f"{'the tenant' if len(tenants) == 1 else f'the {len(tenants)} tenants'} of wave {wave} "
                f"({', '.join(tenants[:5])}{', ...' if len(tenants) > 5 else ''})",
                "validate-wave",
                release,
                ValidationKind.TENANTS,
            )
        else:
            step = self._step(
                phase_id,
                Action.VALIDATE,
                (entry,),
                f"GET {self._main_health_url()}",
                "validate-wave-main",
                release,
                ValidationKind.LOAD_BALANCER if self.inv.main.load_balancer else ValidationKind.MAIN,
            )
        what = f"{len(groups)} host group{'' if len(groups) == 1 else 's'}"
        title = f"Validate wave {wave} ({what}) on {release} before the next wave"
        self.phases.append(Phase(phase_id, title, (step,), wave=wave))

    def _main_health_url(self) -> str:
        """Where validation asks main for its health: the load balancer, else main's first server."""
        main = self.inv.main
        base = (
            main.load_balancer
            or f"https://{url_address(main.servers[0].address)}:{self.inv.communication_port}"
        )
        return f"{base}/health"

    def validate(self, target: str) -> None:
        main = self.inv.main
        entry = main.servers[0].name
        steps: list[Step] = []
        if self.facts.verify:  # a resume checks every server in scope, not only those it worked on
            for name in sorted(_in_scope(self.inv, self.scope) - set(self.touched), key=self._order):
                release = self.state.release_of(name)
                steps.append(
                    self._step("validate", _HEALTHY, (name,), self._health, "verify-healthy", release)
                )
        if main.load_balancer:
            steps.append(
                self._step(
                    "validate",
                    Action.VALIDATE,
                    (entry,),
                    f"GET {self._main_health_url()}",
                    "validate-lb",
                    target,
                    ValidationKind.LOAD_BALANCER,
                )
            )
        else:
            steps.append(
                self._step(
                    "validate",
                    Action.VALIDATE,
                    (entry,),
                    f"GET {self._main_health_url()}",
                    "validate-main",
                    target,
                    ValidationKind.MAIN,
                )
            )
        tenants = [t.account for g in self.inv.groups for t in g.tenants]
        if tenants:
            steps.append(
                self._step(
                    "validate",
                    Action.VALIDATE,
                    (entry,),
                    f"GET /accounts, then GET /<tenant>/about for {len(tenants)} "
                    f"tenant{'' if len(tenants) == 1 else 's'} "
                    f"({', '.join(tenants[:5])}{', ...' if len(tenants) > 5 else ''})",
                    "validate-tenants",
                    target,
                    ValidationKind.TENANTS,
                )
            )
        self.phases.append(Phase("validate", "Validate", tuple(steps)))


_Pattern = list[tuple[Action, tuple[str, ...], str]]


def _pattern(
    group: Group, names: tuple[str, ...], done: tuple[str, ...] = (), facts: PlanFacts = NO_FACTS
) -> _Pattern:
    """The vendor's order for one group: (action, servers, why) in sequence.

    `names` are the servers still to install, `done` the group's servers already on the release (a group
    a failed run left half-upgraded): those are started if down and gated healthy before the next install.
    A server whose installer still runs is not stopped again: its install step follows that installer.
    """
    if group.topology is Topology.DR and (len(names) == 2 or done):
        return _dr_pattern(group, names, facts)
    if group.topology is Topology.HA and done:
        # Some servers run the release already: the rest are stopped (no mixed versions running together),
        # those are brought up and healthy, then the rest are installed together.
        return [
            (_STOP, _stoppable(names, facts), "ha-stop"),
            *_gate(done, "ha-first-healthy", facts),
            (_INSTALL, names, "ha-rest"),
            (_START, names, "start"),
            (_HEALTHY, names, "healthy"),
        ]
    if group.topology is Topology.HA and len(names) > 1:
        return _ha_pattern(names, facts)
    return [
        (_STOP, _stoppable(names, facts), "single-stop"),
        (_INSTALL, names, "main-first" if group.is_main else "single-install"),
        (_START, names, "start"),
        (_HEALTHY, names, "healthy"),
    ]


def _stoppable(servers: tuple[str, ...], facts: PlanFacts) -> tuple[str, ...]:
    """The servers to stop: all but those whose installer still runs."""
    return tuple(s for s in servers if s not in facts.in_flight)


def _gate(servers: tuple[str, ...], why: str, facts: PlanFacts) -> _Pattern:
    """Start those of `servers` found down, then wait until all of them are healthy."""
    down = tuple(s for s in servers if s in facts.down)
    return [(_START, down, why), (_HEALTHY, servers, why)]


def _dr_pattern(group: Group, names: tuple[str, ...], facts: PlanFacts) -> _Pattern:
    """A DR pair: the secondary before the primary; an upgraded secondary is up before the primary goes."""
    primary, secondary = group.primary.name, group.secondary.name
    if len(names) == 2:
        return [
            (_STOP, _stoppable((primary,), facts), "dr-stop-primary"),
            (_STOP, _stoppable((secondary,), facts), "dr-stop-secondary"),
            (_INSTALL, (secondary,), "dr-secondary"),
            (_START, (secondary,), "dr-secondary-up"),
            (_HEALTHY, (secondary,), "dr-secondary-up"),
            (_INSTALL, (primary,), "dr-primary"),
            (_START, (primary,), "start"),
            (_HEALTHY, (primary,), "healthy"),
        ]
    if names == (primary,):  # the secondary is upgraded already: it must be up before the primary
        return [
            *_gate((secondary,), "dr-secondary-up", facts),
            (_STOP, _stoppable((primary,), facts), "dr-stop-primary"),
            (_INSTALL, (primary,), "dr-primary"),
            (_START, (primary,), "start"),
            (_HEALTHY, (primary,), "healthy"),
        ]
    return [  # only the secondary is behind (upgraded out of order by hand): the primary is left alone
        (_STOP, _stoppable((secondary,), facts), "dr-stop-secondary"),
        (_INSTALL, (secondary,), "dr-secondary"),
        (_START, (secondary,), "dr-secondary-up"),
        (_HEALTHY, (secondary,), "dr-secondary-up"),
    ]


def _ha_pattern(names: tuple[str, ...], facts: PlanFacts) -> _Pattern:
    """An HA group, none of it upgraded yet: all stopped, one installed and healthy first, then the rest."""
    first, rest = names[:1], names[1:]
    in_flight = [n for n in names if n in facts.in_flight]
    if in_flight:  # the installer still running is the one to follow first
        first = (in_flight[0],)
        rest = tuple(n for n in names if n != in_flight[0])
    return [
        (_STOP, _stoppable(names, facts), "ha-stop"),
        (_INSTALL, first, "ha-first"),
        (_START, first, "start"),
        (_HEALTHY, first, "ha-first-healthy"),
        (_INSTALL, rest, "ha-rest"),
        (_START, rest, "start"),
        (_HEALTHY, rest, "healthy"),
    ]


def health_command(inventory: Inventory) -> str:
    """The wait-healthy command: the service's status, then its /health (per server: {server}, {address})."""
    cmds = inventory.commands
    status = fill(cmds.status, **_PER_SERVER)
    return squash(f"{status} && {fill(cmds.health, port=inventory.communication_port, address=LATER)}")


def install_command(inventory: Inventory, release: str, target_dir: str | None) -> str:
    """The install command for `release`; `-target DIR` (the vendor wants it before any other flag) when
    the installer must not extract itself to /tmp."""
    installer = inventory.installer
    return squash(
        fill(
            inventory.commands.install,
            installer=installer_path(installer, release),
            target=["-target", target_dir] if target_dir else [],
            flags=installer.extra_flags,
            port=inventory.communication_port,
            **_PER_SERVER,
        )
    )


def with_extract_dirs(plan: Plan, inventory: Inventory, extract_dirs: Mapping[str, str]) -> Plan:
    """The plan with `-target DIR` added to the install command of each server in `extract_dirs`
    (servers where preflight found /tmp mounted noexec); those servers get a command of their own."""
    if not extract_dirs:
        return plan
    phases = []
    for phase in plan.phases:
        steps = []
        for step in phase.steps:
            affected = [s for s in step.servers if s in extract_dirs]
            if step.action is _INSTALL and affected:
                own = {s: install_command(inventory, step.release, extract_dirs[s]) for s in affected}
                step = replace(step, per_server={**step.per_server, **own})
            steps.append(step)
        phases.append(replace(phase, steps=tuple(steps)))
    return replace(plan, phases=tuple(phases))
