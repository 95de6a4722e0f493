"""Waves: `--waves SPEC` read, and the host groups split into waves (hypothesis for the arithmetic)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.inventories import GroupSpec, build
from xsoar_mt.errors import UsageError
from xsoar_mt.inventory import Group, parse_inventory
from xsoar_mt.waves import Size, WaveSpec, assign, keep, ordered

sizes = st.one_of(
    st.integers(1, 12).map(lambda n: Size(count=n)),
    st.integers(1, 100).map(lambda p: Size(percent=float(p))),
)
specs = st.lists(sizes, min_size=1, max_size=5).map(lambda s: WaveSpec(tuple(s)))


def hosts(count: int, waves: dict[int, int] | None = None) -> tuple[Group, ...]:
    """`count` single host groups g0, g1, ...; `waves` gives some of them a `wave:` key (index -> N)."""
    inventory = build("bolt", GroupSpec("main", "single", ("6.11",)), [
        GroupSpec(f"g{i}", "single", ("6.11",)) for i in range(count)
    ])  # fmt: skip
    return tuple(
        Group(g.name, g.is_main, g.topology, g.servers, g.tenants, g.load_balancer, (waves or {}).get(i))
        for i, g in enumerate(inventory.hosts)
    )


@given(specs, st.integers(0, 80))
def test_the_wave_sizes_add_up_to_the_groups_and_follow_the_spec(spec: WaveSpec, total: int) -> None:
    split = spec.split(total)
    assert sum(split) == total
    assert all(size >= 1 for size in split)
    left = total
    for index, size in enumerate(split):
        rule = spec.sizes[min(index, len(spec.sizes) - 1)]  # the last size repeats until all are placed
        assert size == rule.of(left)
        if rule.count is not None:
            assert size == min(rule.count, left)
        else:
            assert rule.percent is not None
            assert size >= rule.percent * left / 100 - 1e-9 and size - 1 < max(rule.percent * left / 100, 1)
        left -= size


@given(specs, st.integers(0, 40), st.dictionaries(st.integers(0, 39), st.integers(1, 4)))
def test_every_group_is_in_exactly_one_wave_in_order(
    spec: WaveSpec, count: int, keys: dict[int, int]
) -> None:
    groups = hosts(count, {i: n for i, n in keys.items() if i < count})
    waves = assign(groups, spec)
    assert sorted(waves) == sorted(g.name for g in groups)  # each group once
    numbers = [waves[g.name] for g in ordered(groups)]
    assert numbers == sorted(numbers)  # the order is kept: no group goes before one ahead of it
    assert sorted(set(numbers)) == list(range(1, len(set(numbers)) + 1))  # waves 1, 2, ... with none empty
    assert [numbers.count(n) for n in sorted(set(numbers))] == spec.split(count)


def test_a_canary_then_a_quarter_of_the_rest_then_the_rest() -> None:
    assert WaveSpec.parse("1,25%,100%").split(40) == [1, 10, 29]


def test_the_last_size_repeats_until_every_group_has_a_wave() -> None:
    assert WaveSpec.parse("2,10").split(25) == [2, 10, 10, 3]
    assert WaveSpec.parse("50%").split(7) == [4, 2, 1]


def test_groups_with_a_wave_key_go_first_lower_first_the_rest_in_inventory_order() -> None:
    groups = hosts(5, {3: 1, 1: 2})
    assert [g.name for g in ordered(groups)] == ["g3", "g1", "g0", "g2", "g4"]
    assert assign(groups, WaveSpec.parse("1,100%")) == {"g3": 1, "g1": 2, "g0": 2, "g2": 2, "g4": 2}


def test_a_resume_keeps_each_group_in_its_wave_and_puts_a_new_group_after_the_last() -> None:
    groups = hosts(4)
    assert keep(groups, {"g0": 1, "g1": 2, "g2": 2}) == {"g0": 1, "g1": 2, "g2": 2, "g3": 3}


@pytest.mark.parametrize("text", ["", "0", "0%", "150%", "a", "1,,2", "-1", "1.5", "25 %x"])
def test_a_bad_wave_spec_is_a_usage_error_naming_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--waves "):
        WaveSpec.parse(text)


def test_the_spec_reads_back_as_it_was_given() -> None:
    assert str(WaveSpec.parse("1, 25%,100%")) == "1,25%,100%"


INVENTORY = """\
inventory_version: 1
deployment: {name: w}
main:
  server: {name: m, address: 10.0.0.1}
hosts:
  - name: a
    server: {name: a1, address: 10.0.0.2}
    wave: 1
  - name: b
    server: {name: b1, address: 10.0.0.3}
"""


def test_the_inventory_reads_a_host_groups_wave_key() -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    assert [(g.name, g.wave) for g in inventory.hosts] == [("a", 1), ("b", None)]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (INVENTORY.replace("wave: 1", "wave: 0"), "inv.yaml:8: hosts[0].wave: 0 is out of range (1 to 1000)"),
        (
            INVENTORY.replace("wave: 1", "wave: first"),
            "inv.yaml:8: hosts[0].wave: expected a whole number of 1 or more (lower goes first), found 'first'",
        ),
        (
            INVENTORY.replace(
                "  server: {name: m, address: 10.0.0.1}", "  server: {name: m, address: 10.0.0.1}\n  wave: 1"
            ),
            "inv.yaml:5: main.wave: main is always upgraded first and alone; `wave` orders host groups",
        ),
    ],
)
def test_a_bad_wave_key_names_its_file_line_and_key(text: str, problem: str) -> None:
    from xsoar_mt.errors import InventoryError

    with pytest.raises(InventoryError) as raised:
        parse_inventory(text, "inv.yaml")
    assert raised.value.problems == [problem]
