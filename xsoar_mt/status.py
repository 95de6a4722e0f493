"""Live status of a deployment: every server's role, version, service state, reachability and skew."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from xsoar_mt.inventory import Inventory, Role
from xsoar_mt.probe import Observation, probe
from xsoar_mt.releases import Version
from xsoar_mt.remote import RemoteError, RemoteShell
from xsoar_mt.skew import Judgement, Verdict, judge


@dataclass(frozen=True)
class ServerStatus:
    server: str
    role: str  # main or host, with its place in an HA group or DR pair
    group: str
    address: str
    reachable: bool
    running: bool | None
    version: Version | None
    skew: Verdict | None  # this server's verdict against main; None when its version is unknown
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "role": self.role,
            "group": self.group,
            "address": self.address,
            "reachable": self.reachable,
            "running": self.running,
            "version": str(self.version) if self.version else None,
            "skew": self.skew.value if self.skew else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class StatusReport:
    deployment: str
    servers: tuple[ServerStatus, ...]
    skew: Verdict
    skew_reasons: tuple[str, ...]
    degraded_functions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "skew": self.skew.value,
            "skew_reasons": list(self.skew_reasons),
            "degraded_functions": list(self.degraded_functions),
            "servers": [s.to_dict() for s in self.servers],
        }


def role_label(inventory: Inventory, name: str) -> str:
    server = inventory.server(name)
    kind = "main" if inventory.group_of(name).is_main else "host"
    return kind if server.role is Role.SINGLE else f"{kind} ({server.role.value})"


def observe_one(shell: RemoteShell, inventory: Inventory, api_key: str | None) -> tuple[bool, Observation]:
    """(reachable, what the probe saw): connecting is tried first so an unreachable server is told apart."""
    try:
        shell.connect()
    except RemoteError as exc:
        return False, Observation(shell.server, error=exc.detail)
    return True, probe(shell, inventory, api_key)


def judge_status(inventory: Inventory, seen: Mapping[str, tuple[bool, Observation]]) -> StatusReport:
    """Pure: the table and the skew verdict from what was observed (stopped servers use the inventory's version)."""
    versions: dict[str, Version] = {}
    for server in inventory.servers:
        _, observation = seen[server.name]
        version = observation.version or server.version
        if version is not None:
            versions[server.name] = version
    main = {s.name: versions[s.name].release for s in inventory.main.servers if s.name in versions}
    hosts = {
        s.name: versions[s.name].release for g in inventory.hosts for s in g.servers if s.name in versions
    }
    judgement: Judgement = judge(main, hosts, inventory.releases)
    faults = {f.server: f for f in judgement.faults}
    rows = []
    for server in inventory.servers:
        reachable, observation = seen[server.name]
        fault = faults.get(server.name)
        version = observation.version
        notes = []
        if observation.error:
            notes.append(observation.error)
        if version is None and server.name in versions:
            notes.append(f"inventory says {versions[server.name]}")
        if fault is not None:
            notes.append(fault.reason)
        skew = (fault.verdict if fault else Verdict.OK) if server.name in versions else None
        rows.append(
            ServerStatus(
                server.name,
                role_label(inventory, server.name),
                server.group,
                server.address,
                reachable,
                observation.running,
                version,
                skew,
                "; ".join(notes),
            )
        )
    return StatusReport(
        inventory.name,
        tuple(rows),
        judgement.verdict,
        tuple(f.reason for f in judgement.faults),
        judgement.degraded_functions,
    )


def deployment_status(
    inventory: Inventory, shells: Callable[[str], RemoteShell], api_key: str | None
) -> StatusReport:
    names = [s.name for s in inventory.servers]
    with ThreadPoolExecutor(max_workers=max(1, min(64, len(names)))) as pool:
        found = list(pool.map(lambda n: observe_one(shells(n), inventory, api_key), names))
    return judge_status(inventory, dict(zip(names, found, strict=True)))
