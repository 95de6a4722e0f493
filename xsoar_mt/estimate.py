"""How long the night takes: expected minutes per step, each group's downtime, the run's length, and
how long hosts lag main in each hop. Pure arithmetic over a plan and the inventory's `durations`."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from xsoar_mt.plan import Action, Phase, Plan, Step
from xsoar_mt.skew import Verdict

# Expected minutes per action when the inventory's `durations` leaves one out (docs/reference/inventory.md).
# A backup archives /var/lib/demisto; a fetch moves an installer of about 1 GiB; `start` is the service
# command returning, `healthy` the wait until /health answers after it.
DEFAULT_MINUTES: Mapping[str, float] = {
    "backup": 10.0,
    "fetch": 5.0,
    "stop": 1.0,
    "install": 15.0,
    "start": 1.0,
    "healthy": 5.0,
    "validate": 1.0,
}
DURATION_KEYS: tuple[str, ...] = tuple(DEFAULT_MINUTES)
_KEY = {
    Action.BACKUP: "backup",
    Action.FETCH: "fetch",
    Action.STOP: "stop",
    Action.INSTALL: "install",
    Action.START: "start",
    Action.HEALTHY: "healthy",
    Action.VALIDATE: "validate",
}
# How many prepare steps a run carries out at once (the executor's RunOptions.prepare_parallel; a unit
# test holds the two equal).
PREPARE_PARALLEL = 16
MAIN = "main"  # the name of main's group, which no host group may take


@dataclass(frozen=True)
class Durations:
    """Minutes per action: the inventory's where it gives them, the defaults for the rest."""

    minutes: Mapping[str, float]
    given: frozenset[str] = frozenset()

    @classmethod
    def of(cls, configured: Mapping[str, float]) -> Durations:
        return cls({**DEFAULT_MINUTES, **configured}, frozenset(configured) & frozenset(DEFAULT_MINUTES))

    def step(self, step: Step) -> float:
        """A step's servers work at the same time, so a step takes as long as one server's action."""
        return self.minutes[_KEY[step.action]]

    def phase(self, phase: Phase) -> float:
        return sum(self.step(s) for s in phase.steps)

    def downtime(self, phase: Phase) -> float:
        """Minutes from the phase's first stop until the group serves again: until the first server
        stopped first is healthy. In the vendor's orders that server is the one that serves: a DR pair's
        primary (stopped first, upgraded last), any server of an HA group (all are stopped at once; the
        first one installed serves while the rest are), a single server. 0 when nothing is stopped."""
        elapsed, down, serving = 0.0, None, frozenset[str]()
        for step in phase.steps:
            if down is None and step.action is Action.STOP:
                down, serving = elapsed, frozenset(step.servers)
            elapsed += self.step(step)
            if down is not None and step.action is Action.HEALTHY and serving & set(step.servers):
                return elapsed - down
        return elapsed - down if down is not None else 0.0


def group_downtime(phases: Sequence[Phase], durations: Durations) -> dict[str, float]:
    """Expected minutes each server group is down, summed over the hops."""
    out: dict[str, float] = {}
    for phase in phases:
        if phase.group is not None:
            out[phase.group] = out.get(phase.group, 0.0) + durations.downtime(phase)
    return out


# -- the run's timeline --------------------------------------------------------------------------------


def batches(phases: Sequence[Phase], parallel: int) -> Iterator[tuple[list[Phase], int]]:
    """The order a run takes the phases in: prepare (its steps up to PREPARE_PARALLEL at once), main's
    phases alone, the host groups of one hop up to `parallel` at once, validate last."""
    hosts: list[Phase] = []
    for phase in phases:
        if phase.group is not None and phase.group != MAIN:
            hosts.append(phase)
            continue
        if hosts:
            yield hosts, parallel
            hosts = []
        yield [phase], PREPARE_PARALLEL if phase.id == "prepare" else 1
    if hosts:
        yield hosts, parallel


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
    """When a phase runs, in minutes from the start of the run, and how long its group is down."""

    phase: Phase
    start: float
    end: float
    down: float = 0.0


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
    parallel: int
    spans: tuple[Span, ...]
    windows: tuple[Window, ...]

    @property
    def minutes(self) -> float:
        """The night: from the first step to the last."""
        return max((s.end for s in self.spans), default=0.0)

    def span(self, phase_id: str) -> Span:
        return next(s for s in self.spans if s.phase.id == phase_id)


def timeline(phases: Sequence[Phase], durations: Durations, parallel: int = 1) -> list[Span]:
    """Each phase's expected start and end, taken in the run's order (`batches`)."""
    spans: list[Span] = []
    now = 0.0
    for batch, lanes in batches(phases, parallel):
        if batch[0].id == "prepare":
            slots = schedule([durations.step(s) for s in batch[0].steps], lanes)
            end = now + max((e for _, e in slots), default=0.0)
            spans.append(Span(batch[0], now, end))
            now = end
            continue
        slots = schedule([durations.phase(p) for p in batch], lanes)
        for phase, (start, finish) in zip(batch, slots, strict=True):
            down = durations.downtime(phase) if phase.group is not None else 0.0
            spans.append(Span(phase, now + start, now + finish, down))
        now += max((e for _, e in slots), default=0.0)
    return spans


def degraded_windows(spans: Sequence[Span]) -> list[Window]:
    """Per hop in which hosts lag main at some step: from main's phase of that release (or the run's
    first group phase) to the end of the last host group's phase of that release."""
    releases = list(dict.fromkeys(s.phase.release for s in spans if s.phase.release))
    last_verdict = next(
        (st.verdict_after for s in reversed(spans) for st in reversed(s.phase.steps) if st.sets_release),
        Verdict.OK,
    )
    windows = []
    for release in releases:
        of_hop = [s for s in spans if s.phase.release == release]
        if not any(st.verdict_after is Verdict.DEGRADED for s in of_hop for st in s.phase.steps):
            continue
        main = [s for s in of_hop if s.phase.group == MAIN]
        hosts = [s for s in of_hop if s.phase.group != MAIN]
        start = main[0].start if main else 0.0  # without main's phase, hosts lag from the start
        open_ended = release == releases[-1] and last_verdict is Verdict.DEGRADED
        end = None if open_ended or not hosts else max(s.end for s in hosts)
        windows.append(Window(release, start, end, len(hosts)))
    return windows


def estimate(plan: Plan, configured: Mapping[str, float], parallel: int = 1) -> Estimate:
    """The plan's expected timeline with host groups upgraded `parallel` at a time."""
    durations = Durations.of(configured)
    spans = timeline(plan.phases, durations, parallel)
    return Estimate(durations, parallel, tuple(spans), tuple(degraded_windows(spans)))


def clock(minutes: float) -> str:
    """`2 h 05 min`, `40 min`: how long, to the minute."""
    whole = round(minutes)
    hours, rest = divmod(whole, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"
