"""Waves: `--waves SPEC` read, and the host groups split into waves of those sizes, in the inventory's order
(or its `wave:` keys). Pure arithmetic: the planner turns the waves into phases."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xsoar_mt.errors import StalePlan, UsageError, shown
from xsoar_mt.inventory import Group

_ITEM = re.compile(r"^(?:(?P<count>\d+)|(?P<percent>\d+(?:\.\d+)?)%)$")


@dataclass(frozen=True)
class Size:
    """One wave's size: a number of host groups, or a percentage of the groups left."""

    count: int | None = None
    percent: float | None = None

    def of(self, left: int) -> int:
        """How many of the `left` groups this wave takes: at least one, at most all of them."""
        if self.count is not None:
            wanted = self.count
        else:
            assert self.percent is not None
            # The product is rounded first so 10% of 30 is 3, not 4 from 3.0000000000000004.
            wanted = math.ceil(round(self.percent * left / 100, 9))
        return max(1, min(left, wanted))

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


@dataclass(frozen=True)
class WaveSpec:
    """`--waves 1,25%,100%`: the sizes in order; the last size repeats until every group has a wave."""

    sizes: tuple[Size, ...]

    @classmethod
    def parse(cls, text: str) -> WaveSpec:
        items = [item.strip() for item in text.split(",")]
        sizes: list[Size] = []
        for item in items:
            found = _ITEM.match(item)
            if found is None:
                raise UsageError(
                    f"--waves {text}: {item!r} is not a wave size; give counts or percentages of the groups "
                    "left, separated by commas (e.g. 1,25%,100%)"
                )
            if found["count"] is not None:
                count = int(found["count"])
                if count < 1:
                    raise UsageError(f"--waves {text}: a wave holds at least one host group, not {count}")
                sizes.append(Size(count=count))
            else:
                percent = float(found["percent"])
                if not 0 < percent <= 100:
                    raise UsageError(f"--waves {text}: {item} is not a percentage above 0% and up to 100%")
                sizes.append(Size(percent=percent))
        return cls(tuple(sizes))

    def __str__(self) -> str:
        return ",".join(str(s) for s in self.sizes)

    def split(self, total: int) -> list[int]:
        """The size of each wave for `total` host groups, in order; they add up to `total`."""
        out: list[int] = []
        left = total
        while left > 0:
            size = self.sizes[min(len(out), len(self.sizes) - 1)].of(left)
            out.append(size)
            left -= size
        return out


def saved_spec(text: str) -> WaveSpec:
    """A saved plan's wave spec, read again: the run splits the groups into waves from it, never takes
    the plan file's own list of which group goes in which wave (an edited list would pass for reviewed)."""
    try:
        return WaveSpec.parse(text)
    except UsageError:
        raise StalePlan([f"waves.spec: {shown(text, 80)} is not a wave spec"]) from None


def ordered(groups: Sequence[Group]) -> list[Group]:
    """The order groups fill the waves in: those with a `wave:` key first, lower first, then the rest; the
    inventory's order among equals."""
    return sorted(groups, key=lambda g: (g.wave is None, g.wave or 0))


def assign(groups: Sequence[Group], spec: WaveSpec) -> dict[str, int]:
    """Each group's wave number, from 1, in the order `ordered` gives and the sizes `spec` gives."""
    out: dict[str, int] = {}
    queue = ordered(groups)
    start = 0
    for number, size in enumerate(spec.split(len(queue)), 1):
        out.update((g.name, number) for g in queue[start : start + size])
        start += size
    return out


def keep(groups: Sequence[Group], waves: Mapping[str, int]) -> dict[str, int]:
    """The waves a resumed run started with, kept: each group `waves` names stays in its wave; a group it
    does not name (added to the inventory since) goes in a wave after the last."""
    after = max(waves.values(), default=0) + 1
    return {**waves, **{g.name: waves.get(g.name, after) for g in groups}}
