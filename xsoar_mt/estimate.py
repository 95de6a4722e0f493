"""How long the night takes: expected minutes per step, each group's downtime, the run's length, how long
hosts lag main in each hop, and what each tenant sees. Pure arithmetic over a plan, the inventory's
`durations` and the minutes servers took before (learned, or measured earlier in the same run)."""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xsoar_mt.plan import Action, Phase, PhaseKind, Plan, Step, Waves
from xsoar_mt.skew import SkewVerdict
from xsoar_mt.step_minutes import DEFAULT_MINUTES, MEASURED_KEYS

_KEY = {
    Action.BACKUP: "backup",
    Action.FETCH: "fetch",
    Action.STOP: "stop",
    Action.INSTALL: "install",
    Action.START: "start",
    Action.HEALTHY: "healthy",
    Action.VALIDATE: "validate",
    # rollback's steps: a purge runs the installer; restoring an archive takes about as long as making it
    Action.PURGE: "install",
    Action.RESTORE: "backup",
    Action.RESTORE_SNAPSHOT: "backup",
}
# How many prepare steps a run carries out at once (the executor's RunOptions.prepare_parallel; a unit
# test holds the two equal).
PREPARE_PARALLEL = 16
MAIN = "main"  # the name of main's group, which no host group may take


@dataclass(frozen=True)
class Durations:
    """Minutes per action: a server's own where they are known (learned by earlier runs, or measured
    earlier in this one), else the inventory's `durations`, else the defaults."""

    minutes: Mapping[str, float]
    given: frozenset[str] = frozenset()
    own: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # server -> action -> minutes

    @classmethod
    def of(
        cls, configured: Mapping[str, float], learned: Mapping[str, Mapping[str, float]] | None = None
    ) -> Durations:
        return cls(
            {**DEFAULT_MINUTES, **configured},
            frozenset(configured) & frozenset(DEFAULT_MINUTES),
            {server: dict(minutes) for server, minutes in (learned or {}).items()},
        )

    def tonight(self, measured: Mapping[str, Mapping[str, float]]) -> Durations:
        """With what this run measured: a server's own measurement first, then its learned minutes, then
        for a server not measured yet the median of what the others took tonight, then these minutes."""
        if not measured:
            return self
        typical = {
            key: statistics.median(values)
            for key in MEASURED_KEYS
            if (values := [m[key] for m in measured.values() if key in m])
        }
        own = {
            server: {**self.own.get(server, {}), **measured.get(server, {})}
            for server in self.own.keys() | measured.keys()
        }
        return Durations({**self.minutes, **typical}, self.given, own)

    def on(self, server: str, key: str) -> float:
        mine = self.own.get(server)
        if mine is not None and key in mine:
            return mine[key]
        return self.minutes[key]

    def step(self, step: Step) -> float:
        """A step's servers work at the same time, so a step takes as long as its slowest server."""
        key = _KEY[step.action]
        if not self.own:
            return self.minutes[key]
        return max(self.on(server, key) for server in step.servers)

    def phase(self, phase: Phase) -> float:
        return sum(self.step(s) for s in phase.steps)

    def downtime(self, phase: Phase) -> float:
        """Minutes from the phase's first stop until the group serves again: until the first server
        stopped first is healthy. In the vendor's orders that server is the one that serves: a DR pair's
        primary (stopped first, upgraded last), any server of an HA group (all are stopped at once; the
        first one installed serves while the rest are), a single server. 0 when nothing is stopped."""
        return self.outage(phase)[1]

    def outage(self, phase: Phase) -> tuple[float, float]:
        """(minutes into the phase when its group goes down, minutes it stays down), as `downtime` says."""
        return self.walk(phase)[1:]

    def walk(self, phase: Phase) -> tuple[float, float, float]:
        """The phase's length, and its `outage`, from one pass over its steps."""
        elapsed, down, serving, back = 0.0, None, frozenset[str](), None
        for step in phase.steps:
            if down is None and step.action is Action.STOP:
                down, serving = elapsed, frozenset(step.servers)
            elapsed += self.step(step)
            if (
                back is None
                and down is not None
                and step.action is Action.HEALTHY
                and serving & set(step.servers)
            ):
                back = elapsed
        if down is None:
            return elapsed, 0.0, 0.0
        return elapsed, down, (back if back is not None else elapsed) - down


def group_downtime(phases: Sequence[Phase], durations: Durations) -> dict[str, float]:
    """Expected minutes each server group is down, summed over the hops."""
    out: dict[str, float] = {}
    for phase in phases:
        if phase.group is not None:
            out[phase.group] = out.get(phase.group, 0.0) + durations.downtime(phase)
    return out


# -- the run's timeline --------------------------------------------------------------------------------


def batches(phases: Sequence[Phase], parallel: int | None = None) -> Iterator[tuple[list[Phase], int]]:
    """The order a run takes the phases in (the executor runs them in it): prepare (its steps up to
    PREPARE_PARALLEL at once), main's phases alone, then the host groups of one hop up to `parallel` at
    once (default one at a time), validate last. With waves, each wave is a batch of its own, up to
    `parallel` at once (default the whole wave), and nothing of the next wave begins before it ends."""
    hosts: list[Phase] = []

    def width() -> int:
        if parallel is not None:
            return parallel
        return len(hosts) if hosts[0].wave is not None else 1

    for phase in phases:
        if phase.group is not None and phase.group != MAIN:
            if hosts and hosts[-1].wave != phase.wave:
                yield hosts, width()
                hosts = []
            hosts.append(phase)
            continue
        if hosts:
            yield hosts, width()
            hosts = []
        yield [phase], PREPARE_PARALLEL if phase.kind is PhaseKind.PREPARE else 1
    if hosts:
        yield hosts, width()


def schedule(lengths: Sequence[float], lanes: int) -> list[tuple[float, float]]:
    """(start, end) of each job, taken in order by whichever of `lanes` workers is free first."""
    free = [0.0] * max(1, min(lanes, len(lengths) or 1))
    out = []
    for length in lengths:
        start = heapq.heappop(free)
        out.append((start, start + length))
        heapq.heappush(free, start + length)
    return out


@dataclass(frozen=True)
class Span:
    """When a phase runs, in minutes from the start of the run, and how long its group is down (from
    `down_at` minutes into the phase)."""

    phase: Phase
    start: float
    end: float
    down: float = 0.0
    down_at: float = 0.0


@dataclass(frozen=True)
class Window:
    """How long hosts lag main in one hop (verdict degraded): from main's upgrade (or the start of the run,
    when main already runs the release) until the last host group's upgrade; `end` None when hosts
    still lag after the plan (they are out of scope)."""

    release: str
    start: float
    end: float | None
    host_groups: int

    @property
    def minutes(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True)
class Estimate:
    durations: Durations
    parallel: int | None  # host groups at once, as asked (None: one at a time, or a whole wave)
    spans: tuple[Span, ...]
    windows: tuple[Window, ...]

    @property
    def minutes(self) -> float:
        """The night: from the first step to the last."""
        return max((s.end for s in self.spans), default=0.0)

    def span(self, phase_id: str) -> Span:
        return next(s for s in self.spans if s.phase.id == phase_id)


def timeline(phases: Sequence[Phase], durations: Durations, parallel: int | None = None) -> list[Span]:
    """Each phase's expected start and end, taken in the run's order (`batches`)."""
    spans: list[Span] = []
    now = 0.0
    for batch, lanes in batches(phases, parallel):
        if batch[0].kind is PhaseKind.PREPARE:
            slots = schedule([durations.step(s) for s in batch[0].steps], lanes)
            end = now + max((e for _, e in slots), default=0.0)
            spans.append(Span(batch[0], now, end))
            now = end
            continue
        walks = [durations.walk(p) for p in batch]
        slots = schedule([length for length, _, _ in walks], lanes)
        for phase, (start, finish), (_, down_at, down) in zip(batch, slots, walks, strict=True):
            if phase.group is None:
                down_at, down = 0.0, 0.0
            spans.append(Span(phase, now + start, now + finish, down, down_at))
        now += max((e for _, e in slots), default=0.0)
    return spans


def degraded_windows(spans: Sequence[Span]) -> list[Window]:
    """Per hop in which hosts lag main at some step: from main's phase of that release (or the run's
    first group phase) to the end of the last host group's phase of that release."""
    releases = list(dict.fromkeys(s.phase.release for s in spans if s.phase.release))
    last_verdict = next(
        (st.verdict_after for s in reversed(spans) for st in reversed(s.phase.steps) if st.sets_release),
        SkewVerdict.OK,
    )
    windows = []
    for release in releases:
        of_hop = [s for s in spans if s.phase.release == release]
        if not any(st.verdict_after is SkewVerdict.DEGRADED for s in of_hop for st in s.phase.steps):
            continue
        main = [s for s in of_hop if s.phase.group == MAIN]
        hosts = [s for s in of_hop if s.phase.group != MAIN]
        start = main[0].start if main else 0.0  # without main's phase, hosts lag from the start
        open_ended = release == releases[-1] and last_verdict is SkewVerdict.DEGRADED
        end = None if open_ended or not hosts else max(s.end for s in hosts)
        windows.append(Window(release, start, end, len(hosts)))
    return windows


def estimate(
    plan: Plan,
    configured: Mapping[str, float],
    parallel: int | None = None,
    learned: Mapping[str, Mapping[str, float]] | None = None,
) -> Estimate:
    """The plan's expected timeline with host groups upgraded `parallel` at a time (or as `batches`
    says), from each server's `learned` minutes where known, else the inventory's `durations`."""
    durations = Durations.of(configured, learned)
    spans = timeline(plan.phases, durations, parallel)
    return Estimate(durations, parallel, tuple(spans), tuple(degraded_windows(spans)))


# -- what each tenant sees ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactWindow:
    """One stretch of a tenant's night, in minutes from the start of the run: `down` while its group is
    down in one hop, `degraded` while its host lags main (some functions do not work); `end` None when it
    still lags after the plan (its group is out of scope)."""

    kind: str  # down | degraded
    hop: str  # the release of the hop it belongs to
    start: float
    end: float | None

    @property
    def minutes(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hop": self.hop,
            "start_minutes": _minutes(self.start),
            "end_minutes": _minutes(self.end),
            "minutes": _minutes(self.minutes),
        }


def _minutes(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True)
class TenantImpact:
    """One tenant's night: each window it is down or degraded, in order, never overlapping, and the totals
    of each kind (a total is a sum of windows, never a window itself)."""

    tenant: str
    group: str
    wave: int | None
    windows: tuple[ImpactWindow, ...] = ()

    def of(self, kind: str) -> tuple[ImpactWindow, ...]:
        return tuple(w for w in self.windows if w.kind == kind)

    @property
    def total_down(self) -> float:
        return sum(w.minutes or 0.0 for w in self.of("down"))

    @property
    def total_degraded(self) -> float | None:
        """None: it still lags main after the plan, so the total has no end."""
        windows = self.of("degraded")
        if any(w.end is None for w in windows):
            return None
        return sum(w.minutes or 0.0 for w in windows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "group": self.group,
            "wave": self.wave,
            "windows": [w.to_dict() for w in self.windows],
            "total_down_minutes": _minutes(self.total_down),
            "total_degraded_minutes": _minutes(self.total_degraded),
        }


def tenant_impact(
    plan: Plan, groups: Sequence[tuple[str, Sequence[str]]], timing: Estimate
) -> list[TenantImpact]:
    """Per tenant of `groups` ((group, its tenants) in the inventory's order, main's first): each window its
    group is down (per hop: an HA group's whole outage; a DR pair's primary, the server that serves; a
    single server's) and each window it lags main before that (from main's upgrade in the hop until its own
    group goes down). Main's tenants move with main and never lag it; a group out of scope lags from the
    first hop in which hosts lag until after the plan."""
    spans: dict[str, list[Span]] = {}
    for span in timing.spans:
        if span.phase.group is not None:
            spans.setdefault(span.phase.group, []).append(span)
    waves: Waves | None = plan.waves
    out: list[TenantImpact] = []
    for group, tenants in groups:
        mine = spans.get(group, [])
        windows: list[ImpactWindow] = []
        for span in mine:
            if span.down:
                begin = span.start + span.down_at
                windows.append(ImpactWindow("down", span.phase.release or "", begin, begin + span.down))
        if group != MAIN:
            for lag in timing.windows:
                of_hop = [s for s in mine if s.phase.release == lag.release]
                if of_hop:
                    downs = [s.start + s.down_at for s in of_hop if s.down]
                    until = min(downs) if downs else max(s.end for s in of_hop)
                    if until > lag.start:
                        windows.append(ImpactWindow("degraded", lag.release, lag.start, until))
                elif not plan.scope.covers(group, False):
                    windows.append(ImpactWindow("degraded", lag.release, lag.start, None))
                    break  # it never catches up: one window, open after the plan
        windows.sort(key=lambda w: w.start)
        wave = waves.groups.get(group) if waves is not None else None
        out += [TenantImpact(tenant, group, wave, tuple(windows)) for tenant in tenants]
    return out


def hours_and_minutes(minutes: float) -> str:
    """`2 h 05 min`, `40 min`: how long, to the minute."""
    whole = round(minutes)
    hours, rest = divmod(whole, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"
