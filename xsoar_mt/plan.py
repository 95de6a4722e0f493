"""The plan as data: phases of steps, what each does and why, and its JSON form."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from xsoar_mt.errors import InvalidInput, StalePlan, named, shown
from xsoar_mt.skew import SkewVerdict

PLAN_FORMAT_VERSION = 1
# A rollback plan's `target`, in the saved-plan format: it names what the plan does, not one release
# (each group goes back to the release its own backup was taken on).
ROLLBACK = "rollback"
ROLLBACK_RELEASE_ONLY = "rollback-release-only"
ROLLBACK_TARGETS = (ROLLBACK, ROLLBACK_RELEASE_ONLY)

# Every key a saved plan's objects may hold: the keys `to_dict` writes, and only those.
_PLAN_KEYS = (
    "format_version", "deployment", "target", "scope", "hops", "basis", "warnings", "degraded_functions",
    "downtime_minutes", "waves", "skipped", "phases",
    # Forecasts `upgrade plan` adds for the reader (commands.PlanView): made from timings measured since,
    # so never compared, and nothing in them is run.
    "tenant_impact", "window",
)  # fmt: skip
_STEP_KEYS = (
    "id", "phase", "action", "servers", "command", "why", "release", "sets_release", "verdict_after",
    "per_server",
)  # fmt: skip

_set_fields = object.__setattr__
# No server runs a command of its own: one empty mapping shared by such steps (typed read-only; steps
# are frozen and nothing writes to it), not a new dict for each of thousands of steps.
_SAME_EVERYWHERE: Mapping[str, str] = {}


class _Fields:
    """A JSON object of a saved plan, read field by field: a wrong type names the field's path."""

    def __init__(self, data: Any, where: str, keys: Iterable[str] | None = None) -> None:
        if not isinstance(data, dict):
            raise InvalidInput(f"{where or 'the plan'}: expected an object, found {_kind(data)}")
        self.data = data
        self.where = where
        if keys is not None:
            unknown = next((k for k in data if k not in set(keys)), None)
            if (
                unknown is not None
            ):  # a key nothing reads would be a field a reviewer sees and the run ignores
                raise StalePlan(
                    [f"{self._path(named(str(unknown), 60))}: unknown key"],
                    lead="the saved plan holds what xsoar-mt does not write",
                )

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, optional: bool) -> Any:
        if key not in self.data:
            if optional:
                return None
            raise InvalidInput(f"{self._path(key)}: missing")
        return self.data[key]

    def text(self, key: str, *, optional: bool = False) -> str | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"{self._path(key)}: expected text, found {_kind(value)}")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        assert value is not None
        return value

    def texts(self, key: str, *, optional: bool = False) -> tuple[str, ...]:
        value = self._get(key, optional)
        if value is None and optional:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{self._path(key)}: expected a list of text, found {_kind(value)}")
        return tuple(value)

    def text_map(self, key: str) -> dict[str, str]:
        value = self._get(key, True) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidInput(f"{self._path(key)}: expected an object of text, found {_kind(value)}")
        return dict(value)

    def number_map(self, key: str) -> dict[str, float]:
        value = self._get(key, True) or {}
        if not isinstance(value, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
        ):
            raise InvalidInput(f"{self._path(key)}: expected an object of numbers, found {_kind(value)}")
        return dict(value)

    def integer(self, key: str, *, optional: bool = False) -> int | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput(f"{self._path(key)}: expected a whole number, found {_kind(value)}")
        return value

    def integer_map(self, key: str) -> dict[str, int]:
        value = self._get(key, False)
        if not isinstance(value, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value.values()
        ):
            raise InvalidInput(
                f"{self._path(key)}: expected an object of whole numbers, found {_kind(value)}"
            )
        return dict(value)

    def flag(self, key: str) -> bool:
        value = self._get(key, False)
        if not isinstance(value, bool):
            raise InvalidInput(f"{self._path(key)}: expected true or false, found {_kind(value)}")
        return value

    def child(self, key: str) -> _Fields:
        return _Fields(self._get(key, False), self._path(key))

    def children(self, key: str, *, optional: bool = False) -> list[_Fields]:
        value = self._get(key, optional)
        if value is None and optional:
            return []
        if not isinstance(value, list):
            raise InvalidInput(f"{self._path(key)}: expected a list, found {_kind(value)}")
        return [_Fields(item, f"{self._path(key)}[{i}]") for i, item in enumerate(value)]

    def choice(self, key: str, kind: type[StrEnum]) -> Any:
        value = self.required_text(key)
        try:
            return kind(value)
        except ValueError:
            raise InvalidInput(f"{self._path(key)}: {shown(value)} is not one of {', '.join(kind)}") from None


def refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`' object_pairs_hook for a saved plan: a key given twice is refused (exit 8), since the
    reader of the file sees the first value while JSON keeps the last."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StalePlan(
                [f"key {shown(key, 60)} appears twice in one object"],
                lead="the saved plan is ambiguous",
            )
        out[key] = value
    return out


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else shown(str(value) if not isinstance(value, str) else value, 60)


class Action(StrEnum):
    BACKUP = "backup"
    FETCH = "fetch-installer"
    STOP = "stop"
    INSTALL = "install"
    START = "start"
    HEALTHY = "wait-healthy"
    VALIDATE = "validate"
    # Rollback's own steps (xsoar_mt/rollback): the installer's purge, the backup's files put back, and
    # an Elasticsearch snapshot restored through the snapshot API.
    PURGE = "purge"
    RESTORE = "restore"
    RESTORE_SNAPSHOT = "restore-snapshot"


class PhaseKind(StrEnum):
    """What a phase is for. The fixed phases' ids are these values; a group's phase is named after it."""

    RECOVER = "recover"  # start servers found down
    PREPARE = "prepare"  # backups and installer delivery, before any group
    GROUP = "group"  # upgrade one host group (or main) to a release
    VALIDATE = "validate"  # the final validation, or a wave's


class ValidationKind(StrEnum):
    """What a validation step checks: main's health (through its load balancer, or itself), or the tenants."""

    LOAD_BALANCER = "load-balancer"
    MAIN = "main"
    TENANTS = "tenants"


_VALIDATION_KINDS = {k.value: k for k in ValidationKind}
_FIXED_PHASES = {k.value: k for k in PhaseKind if k is not PhaseKind.GROUP}  # the phases named by their kind


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

    @classmethod
    def _read(cls, fields: _Fields) -> Scope:
        fields = _Fields(fields.data, fields.where, ("main", "groups"))
        groups = fields.texts("groups") if fields.data.get("groups") is not None else None
        return cls(fields.flag("main"), groups)


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
    verdict_after: SkewVerdict = SkewVerdict.OK
    sets_release: str | None = None  # the release the servers run after this step (installs)
    per_server: Mapping[str, str] = field(default_factory=dict, hash=False)  # servers whose command differs
    # A validation step's kind, set by the planner that builds it; None for every other action. Not a key
    # of the JSON form: it is read back from the step's id (`saved_validation_kind`).
    check: ValidationKind | None = None

    def __init__(
        self,
        id: str,
        phase: str,
        action: Action,
        servers: tuple[str, ...],
        command: str,
        why: str,
        release: str,
        verdict_after: SkewVerdict = SkewVerdict.OK,
        sets_release: str | None = None,
        per_server: Mapping[str, str] | None = None,
        check: ValidationKind | None = None,
    ) -> None:
        if (check is None) is (action is Action.VALIDATE):
            raise ValueError(f"step {id}: a validation step has a kind, and no other step has one")
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
                "check": check,
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
    def from_dict(cls, data: Mapping[str, Any], where: str = "step") -> Step:
        fields = _Fields(data, where, _STEP_KEYS)
        step_id, action = fields.required_text("id"), fields.choice("action", Action)
        return cls(
            id=step_id,
            phase=fields.required_text("phase"),
            action=action,
            servers=fields.texts("servers"),
            command=fields.required_text("command"),
            why=fields.required_text("why"),
            release=fields.required_text("release"),
            sets_release=fields.text("sets_release", optional=True),
            verdict_after=fields.choice("verdict_after", SkewVerdict),
            per_server=fields.text_map("per_server"),
            check=saved_validation_kind(step_id) if action is Action.VALIDATE else None,
        )


def saved_validation_kind(step_id: str) -> ValidationKind:
    """A saved validation step's kind. The plan's JSON holds it only in the step's id, where the planners
    put it (`<phase>/<kind>/<entry>`): it is read back here, when a plan is read, and nowhere else. Any
    other word there reads as the tenants' check; a step whose id was edited differs from the plan made
    now, and the plan is refused."""
    _, _, rest = step_id.partition("/")
    return _VALIDATION_KINDS.get(rest.partition("/")[0], ValidationKind.TENANTS)


@dataclass(frozen=True)
class Phase:
    id: str
    title: str
    steps: tuple[Step, ...]
    group: str | None = None  # the server group it upgrades (None for prepare and validate)
    release: str | None = None
    wave: int | None = None  # with --waves: the wave of its host group, or the wave a validation checks

    @property
    def kind(self) -> PhaseKind:
        """Told from the phase's own fields: a group's phase names its group, a wave's validation its wave."""
        if self.group is not None:
            return PhaseKind.GROUP
        if self.wave is not None:
            return PhaseKind.VALIDATE
        return _FIXED_PHASES.get(self.id, PhaseKind.GROUP)

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
    def from_dict(cls, data: Mapping[str, Any], where: str = "phase") -> Phase:
        fields = _Fields(data, where, ("id", "title", "group", "release", "wave", "steps"))
        phase_id = fields.required_text("id")
        steps = tuple(Step.from_dict(s.data, s.where) for s in fields.children("steps"))
        for i, step in enumerate(steps):
            if step.phase != phase_id:  # the executor runs a step the way its enclosing phase says
                raise StalePlan(
                    [
                        f"{where}.steps[{i}] ({named(step.id)}) belongs to phase {named(step.phase)}, "
                        f"not {named(phase_id)}"
                    ],
                    lead="the saved plan moved a step to another phase",
                )
        return cls(
            phase_id,
            fields.required_text("title"),
            steps,
            fields.text("group", optional=True),
            fields.text("release", optional=True),
            fields.integer("wave", optional=True),
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
        fields = _Fields(data, "waves", ("spec", "groups"))
        return cls(fields.required_text("spec"), fields.integer_map("groups"))


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
    def from_dict(cls, data: Mapping[str, Any], where: str = "basis") -> Basis:
        fields = _Fields(data, where, ("inventory_sha256", "versions", "target", "scope"))
        return cls(
            fields.required_text("inventory_sha256"),
            fields.text_map("versions"),
            fields.required_text("target"),
            Scope._read(fields.child("scope")),
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

    @cached_property  # read by the summary and the start release: one pass over ~10,000 steps, not two
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
    def from_dict(cls, data: Any) -> Plan:
        """Read a plan's JSON form; InvalidInput names the first field that is missing or of the wrong type."""
        try:
            return cls._read(_Fields(data, "", _PLAN_KEYS))
        except InvalidInput as exc:
            if exc.hint is not None:
                raise
            raise InvalidInput(f"not a valid xsoar-mt plan: {exc.message}") from None

    @classmethod
    def _read(cls, fields: _Fields) -> Plan:
        version = fields.data.get("format_version")
        if version != PLAN_FORMAT_VERSION:
            said = str(version) if isinstance(version, int) else _kind(version)
            raise InvalidInput(
                f"plan format_version {said} is not {PLAN_FORMAT_VERSION}", hint="make the plan again"
            )
        skipped = [
            Skipped(s.required_text("server"), s.required_text("version"), s.required_text("reason"))
            for s in (
                _Fields(f.data, f.where, ("server", "version", "reason"))
                for f in fields.children("skipped", optional=True)
            )
        ]
        return cls(
            deployment=fields.required_text("deployment"),
            target=fields.required_text("target"),
            scope=Scope._read(fields.child("scope")),
            hops=fields.texts("hops"),
            phases=tuple(Phase.from_dict(p.data, p.where) for p in fields.children("phases")),
            basis=Basis.from_dict(fields.child("basis").data, "basis"),
            skipped=tuple(skipped),
            warnings=fields.texts("warnings", optional=True),
            degraded_functions=fields.texts("degraded_functions", optional=True),
            downtime_minutes=fields.number_map("downtime_minutes"),
            waves=Waves.from_dict(fields.child("waves").data) if fields.data.get("waves") else None,
        )

    def first_difference(self, other: Plan) -> str | None:
        """Where this plan first differs from `other` (the same inputs planned again), or None.

        Steps first, in order, naming the step and the field; then the phases around them; then the plan's
        own fields. The basis is compared on its own (`Basis.differences`).
        """
        mine, theirs = list(self.steps), list(other.steps)
        for number, (a, b) in enumerate(zip(mine, theirs, strict=False), 1):
            if a != b:
                left, right = a.to_dict(), b.to_dict()
                key = next(k for k in (*left, *right) if left.get(k) != right.get(k))
                return (
                    f"step {number} ({named(a.id)}): {key} differs: "
                    f"plan {_said(left.get(key))}, made now {_said(right.get(key))}"
                )
        if len(mine) != len(theirs):
            extra = (mine if len(mine) > len(theirs) else theirs)[min(len(mine), len(theirs))]
            where = "only in the plan" if len(mine) > len(theirs) else "missing from the plan"
            return f"step {min(len(mine), len(theirs)) + 1} ({named(extra.id)}) is {where}"
        for a_phase, b_phase in zip(self.phases, other.phases, strict=False):
            left, right = _phase_outline(a_phase), _phase_outline(b_phase)
            field_name = next((k for k in (*left, *right) if left.get(k) != right.get(k)), None)
            if field_name is not None:
                return (
                    f"phase {named(a_phase.id)}: {field_name} differs: "
                    f"plan {_said(left.get(field_name))}, made now {_said(right.get(field_name))}"
                )
        if len(self.phases) != len(other.phases):
            return f"the plan has {len(self.phases)} phases, a plan made now {len(other.phases)}"
        left, right = self.to_dict(), other.to_dict()
        field_name = next(
            (k for k in (*left, *right) if k not in ("phases", "basis") and left.get(k) != right.get(k)), None
        )
        if field_name is not None:
            return (
                f"{field_name} differs: plan {_said(left.get(field_name))}, "
                f"made now {_said(right.get(field_name))}"
            )
        return None


def _phase_outline(phase: Phase) -> dict[str, Any]:
    """A phase as compared: its own fields, and its steps' ids in order (a step moved to another phase
    runs the way that phase runs: `prepare` side by side)."""
    outline = {k: v for k, v in phase.to_dict().items() if k != "steps"}
    return {**outline, "steps": [s.id for s in phase.steps]}


def _said(value: Any) -> str:
    """A plan's field value in a message: text quoted, other JSON as JSON, cut to a line."""
    if isinstance(value, str):
        return shown(value, 120)
    text = json.dumps(value)
    return text if len(text) <= 120 else f"{text[:120]}... ({len(text)} characters)"


@dataclass(frozen=True)
class PlanFacts:
    """What the observed state adds to the versions (observed.py): what a plan must work around."""

    in_flight: Mapping[str, str] = field(
        default_factory=dict
    )  # server -> release its installer is installing
    down: frozenset[str] = frozenset()  # servers whose service is not running
    backed_up: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # server -> releases backed up for
    verify: bool = (
        False  # end with a health gate on every server in scope and validation, even with no install
    )
