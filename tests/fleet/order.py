"""The order checker: every violation of the vendor's upgrade rules in a fleet event log (pure).

``check_order(events, spec)`` replays the log (``Fleet.events()``: baseline events first, then stop,
start, start_failed, install_begin/end/failed/refused, health (each /health answer, with its status),
...) over the topology in the spec and returns one ``Violation`` per broken rule occurrence:

- ``install-while-running``: an install began (or was refused for that reason) while the server's
  service ran;
- ``main-before-hosts``: a host install to release R began while a main server was below R
  (every main install of the hop must have ended first);
- ``ha-stopped-before-install``: the first install of a hop in an HA group (main or host) began while
  a server of that group still ran;
- ``ha-first-healthy``: a server of an HA group began installing release R while another server of
  the group was already on R but none of those had answered /health with 200 since it last started
  (the vendor: install one server, and once it is up and running, the others);
- ``ha-mixed-versions``: servers of one HA group ran at the same time on different versions;
- ``dr-secondary-first``: a DR primary's install began before its secondary was installed to that
  release and started again;
- ``version-skew``: at some moment a host was more than one release behind main (main judged by its
  highest server) or ahead of main (judged by its lowest). Skew already present in the baseline is
  not reported; only skew that a later event creates.

Servers not in the spec are ignored. Versions outside the release list are not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fleet.spec import DeploymentSpec, FleetSpec, GroupSpec, release_of

RULES = (
    "install-while-running",
    "main-before-hosts",
    "ha-stopped-before-install",
    "ha-first-healthy",
    "ha-mixed-versions",
    "dr-secondary-first",
    "version-skew",
)


@dataclass(frozen=True)
class Violation:
    rule: str
    servers: tuple[str, ...]
    index: int  # position of the offending event in the log
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] event {self.index}: {self.message}"


@dataclass(frozen=True)
class _Place:
    deployment: DeploymentSpec
    group: GroupSpec
    role: str  # main | host


def check_order(
    events: Sequence[Mapping[str, Any]],
    spec: FleetSpec | DeploymentSpec,
    releases: Sequence[str] | None = None,
) -> list[Violation]:
    """Every violation of the vendor's rules in ``events``, in log order."""
    deployments = spec.deployments if isinstance(spec, FleetSpec) else (spec,)
    if releases is None:
        releases = spec.releases if isinstance(spec, FleetSpec) else FleetSpec(()).releases
    order = {release: index for index, release in enumerate(releases)}
    places: dict[str, _Place] = {}
    version: dict[str, str] = {}
    running: dict[str, bool] = {}
    healthy: dict[str, bool] = {}  # answered /health with 200 since it last started (the baseline: no)
    for deployment in deployments:
        for group in deployment.groups:
            role = "main" if group is deployment.main else "host"
            for server in group.servers:
                places[server.name] = _Place(deployment, group, role)
                version[server.name] = server.version
                running[server.name] = True
                healthy[server.name] = False

    def rank(name: str) -> int | None:
        return order.get(release_of(version[name]))

    found: list[Violation] = []
    hops_started: set[tuple[str, str, str]] = set()  # (deployment, group, release)
    skew_active: set[tuple[str, str]] = set()

    def flag(rule: str, servers: Iterable[str], index: int, message: str) -> None:
        found.append(Violation(rule, tuple(servers), index, message))

    def skew(deployment: DeploymentSpec, index: int | None) -> None:
        mains = [rank(s.name) for s in deployment.main.servers]
        if any(r is None for r in mains):
            return
        high, low = max(mains), min(mains)  # type: ignore[type-var]  # None excluded above
        for group in deployment.hosts:
            for server in group.servers:
                own = rank(server.name)
                if own is None:
                    continue
                for kind, bad in (("behind", high - own > 1), ("ahead", own > low)):
                    key = (server.name, kind)
                    if not bad:
                        skew_active.discard(key)
                    elif key not in skew_active:
                        skew_active.add(key)
                        if index is not None:
                            main_version = ", ".join(version[s.name] for s in deployment.main.servers)
                            flag(
                                "version-skew",
                                [server.name],
                                index,
                                f"host {server.name} on {version[server.name]} is {kind} main "
                                f"({main_version}) by more than the vendor supports",
                            )

    def mixed(group: GroupSpec, index: int) -> None:
        if group.kind != "ha":
            return
        live = {s.name: version[s.name] for s in group.servers if running[s.name]}
        if len(set(live.values())) > 1:
            flag(
                "ha-mixed-versions",
                sorted(live),
                index,
                f"HA group {group.name} runs mixed versions at once: "
                + ", ".join(f"{n} {v}" for n, v in sorted(live.items())),
            )

    def first_healthy(name: str, release: str, group: GroupSpec, index: int) -> None:
        ahead = [s.name for s in group.servers if s.name != name and release_of(version[s.name]) == release]
        if ahead and not any(running[s] and healthy[s] for s in ahead):
            flag(
                "ha-first-healthy",
                [name, *ahead],
                index,
                f"{name} began installing {release} in HA group {group.name} before "
                f"{', '.join(ahead)} (already on {release}) was running and answered /health with 200",
            )

    seen_event = False
    for index, event in enumerate(events):
        name = str(event.get("server", ""))
        kind = event.get("event")
        if name not in places:
            continue
        place = places[name]
        if kind == "baseline":
            version[name] = str(event.get("version_after") or version[name])
            running[name] = bool(event.get("running", True))
            continue
        if not seen_event:
            seen_event = True
            for deployment in deployments:
                skew(deployment, None)  # what the baseline already had is not this run's doing
        if kind in ("stop", "start", "start_failed", "install_begin"):
            healthy[name] = False
        if kind == "stop":
            running[name] = False
        elif kind == "start":
            running[name] = True
            mixed(place.group, index)
        elif kind == "start_failed":
            running[name] = False
        elif kind == "health":
            healthy[name] = running[name] and event.get("status") == 200
        elif kind == "install_refused" and event.get("reason") == "running":
            flag(
                "install-while-running",
                [name],
                index,
                f"the installer was run on {name} while its service ran (it refused)",
            )
        elif kind == "install_begin":
            target = str(event.get("version_after") or "")
            check_install(name, target, index, place, places, version, running, order, flag)
            if place.group.kind == "ha":
                first_healthy(name, release_of(target), place.group, index)
            hop = (place.deployment.name, place.group.name, release_of(target))
            if place.group.kind == "ha" and hop not in hops_started:
                hops_started.add(hop)
                live = [s.name for s in place.group.servers if running[s.name]]
                if live:
                    flag(
                        "ha-stopped-before-install",
                        live,
                        index,
                        f"the first install of {release_of(target)} in HA group "
                        f"{place.group.name} ({name}) began while {', '.join(live)} still ran",
                    )
        elif kind == "install_end":
            version[name] = str(event.get("version_after") or version[name])
            skew(place.deployment, index)
    return found


def check_install(
    name: str,
    target: str,
    index: int,
    place: _Place,
    places: Mapping[str, _Place],
    version: Mapping[str, str],
    running: Mapping[str, bool],
    order: Mapping[str, int],
    flag: Any,
) -> None:
    """The rules judged at one install_begin."""
    if running[name]:
        flag(
            "install-while-running",
            [name],
            index,
            f"an install began on {name} while its service ran",
        )
    wanted = order.get(release_of(target))
    if wanted is None:
        return
    if place.role == "host":
        lagging = [
            s.name
            for s in place.deployment.main.servers
            if (order.get(release_of(version[s.name])) or -1) < wanted
        ]
        if lagging:
            flag(
                "main-before-hosts",
                [name, *lagging],
                index,
                f"host {name} began installing {release_of(target)} while main "
                f"{', '.join(f'{n} ({version[n]})' for n in lagging)} had not finished that release",
            )
    group = place.group
    if group.kind == "dr" and name == group.primary.name:
        secondary = group.secondary.name
        missing = []
        if (order.get(release_of(version[secondary])) or -1) < wanted:
            missing.append(f"not yet on {release_of(target)} ({version[secondary]})")
        if not running[secondary]:
            missing.append("not running")
        if missing:
            flag(
                "dr-secondary-first",
                [name, secondary],
                index,
                f"DR primary {name} began installing {release_of(target)} while its secondary "
                f"{secondary} was {' and '.join(missing)}",
            )
