"""Shared planning helpers for the planner's tests: a plan of a whole deployment, a plan in waves, and the
generated cases (hypothesis) with `plan_or_refusal`, which checks each plan or refusal against the skew rule."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import event
from hypothesis import strategies as st

from tests.inventories import GroupSpec, build
from xsoar_mt.errors import PlanRefused
from xsoar_mt.inventory import Inventory
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import ReleaseLine
from xsoar_mt.waves import WaveSpec


def plan(inventory: Inventory, target: str = "6.12", scope: Scope = Scope()) -> Plan:
    return plan_upgrade(inventory, inventory.versions(), target, scope)


def waved(inventory: Inventory, spec: str, target: str = "6.12") -> Plan:
    return plan_upgrade(inventory, inventory.versions(), target, waves=WaveSpec.parse(spec))


LINE = ReleaseLine()
RELEASES = LINE.releases


@dataclass(frozen=True)
class Case:
    inventory: Inventory
    target: str
    scope: Scope


@st.composite
def cases(draw: st.DrawFn, half_done: bool | None = None) -> Case:
    """A deployment the database rules allow, in a supported state, a target at or above main, a scope.

    Most cases can be planned: the whole deployment, main with some host groups, or main alone, to a
    target a release or two away (about 85 in 100 drawn). The others cannot (hosts alone past main, or a
    target that leaves a host out of scope too far behind): those check the refusals. `half_done` forces (or
    forbids) main left half-upgraded by a run that stopped midway; False also keeps each host group on
    one release.
    """
    database = draw(st.sampled_from(["bolt", "elasticsearch"]))
    grouped = "ha" if database == "elasticsearch" else "dr"
    m = draw(st.integers(1, len(RELEASES) - 3))  # main's (oldest) release
    main_shape = grouped if half_done else draw(st.sampled_from(["single", grouped]))
    size = 1 if main_shape == "single" else 2 if main_shape == "dr" else draw(st.integers(2, 4))
    main_releases = [RELEASES[m]] * size
    if half_done is None:
        half_done = main_shape != "single" and draw(st.integers(0, 3)) == 0
    if half_done:  # a run stopped midway: the DR secondary, or the first HA app server, is done
        main_releases[1 if main_shape == "dr" else 0] = RELEASES[m + 1]
    newest = m + 1 if half_done else m
    # Supported hosts: never ahead of the oldest main server, at most one behind the newest.
    host_release = st.sampled_from(sorted({RELEASES[max(newest - 1, 0)], RELEASES[m]}))
    hosts: list[GroupSpec] = []
    for i in range(draw(st.integers(0, 4))):
        shape = draw(st.sampled_from(["single", grouped]))
        count = 1 if shape == "single" else 2 if shape == "dr" else draw(st.integers(2, 3))
        if half_done is False:  # every server of a group on one release
            releases = (draw(host_release),) * count
        else:  # a host group may be half-done too
            releases = tuple(draw(host_release) for _ in range(count))
        hosts.append(GroupSpec(f"g{i}", shape, releases, tenants=draw(st.integers(0, 2))))
    names = [h.name for h in hosts]
    kind = draw(st.integers(0, 11))
    if kind < 7 or not names:
        scope = Scope()
    elif kind < 10:  # main and some of the host groups
        scope = Scope(main=True, groups=tuple(draw(st.lists(st.sampled_from(names), unique=True))))
    elif kind < 11:  # host groups alone: plannable only up to main's release
        scope = Scope(
            main=False, groups=tuple(draw(st.lists(st.sampled_from(names), min_size=1, unique=True)))
        )
    else:
        scope = Scope(main=True, groups=())
    hops = draw(st.integers(0, 2)) if kind < 11 else draw(st.integers(0, 1))
    target = RELEASES[min(newest + hops, len(RELEASES) - 1)]
    inventory = build(database, GroupSpec("main", main_shape, tuple(main_releases), tenants=1), hosts)
    return Case(inventory, target, scope)


def feasible(case: Case) -> bool:
    """Whether some order of installs brings everything in scope to the target and keeps the skew rule
    at every moment, judged from the rule alone. Servers out of scope never change. With main out of
    scope, hosts may only go to main's release, and only if main is not half-upgraded (a host on main's
    newest release would be ahead of its oldest server). With main in scope, main climbs one release at
    a time and hosts in scope can follow each step, so only hosts out of scope can be left more than
    one release behind, and the worst moment is the end."""
    inv, target = case.inventory, LINE.index(case.target)
    main = [LINE.index(s.version.release) for s in inv.main.servers if s.version]
    out_of_scope = [
        LINE.index(s.version.release)
        for g in inv.hosts
        if not case.scope.covers(g.name, False)
        for s in g.servers
        if s.version
    ]
    if not case.scope.main:
        to_move = [s for g in inv.hosts if case.scope.covers(g.name, False) for s in g.servers]
        return all(s.version and LINE.index(s.version.release) == target for s in to_move) or (
            min(main) == max(main) == target
        )
    return all(target - release <= 1 for release in out_of_scope)


def plan_or_refusal(case: Case) -> Plan | None:
    """The plan, or None when the planner refused; either way it agrees with `feasible`."""
    can = feasible(case)
    event("feasible" if can else "refused by the skew rule")
    try:
        plan = plan_upgrade(case.inventory, case.inventory.versions(), case.target, case.scope)
    except PlanRefused as refused:
        assert not can, f"refused a feasible case: {refused.message}"
        assert case.scope != Scope(), "a plan of everything from a supported state is never refused"
        return None
    assert can, "planned a case no order can keep within the skew rule"
    return plan
