"""The version skew rule: how far hosts may lag main, judged on any fleet state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from xsoar_mt.releases import ReleaseLine


class SkewVerdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    UNSUPPORTED = "unsupported"


# What stops working while a host is one release behind main (the vendor's list).
DEGRADED_FUNCTIONS: tuple[str, ...] = (
    "content sync between main and the host",
    "distributing and updating playbooks and scripts",
    "propagating new Marketplace integrations to the host",
    "host management (delete, add to an HA group)",
    "account management (move tenants, sync)",
    "adding new roles and propagation labels to tenants",
)


@dataclass(frozen=True)
class Fault:
    server: str
    verdict: SkewVerdict
    reason: str
    ahead: bool = False  # the host runs a newer release than main (never allowed, not even for a moment)


@dataclass(frozen=True)
class Judgement:
    verdict: SkewVerdict
    faults: tuple[Fault, ...]

    @property
    def degraded_functions(self) -> tuple[str, ...]:
        return DEGRADED_FUNCTIONS if self.verdict is not SkewVerdict.OK else ()


def judge_releases(releases: Mapping[str, str], main: Collection[str], line: ReleaseLine) -> Judgement:
    """`judge` on each server's release, the servers named in `main` told from the hosts."""
    return judge(
        {n: r for n, r in releases.items() if n in main},
        {n: r for n, r in releases.items() if n not in main},
        line,
    )


def judge(main: Mapping[str, str], hosts: Mapping[str, str], line: ReleaseLine) -> Judgement:
    """Judge a fleet state given each server's release (e.g. "6.11").

    Main's servers can differ while main is being upgraded; a host is judged against the newest main
    server for lagging and against the oldest for being ahead, so a transition is never judged kinder
    than any moment within it.
    """
    if not main:
        return Judgement(SkewVerdict.OK, ())
    main_idx = [line.index(r) for r in main.values()]
    newest, oldest = max(main_idx), min(main_idx)
    newest_name = line.releases[newest]
    faults: list[Fault] = []
    for server, release in hosts.items():
        idx = line.index(release)
        if idx > oldest:
            faults.append(
                Fault(
                    server,
                    SkewVerdict.UNSUPPORTED,
                    f"{server} runs {release}, ahead of main ({line.releases[oldest]})",
                    ahead=True,
                )
            )
        elif newest - idx > 1:
            faults.append(
                Fault(
                    server,
                    SkewVerdict.UNSUPPORTED,
                    f"{server} runs {release}, {newest - idx} releases behind main ({newest_name})",
                )
            )
        elif newest - idx == 1:
            faults.append(
                Fault(
                    server,
                    SkewVerdict.DEGRADED,
                    f"{server} runs {release}, one release behind main ({newest_name})",
                )
            )
    if any(f.verdict is SkewVerdict.UNSUPPORTED for f in faults):
        return Judgement(SkewVerdict.UNSUPPORTED, tuple(faults))
    return Judgement(SkewVerdict.DEGRADED if faults else SkewVerdict.OK, tuple(faults))


class FleetState:
    """A mutable fleet state that answers the skew verdict in constant time as servers change.

    The planner walks thousands of steps; re-judging every server after each would be quadratic. This
    keeps per-release counts and gives the same verdict `judge` gives (tests hold the two together).
    """

    def __init__(self, main: Mapping[str, str], hosts: Mapping[str, str], line: ReleaseLine) -> None:
        self.line = line
        self.main = dict(main)
        self.hosts = dict(hosts)
        self._main_count = Counter(line.index(r) for r in self.main.values())
        self._host_count = Counter(line.index(r) for r in self.hosts.values())

    def set(self, server: str, release: str) -> None:
        table, count = (
            (self.main, self._main_count) if server in self.main else (self.hosts, self._host_count)
        )
        old = line_idx = self.line.index(table[server])
        count[old] -= 1
        if not count[old]:
            del count[old]
        line_idx = self.line.index(release)
        count[line_idx] += 1
        table[server] = release

    def verdict(self) -> SkewVerdict:
        if not self._main_count or not self._host_count:
            return SkewVerdict.OK
        newest, oldest = max(self._main_count), min(self._main_count)
        lowest_host, highest_host = min(self._host_count), max(self._host_count)
        if highest_host > oldest or newest - lowest_host > 1:
            return SkewVerdict.UNSUPPORTED
        return SkewVerdict.DEGRADED if newest - lowest_host == 1 else SkewVerdict.OK

    def judge(self) -> Judgement:
        return judge(self.main, self.hosts, self.line)

    def release_of(self, server: str) -> str:
        return self.main.get(server) or self.hosts[server]
