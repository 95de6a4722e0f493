"""Properties of every plan, over generated deployments, versions, targets and scopes (hypothesis).

Each plan is replayed step by step: the versions each install sets are applied and the fleet judged
again with `judge`, so the invariants hold for the fleet as it is after every step, not only at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.inventories import GroupSpec, build
from xsoar_mt.errors import PlanRefused
from xsoar_mt.inventory import Inventory, Topology
from xsoar_mt.plan import Action, Plan, Scope
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import ReleaseLine
from xsoar_mt.skew import Verdict, judge

LINE = ReleaseLine()
RELEASES = LINE.releases


@dataclass(frozen=True)
class Case:
    inventory: Inventory
    target: str
    scope: Scope


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A deployment the database rules allow, in a supported state, a target at or above main, a scope."""
    database = draw(st.sampled_from(["bolt", "elasticsearch"]))
    grouped = "ha" if database == "elasticsearch" else "dr"
    m = draw(st.integers(1, len(RELEASES) - 2))  # main's (oldest) release
    main_shape = draw(st.sampled_from(["single", grouped]))
    size = 1 if main_shape == "single" else 2 if main_shape == "dr" else draw(st.integers(2, 4))
    main_releases = [RELEASES[m]] * size
    half_upgraded = main_shape != "single" and draw(st.booleans())
    if half_upgraded:  # a run stopped midway: the DR secondary, or the first HA app server, is done
        main_releases[1 if main_shape == "dr" else 0] = RELEASES[m + 1]
    newest = m + 1 if half_upgraded else m
    # Supported hosts: never ahead of the oldest main server, at most one behind the newest.
    host_release = st.sampled_from(sorted({RELEASES[max(newest - 1, 0)], RELEASES[m]}))
    hosts: list[GroupSpec] = []
    for i in range(draw(st.integers(0, 5))):
        shape = draw(st.sampled_from(["single", grouped]))
        count = 1 if shape == "single" else 2 if shape == "dr" else draw(st.integers(2, 3))
        releases = tuple(draw(host_release) for _ in range(count))
        hosts.append(GroupSpec(f"g{i}", shape, releases, tenants=draw(st.integers(0, 2))))
    target = RELEASES[draw(st.integers(newest, min(newest + 3, len(RELEASES) - 1)))]
    names = [h.name for h in hosts]
    scope = draw(
        st.one_of(
            st.just(Scope()),
            st.just(Scope(main=True, groups=())),
            st.lists(st.sampled_from(names), min_size=1, unique=True).map(
                lambda g: Scope(main=False, groups=tuple(g))
            )
            if names
            else st.just(Scope()),
            st.lists(st.sampled_from(names), unique=True).map(lambda g: Scope(main=True, groups=tuple(g)))
            if names
            else st.just(Scope()),
        )
    )
    inventory = build(database, GroupSpec("main", main_shape, tuple(main_releases), tenants=1), hosts)
    return Case(inventory, target, scope)


def plan_or_none(case: Case) -> Plan | None:
    try:
        return plan_upgrade(case.inventory, case.inventory.versions(), case.target, case.scope)
    except PlanRefused:
        assert case.scope != Scope(), "a plan of everything from a supported state is never refused"
        return None


@settings(max_examples=200, deadline=None)
@given(cases())
def test_every_plan_keeps_the_vendor_order_and_the_skew_rule_at_every_step(case: Case) -> None:
    plan = plan_or_none(case)
    if plan is None:
        return
    inv = case.inventory
    main_names = {s.name for s in inv.main.servers}
    release = {s.name: s.version.release for s in inv.servers if s.version}
    at_target_before = {n for n, r in release.items() if r == case.target}
    group_of = {s.name: g for g in inv.groups for s in g.servers}
    stopped: set[str] = set()
    installed_at: dict[tuple[str, str], int] = {}  # (server, release) -> step number

    for number, step in enumerate(plan.steps):
        if step.action not in (Action.VALIDATE, Action.START, Action.HEALTHY):  # gating a done server is fine
            assert not at_target_before & set(step.servers), (
                f"{step.id} changes a server already at the target"
            )
        if step.action is Action.STOP:
            stopped |= set(step.servers)
        elif step.action is Action.START:
            stopped -= set(step.servers)
        elif step.action is Action.INSTALL:
            assert step.sets_release is not None
            assert set(step.servers) <= stopped, f"{step.id} installs on a running server"
            for server in step.servers:
                group = group_of[server]
                if group.topology is Topology.HA:
                    pending = {
                        s.name
                        for s in group.servers
                        if LINE.index(release[s.name]) < LINE.index(step.release)
                    }
                    assert pending <= stopped, f"{step.id} installs before all of {group.name} is stopped"
                release[server] = step.sets_release
                installed_at[(server, step.sets_release)] = number
        main = {n: r for n, r in release.items() if n in main_names}
        hosts = {n: r for n, r in release.items() if n not in main_names}
        verdict = judge(main, hosts, LINE).verdict
        assert verdict is not Verdict.UNSUPPORTED, f"unsupported after {step.id}"
        assert verdict is step.verdict_after, f"{step.id} says {step.verdict_after}, the fleet is {verdict}"
        oldest_main = min(LINE.index(r) for r in main.values())
        assert all(LINE.index(r) <= oldest_main for r in hosts.values()), (
            f"a host is ahead of main after {step.id}"
        )

    for hop in plan.hops:  # main's installs of a hop come before every host's install of that hop
        main_steps = [i for (n, r), i in installed_at.items() if r == hop and n in main_names]
        host_steps = [i for (n, r), i in installed_at.items() if r == hop and n not in main_names]
        if main_steps and host_steps:
            assert max(main_steps) < min(host_steps)
    for group in inv.groups:  # a DR secondary is installed before its primary, every hop
        if group.topology is Topology.DR:
            for hop in plan.hops:
                secondary = installed_at.get((group.secondary.name, hop))
                primary = installed_at.get((group.primary.name, hop))
                if secondary is not None and primary is not None:
                    assert secondary < primary
    for group in inv.groups:  # every server in scope ends at the target
        if case.scope.covers(group.name, group.is_main):
            assert all(release[s.name] == case.target for s in group.servers), group.name


@settings(max_examples=100, deadline=None)
@given(cases())
def test_every_plan_survives_its_json_form(case: Case) -> None:
    plan = plan_or_none(case)
    if plan is not None:
        assert Plan.from_dict(plan.to_dict()) == plan
        ids = [s.id for s in plan.steps]
        assert len(ids) == len(set(ids))
