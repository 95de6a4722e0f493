"""The plan as data: phases of steps, what each does and why, and its JSON form."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from xsoar_mt.errors import InvalidInput, StalePlan
from xsoar_mt.skew import Verdict

PLAN_FORMAT_VERSION = 1

_set_fields = object.__setattr__
# No server runs a command of its own: one empty mapping shared by such steps (typed read-only; steps
# are frozen and nothing writes to it), not a new dict for each of thousands of steps.
_SAME_EVERYWHERE: Mapping[str, str] = {}


class Action(StrEnum):
    BACKUP = "backup"
    FETCH = "fetch-installer"
    STOP = "stop"
    INSTALL = "install"
    START = "start"
    HEALTHY = "wait-healthy"
    VALIDATE = "validate"


@dataclass(frozen=True)
class Scope:
    """What a plan covers: main, and all host groups or the named ones."""

    main: bool = True
    groups: tuple[str, ...] | None = None  # None: every host group

    @property
    def everything(self) -> bool:
        return self.main and self.groups is None

    def covers(self, group: str, is_main: bool) -> bool:
        if is_main:
            return self.main
        return self.groups is None or group in self.groups

    def describe(self) -> str:
        if self.everything:
            return "everything"
        parts = ["main"] if self.main else []
        parts += [f"group {g}" for g in self.groups or ()]
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"main": self.main, "groups": list(self.groups) if self.groups is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scope:
        groups = data.get("groups")
        return cls(bool(data["main"]), tuple(groups) if groups is not None else None)


@dataclass(frozen=True, init=False)
class Step:
    """One thing to do on one or more servers (run together), and what the fleet looks like after."""

    id: str
    phase: str
    action: Action
    servers: tuple[str, ...]
    command: str
    why: str
    release: str  # the release this step works toward
    verdict_after: Verdict = Verdict.OK
    sets_release: str | None = None  # the release the servers run after this step (installs)
    per_server: Mapping[str, str] = field(default_factory=dict, hash=False)  # servers whose command differs

    def __init__(
        self,
        id: str,
        phase: str,
        action: Action,
        servers: tuple[str, ...],
        command: str,
        why: str,
        release: str,
        verdict_after: Verdict = Verdict.OK,
        sets_release: str | None = None,
        per_server: Mapping[str, str] | None = None,
    ) -> None:
        # The same fields and frozen afterwards, but set in one go: the generated frozen __init__ calls
        # object.__setattr__ once per field, which was 40% of planning a 1,000-server deployment.
        _set_fields(
            self,
            "__dict__",
            {
                "id": id,
                "phase": phase,
                "action": action,
                "servers": servers,
                "command": command,
                "why": why,
                "release": release,
                "verdict_after": verdict_after,
                "sets_release": sets_release,
                "per_server": per_server or _SAME_EVERYWHERE,
            },
        )

    def command_on(self, server: str) -> str:
        """The command this step runs on `server`: its own one, where preflight made it differ."""
        return self.per_server.get(server, self.command)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase,
            "action": self.action.value,
            "servers": list(self.servers),
            "command": self.command,
            "why": self.why,
            "release": self.release,
            "sets_release": self.sets_release,
            "verdict_after": self.verdict_after.value,
            **({"per_server": dict(self.per_server)} if self.per_server else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            id=data["id"],
            phase=data["phase"],
            action=Action(data["action"]),
            servers=tuple(data["servers"]),
            command=data["command"],
            why=data["why"],
            release=data["release"],
            sets_release=data.get("sets_release"),
            verdict_after=Verdict(data["verdict_after"]),
            per_server=dict(data.get("per_server") or {}),
        )


@dataclass(frozen=True)
class Phase:
    id: str
    title: str
    steps: tuple[Step, ...]
    group: str | None = None  # the server group it upgrades (None for prepare and validate)
    release: str | None = None
    wave: int | None = None  # with --waves: the wave of its host group, or the wave a validation checks

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "group": self.group,
            "release": self.release,
            **({"wave": self.wave} if self.wave is not None else {}),
            "steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Phase:
        return cls(
            data["id"],
            data["title"],
            tuple(Step.from_dict(s) for s in data["steps"]),
            data.get("group"),
            data.get("release"),
            data.get("wave"),
        )


@dataclass(frozen=True)
class Waves:
    """The waves a plan upgrades the host groups in: the `--waves` spec and each group's wave (from 1)."""

    spec: str
    groups: Mapping[str, int]

    def members(self, wave: int) -> tuple[str, ...]:
        return tuple(g for g, w in self.groups.items() if w == wave)

    @property
    def count(self) -> int:
        return max(self.groups.values(), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "groups": dict(self.groups)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Waves:
        return cls(str(data["spec"]), {str(g): int(w) for g, w in dict(data["groups"]).items()})


@dataclass(frozen=True)
class Skipped:
    server: str
    version: str
    reason: str


@dataclass(frozen=True)
class Basis:
    """What a plan was built from; a saved plan is stale when any of it changes."""

    inventory_digest: str
    versions: Mapping[str, str]
    target: str
    scope: Scope

    def to_dict(self) -> dict[str, Any]:
        return {
            "inventory_sha256": self.inventory_digest,
            "versions": dict(sorted(self.versions.items())),
            "target": self.target,
            "scope": self.scope.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Basis:
        return cls(
            data["inventory_sha256"], dict(data["versions"]), data["target"], Scope.from_dict(data["scope"])
        )

    def differences(self, current: Basis) -> list[str]:
        """Field by field, what differs between this (saved) basis and the current one."""
        diffs: list[str] = []
        if self.inventory_digest != current.inventory_digest:
            diffs.append("the inventory file changed since the plan was made")
        if self.target != current.target:
            diffs.append(f"target: plan {self.target}, now {current.target}")
        if self.scope != current.scope:
            diffs.append(f"scope: plan {self.scope.describe()}, now {current.scope.describe()}")
        for server in sorted(self.versions.keys() | current.versions.keys()):
            old, new = self.versions.get(server), current.versions.get(server)
            if old != new:
                diffs.append(
                    f"{server}: planned from {old or 'no version'}, now {new or 'not in the inventory'}"
                )
        return diffs

    def require_same(self, current: Basis) -> None:
        diffs = self.differences(current)
        if diffs:
            raise StalePlan(diffs)


@dataclass(frozen=True)
class Plan:
    deployment: str
    target: str
    scope: Scope
    hops: tuple[str, ...]
    phases: tuple[Phase, ...]
    basis: Basis
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()
    degraded_functions: tuple[str, ...] = ()  # what does not work while hosts lag, if they ever do
    downtime_minutes: Mapping[str, float] = field(default_factory=dict)
    waves: Waves | None = None
    format_version: int = PLAN_FORMAT_VERSION

    @property
    def steps(self) -> Iterator[Step]:
        for phase in self.phases:
            yield from phase.steps

    @property
    def step_count(self) -> int:
        return sum(len(p.steps) for p in self.phases)

    @property
    def nothing_to_do(self) -> bool:
        """No step at all: every server in scope runs the target, and none needs starting or checking."""
        return not self.phases

    @property
    def servers_to_upgrade(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for step in self.steps:
            if step.action is Action.INSTALL:
                seen.update(dict.fromkeys(step.servers))
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "deployment": self.deployment,
            "target": self.target,
            "scope": self.scope.to_dict(),
            "hops": list(self.hops),
            "basis": self.basis.to_dict(),
            "warnings": list(self.warnings),
            "degraded_functions": list(self.degraded_functions),
            "downtime_minutes": dict(self.downtime_minutes),
            **({"waves": self.waves.to_dict()} if self.waves is not None else {}),
            "skipped": [{"server": s.server, "version": s.version, "reason": s.reason} for s in self.skipped],
            "phases": [p.to_dict() for p in self.phases],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        version = data.get("format_version")
        if version != PLAN_FORMAT_VERSION:
            raise InvalidInput(
                f"plan format_version {version!r} is not {PLAN_FORMAT_VERSION}; make the plan again"
            )
        try:
            return cls(
                deployment=data["deployment"],
                target=data["target"],
                scope=Scope.from_dict(data["scope"]),
                hops=tuple(data["hops"]),
                phases=tuple(Phase.from_dict(p) for p in data["phases"]),
                basis=Basis.from_dict(data["basis"]),
                skipped=tuple(Skipped(**s) for s in data.get("skipped", [])),
                warnings=tuple(data.get("warnings", [])),
                degraded_functions=tuple(data.get("degraded_functions", [])),
                downtime_minutes=dict(data.get("downtime_minutes", {})),
                waves=Waves.from_dict(data["waves"]) if data.get("waves") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"the plan file is not a valid xsoar-mt plan ({exc!s})") from None
