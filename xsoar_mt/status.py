"""Live status of a deployment: every server's role, version (and its source), service state, reachability and skew."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xsoar_mt.errors import ExitCode
from xsoar_mt.inventory import Inventory, Role
from xsoar_mt.observed import Known, Observed, resolve
from xsoar_mt.releases import Version
from xsoar_mt.remote import RemoteShell
from xsoar_mt.skew import SkewVerdict, judge_releases


@dataclass(frozen=True)
class ServerStatus:
    server: str
    role: str  # main or host, with its place in an HA group or DR pair
    group: str
    address: str
    reachable: bool
    running: bool | None
    version: Version | None
    skew: SkewVerdict | None  # this server's verdict against main; None (unknown) when it cannot be judged
    detail: str = ""
    source: str | None = None  # where the version comes from: api, marker, state, inventory
    service: str = "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "role": self.role,
            "group": self.group,
            "address": self.address,
            "reachable": self.reachable,
            "running": self.running,
            "service": self.service,
            "version": str(self.version) if self.version else None,
            "source": self.source,
            "skew": self.skew.value if self.skew else "unknown",
            "detail": self.detail,
        }


@dataclass(frozen=True)
class StatusReport:
    deployment: str
    servers: tuple[ServerStatus, ...]
    skew: SkewVerdict | None  # None: some server's version is unknown, so the deployment cannot be judged
    skew_reasons: tuple[str, ...]
    degraded_functions: tuple[str, ...]
    observed: Observed = field(default_factory=Observed)

    @property
    def exit_code(self) -> ExitCode:
        """Status reports what it finds, skew and unreachable servers included: it succeeds once it ran."""
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "skew": self.skew.value if self.skew else "unknown",
            "skew_reasons": list(self.skew_reasons),
            "degraded_functions": list(self.degraded_functions),
            "servers": [s.to_dict() for s in self.servers],
        }


def role_label(inventory: Inventory, name: str) -> str:
    server = inventory.server(name)
    kind = "main" if inventory.group_of(name).is_main else "host"
    return kind if server.role is Role.SINGLE else f"{kind} ({server.role.value})"


def judge_status(inventory: Inventory, observed: Observed) -> StatusReport:
    """Pure: the table and the skew verdict from the observed state.

    A server's skew is judged on its resolved version, whatever its source (a stopped server without a
    marker on the local record's or the inventory's); a server that could not be reached, or whose version
    is unknown, is `unknown`, and so is the deployment's verdict while any server is.
    """
    views = observed.views
    versions = {n: v.version for n, v in views.items() if v.version is not None}
    releases = {s.name: versions[s.name].release for s in inventory.servers if s.name in versions}
    judgement = judge_releases(releases, {s.name for s in inventory.main.servers}, inventory.releases)
    faults = {f.server: f for f in judgement.faults}
    rows = []
    unknown: list[str] = []
    for server in inventory.servers:
        view = views[server.name]
        fault = faults.get(server.name)
        notes = [view.error] if view.error else []
        notes += list(view.notes)
        if view.unknown:
            notes.append(f"version unknown: {view.unknown}")
        if fault is not None:
            notes.append(fault.reason)
        judged = view.version is not None and view.reachable is not False
        if not judged:
            unknown.append(server.name)
        rows.append(
            ServerStatus(
                server.name,
                role_label(inventory, server.name),
                server.group,
                server.address,
                view.reachable is not False,
                view.running,
                view.version,
                (fault.verdict if fault else SkewVerdict.OK) if judged else None,
                "; ".join(notes),
                view.source.value if view.source else None,
                view.service.value,
            )
        )
    reasons = tuple(f.reason for f in judgement.faults)
    if unknown:
        reasons = (f"cannot judge: version unknown for {', '.join(unknown)}", *reasons)
    return StatusReport(
        inventory.name,
        tuple(rows),
        None if unknown else judgement.verdict,
        reasons,
        judgement.degraded_functions,
        observed,
    )


def deployment_status(
    inventory: Inventory,
    shells: Callable[[str], RemoteShell],
    api_key: str | None,
    known: Mapping[str, Known] | None = None,
) -> StatusReport:
    from xsoar_mt.probe import observe_all

    readings = observe_all(inventory, shells, api_key)
    return judge_status(inventory, resolve(inventory, readings, known or {}))
