"""The planner: from an inventory, the servers' versions and a target, the vendor-ordered plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from xsoar_mt.errors import InvalidInput, PlanRefused, UsageError, named
from xsoar_mt.installer import fetch_command, installer_path, upload_check_command
from xsoar_mt.inventory import Group, Inventory, Server, Topology, url_address
from xsoar_mt.plan import Action, Basis, Phase, Plan, Scope, Skipped, Step
from xsoar_mt.releases import Version
from xsoar_mt.shellwords import LATER, fill, squash
from xsoar_mt.skew import DEGRADED_FUNCTIONS, FleetState, Verdict

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
    "validate-lb": "HA: main answers through the load balancer as before",
    "validate-main": "main answers on its communication port",
    "validate-tenants": "every tenant answers through main",
}


# Enum members looked up once: attribute access on an enum class is slow, and _step runs per step.
_STOP, _INSTALL, _START, _HEALTHY = Action.STOP, Action.INSTALL, Action.START, Action.HEALTHY
_UNSUPPORTED, _DEGRADED = Verdict.UNSUPPORTED, Verdict.DEGRADED
_VALUE = {action: action.value for action in Action}


@dataclass(frozen=True)
class _Wave:
    """Bringing some server groups to one release."""

    release: str
    groups: tuple[Group, ...]


def plan_upgrade(
    inventory: Inventory,
    versions: Mapping[str, Version],
    target: str,
    scope: Scope = Scope(),
) -> Plan:
    """The ordered plan that takes the servers in `scope` to `target` without breaking the skew rule.

    `versions` are the servers' current versions (from the inventory, or probed). Raises PlanRefused
    when no order keeps the rule, InvalidInput for a bad scope or target.
    """
    line = inventory.releases
    line.index(target)
    _check_scope(inventory, scope)
    releases = _current_releases(inventory, versions)
    state = FleetState(
        {s.name: releases[s.name] for s in inventory.main.servers},
        {s.name: releases[s.name] for g in inventory.hosts for s in g.servers},
        line,
    )
    start = state.judge()
    if start.verdict is Verdict.UNSUPPORTED:
        faults = "; ".join(f.reason for f in start.faults if f.verdict is Verdict.UNSUPPORTED)
        raise PlanRefused(
            f"the deployment is already unsupported ({faults}); xsoar-mt plans only from a supported state",
            hint="bring the lagging hosts within one release of main by hand, then plan again",
        )
    newest_main = line.releases[max(line.index(state.main[s.name]) for s in inventory.main.servers)]
    if line.index(newest_main) > line.index(target):
        raise PlanRefused(
            f"main already runs {newest_main}, newer than the target {target}; xsoar-mt does not downgrade"
        )

    waves = _waves(inventory, state, target, scope)
    builder = _Builder(inventory, state, scope)
    builder.prepare(waves, versions)
    for wave in waves:
        for group in wave.groups:
            builder.upgrade_group(group, wave.release)
    final = state.judge()
    warnings: list[str] = []
    if final.verdict is Verdict.DEGRADED:
        lagging = ", ".join(f.server for f in final.faults)
        warnings.append(
            f"after this plan, hosts left out of scope lag main by one release ({lagging}): "
            "some functions do not work until they are upgraded too"
        )
    if builder.phases:
        builder.validate(target)
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
        hops=tuple(dict.fromkeys(w.release for w in waves)),
        phases=tuple(builder.phases),
        basis=basis,
        skipped=tuple(skipped),
        warnings=tuple(warnings),
        degraded_functions=DEGRADED_FUNCTIONS if builder.ever_degraded or final.faults else (),
        downtime_minutes=_downtime(inventory, waves),
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
    out: dict[str, str] = {}
    for server in inventory.servers:
        release = versions[server.name].release
        inventory.releases.index(release)
        out[server.name] = release
    return out


def _waves(inventory: Inventory, state: FleetState, target: str, scope: Scope) -> list[_Wave]:
    """One-release hops: hosts catch up with main, main moves one release, and again, up to target."""
    line = inventory.releases
    hosts = [g for g in inventory.hosts if scope.covers(g.name, False)]
    main_release = line.releases[max(line.index(state.main[s.name]) for s in inventory.main.servers)]
    waves: list[_Wave] = []

    def behind(group: Group, release: str) -> bool:
        return any(line.index(state.release_of(s.name)) < line.index(release) for s in group.servers)

    if scope.main and behind(inventory.main, main_release):  # a main left half-upgraded
        waves.append(_Wave(main_release, (inventory.main,)))
    release = main_release
    while True:
        lagging = tuple(g for g in hosts if behind(g, release))
        if lagging:
            waves.append(_Wave(release, lagging))
        if release == target:
            return waves
        if not scope.main:
            raise PlanRefused(
                f"main runs {main_release}: hosts cannot be upgraded past main to {target}",
                hint=f"upgrade main first (--only main), or plan hosts to --to {main_release}",
            )
        release = line.next(release)
        waves.append(_Wave(release, (inventory.main,)))


class _Builder:
    """Turns waves into phases and steps, tracking the fleet's versions and verdict step by step."""

    def __init__(self, inventory: Inventory, state: FleetState, scope: Scope) -> None:
        self.inv = inventory
        self.state = state
        self.scope = scope
        self.phases: list[Phase] = []
        self.verdict = state.verdict()
        self.ever_degraded = self.verdict is not Verdict.OK
        cmds = inventory.commands
        self._health = health_command(inventory)
        # Commands are the same for every group of a release: format each once, not once per step.
        self._stop = fill(cmds.stop, **_PER_SERVER)
        self._start = fill(cmds.start, **_PER_SERVER)
        self._installs: dict[str, str] = {}
        self._fetches: dict[str, str] = {}

    # -- prepare ----------------------------------------------------------------------------------

    def prepare(self, waves: list[_Wave], versions: Mapping[str, Version]) -> None:
        steps: list[Step] = []
        backed_up: set[str] = set()
        cmds = self.inv.commands
        for wave in waves:
            for group in wave.groups:
                todo = self._todo(group, wave.release)
                names = tuple(s.name for s in todo)
                fresh = tuple(n for n in names if n not in backed_up)
                if fresh and cmds.backup:
                    # Named after the first release these servers move to: the backup holds what ran before it.
                    backup = fill(
                        cmds.backup, backup_dir=cmds.backup_dir, version=wave.release, **_PER_SERVER
                    )
                    steps.append(self._step("prepare", Action.BACKUP, fresh, backup, "backup", wave.release))
                    backed_up.update(fresh)
                fetch = self._fetch_command(wave.release)
                steps.append(self._step("prepare", Action.FETCH, names, fetch, "fetch", wave.release))
        if steps:
            self.phases.append(Phase("prepare", "Prepare: back up and deliver installers", tuple(steps)))

    # -- upgrading one group ------------------------------------------------------------------------

    def _todo(self, group: Group, release: str) -> list[Server]:
        """The group's servers still below `release`, as the plan so far leaves them."""
        index, release_of = self.inv.releases.index, self.state.release_of
        goal = index(release)
        return [s for s in group.servers if index(release_of(s.name)) < goal]

    def upgrade_group(self, group: Group, release: str) -> None:
        todo = self._todo(group, release)
        if not todo:
            return
        phase_id = f"{'main' if group.is_main else group.name}@{release}"
        commands = {
            _STOP: self._stop,
            _START: self._start,
            _INSTALL: self._install_command(release),
            _HEALTHY: self._health,
        }
        steps = [
            self._step(phase_id, action, servers, commands[action], why, release)
            for action, servers, why in _pattern(group, tuple(s.name for s in todo))
        ]
        title = f"{group.label}: to {release}"
        self.phases.append(Phase(phase_id, title, tuple(steps), group.name, release))

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
        name: str | None = None,
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
                        f.reason for f in self.state.judge().faults if f.verdict is Verdict.UNSUPPORTED
                    ),
                    hint="widen the scope so those hosts are upgraded too, or choose a nearer target",
                )
            self.ever_degraded |= self.verdict is _DEGRADED
        label = servers[0] if len(servers) == 1 else f"{servers[0]}+{len(servers) - 1}"
        kind = name or (f"{_VALUE[action]}-{release}" if phase == "prepare" else _VALUE[action])
        step_id = f"{phase}/{kind}/{label}"
        return Step(step_id, phase, action, servers, command, _WHY[why], release, self.verdict, sets_release)

    # -- validate -----------------------------------------------------------------------------------

    def validate(self, target: str) -> None:
        main = self.inv.main
        entry = main.servers[0].name
        port = self.inv.communication_port
        steps: list[Step] = []
        if main.load_balancer:
            steps.append(
                self._step(
                    "validate",
                    Action.VALIDATE,
                    (entry,),
                    f"GET {main.load_balancer}/health",
                    "validate-lb",
                    target,
                    "load-balancer",
                )
            )
        else:
            steps.append(
                self._step(
                    "validate",
                    Action.VALIDATE,
                    (entry,),
                    f"GET https://{url_address(main.servers[0].address)}:{port}/health",
                    "validate-main",
                    target,
                    "main",
                )
            )
        tenants = [t.account for g in self.inv.groups for t in g.tenants]
        if tenants:
            steps.append(
                self._step(
                    "validate",
                    Action.VALIDATE,
                    (entry,),
                    f"GET /accounts, then GET /<tenant>/about for {len(tenants)} tenants "
                    f"({', '.join(tenants[:5])}{', ...' if len(tenants) > 5 else ''})",
                    "validate-tenants",
                    target,
                    "tenants",
                )
            )
        self.phases.append(Phase("validate", "Validate", tuple(steps)))


def _pattern(group: Group, names: tuple[str, ...]) -> list[tuple[Action, tuple[str, ...], str]]:
    """The vendor's order for one group: (action, servers, why) in sequence."""
    if group.topology is Topology.DR and len(names) == 2:
        primary, secondary = (group.primary.name,), (group.secondary.name,)
        return [
            (_STOP, primary, "dr-stop-primary"),
            (_STOP, secondary, "dr-stop-secondary"),
            (_INSTALL, secondary, "dr-secondary"),
            (_START, secondary, "dr-secondary-up"),
            (_HEALTHY, secondary, "dr-secondary-up"),
            (_INSTALL, primary, "dr-primary"),
            (_START, primary, "start"),
            (_HEALTHY, primary, "healthy"),
        ]
    if group.topology is Topology.HA and len(names) > 1:
        first, rest = names[:1], names[1:]
        return [
            (_STOP, names, "ha-stop"),
            (_INSTALL, first, "ha-first"),
            (_START, first, "start"),
            (_HEALTHY, first, "ha-first-healthy"),
            (_INSTALL, rest, "ha-rest"),
            (_START, rest, "start"),
            (_HEALTHY, rest, "healthy"),
        ]
    return [
        (_STOP, names, "single-stop"),
        (_INSTALL, names, "main-first" if group.is_main else "single-install"),
        (_START, names, "start"),
        (_HEALTHY, names, "healthy"),
    ]


def _downtime(inventory: Inventory, waves: list[_Wave]) -> dict[str, float]:
    """Expected minutes each server group is down, when the inventory gives durations."""
    per_hop = sum(inventory.durations.get(k, 0.0) for k in ("stop", "install", "start", "healthy"))
    if not per_hop:
        return {}
    out: dict[str, float] = {}
    for wave in waves:
        for group in wave.groups:
            out[group.name] = out.get(group.name, 0.0) + per_hop
    return out


def health_command(inventory: Inventory) -> str:
    """The wait-healthy command: the service's status, then its /health (per server: {server}, {address})."""
    cmds = inventory.commands
    status = fill(cmds.status, **_PER_SERVER)
    return squash(f"{status} && {fill(cmds.health, port=inventory.communication_port, address=LATER)}")


def recovery_phase(inventory: Inventory, stopped: list[str], release: str) -> Phase:
    """Start servers that a failed run left stopped and that the plan will not install again."""
    health = health_command(inventory)
    start = fill(inventory.commands.start, **_PER_SERVER)
    steps: list[Step] = []
    for name in stopped:
        for action, command, why in (
            (Action.START, start, "start a server a failed run left stopped"),
            (Action.HEALTHY, health, "wait until it answers again"),
        ):
            steps.append(
                Step(f"recover/{action.value}/{name}", "recover", action, (name,), command, why, release)
            )
    return Phase("recover", "Recover: start servers left stopped", tuple(steps))


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
