"""Properties of every plan, over generated deployments, versions, targets and scopes (hypothesis).

Each plan is replayed step by step: the versions each install sets are applied and the fleet judged
again with `judge`, so the invariants hold for the fleet as it is after every step, not only at the end.
Whether a case can be planned at all is decided from the skew rule alone (`feasible`, in planning.py),
independently of how the planner orders things: the planner must plan every feasible case and refuse every
other one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hypothesis import event, given, settings

from tests.unit.planning import LINE, Case, cases, plan_or_refusal
from xsoar_mt.inventory import Topology
from xsoar_mt.plan import Action, Plan, Step
from xsoar_mt.skew import SkewVerdict, judge


@dataclass
class Fleet:
    """The fleet as the plan leaves it: releases, stopped servers, servers the plan saw healthy since they
    last changed, and the step that installed each (server, release)."""

    release: dict[str, str]
    stopped: set[str]
    healthy: set[str]
    installed_at: dict[tuple[str, str], int]

    def copy(self) -> Fleet:
        return Fleet(dict(self.release), set(self.stopped), set(self.healthy), dict(self.installed_at))

    def apply(self, number: int, step: Step) -> None:
        servers = set(step.servers)
        if step.action is Action.STOP:
            self.stopped |= servers
            self.healthy -= servers
        elif step.action is Action.START:
            self.stopped -= servers
        elif step.action is Action.HEALTHY:
            self.healthy |= servers - self.stopped
        elif step.action is Action.INSTALL:
            assert step.sets_release is not None
            for server in step.servers:
                self.release[server] = step.sets_release
                self.installed_at[(server, step.sets_release)] = number
            self.healthy -= servers


def start(case: Case) -> Fleet:
    return Fleet({s.name: s.version.release for s in case.inventory.servers if s.version}, set(), set(), {})


def replay(case: Case, plan: Plan) -> Iterator[tuple[Step, Fleet, Fleet]]:
    """Each step with the fleet just before it and just after it."""
    fleet = start(case)
    for number, step in enumerate(plan.steps):
        before = fleet.copy()
        fleet.apply(number, step)
        yield step, before, fleet


@settings(max_examples=200, deadline=None)
@given(cases())
def test_every_plan_keeps_the_vendor_order_and_the_skew_rule_at_every_step(case: Case) -> None:
    plan = plan_or_refusal(case)
    if plan is None:
        return  # the refusal itself was checked against the rule, in plan_or_refusal
    inv = case.inventory
    main_names = {s.name for s in inv.main.servers}
    at_target_before = {s.name for s in inv.servers if s.version and s.version.release == case.target}
    group_of = {s.name: g for g in inv.groups for s in g.servers}
    end = start(case)
    for step, before, end in replay(case, plan):
        if step.action not in (Action.VALIDATE, Action.START, Action.HEALTHY):  # gating a done server is fine
            assert not at_target_before & set(step.servers), (
                f"{step.id} changes a server already at the target"
            )
        if step.action is Action.START:  # a server at the target is started only when it is down
            assert set(step.servers) <= before.stopped, f"{step.id} starts a server that is running"
        if step.action is Action.INSTALL:
            assert set(step.servers) <= before.stopped, f"{step.id} installs on a running server"
            for server in step.servers:
                group = group_of[server]
                if group.topology is Topology.HA:
                    pending = {
                        s.name
                        for s in group.servers
                        if LINE.index(before.release[s.name]) < LINE.index(step.release)
                    }
                    assert pending <= before.stopped, (
                        f"{step.id} installs before all of {group.name} is stopped"
                    )
        main = {n: r for n, r in end.release.items() if n in main_names}
        hosts = {n: r for n, r in end.release.items() if n not in main_names}
        verdict = judge(main, hosts, LINE).verdict
        assert verdict is not SkewVerdict.UNSUPPORTED, f"unsupported after {step.id}"
        assert verdict is step.verdict_after, f"{step.id} says {step.verdict_after}, the fleet is {verdict}"
        oldest_main = min(LINE.index(r) for r in main.values())
        assert all(LINE.index(r) <= oldest_main for r in hosts.values()), (
            f"a host is ahead of main after {step.id}"
        )

    for hop in plan.hops:  # main's installs of a hop come before every host's install of that hop
        main_steps = [i for (n, r), i in end.installed_at.items() if r == hop and n in main_names]
        host_steps = [i for (n, r), i in end.installed_at.items() if r == hop and n not in main_names]
        if main_steps and host_steps:
            assert max(main_steps) < min(host_steps)
    for group in inv.groups:  # a DR secondary is installed before its primary, every hop
        if group.topology is Topology.DR:
            for hop in plan.hops:
                secondary = end.installed_at.get((group.secondary.name, hop))
                primary = end.installed_at.get((group.primary.name, hop))
                if secondary is not None and primary is not None:
                    assert secondary < primary
    for group in inv.groups:  # every server in scope ends at the target
        if case.scope.covers(group.name, group.is_main):
            assert all(end.release[s.name] == case.target for s in group.servers), group.name


def first_healthy_violations(case: Case, plan: Plan) -> list[str]:
    """Installs of an HA group's member to release R before a member already on R runs and has been seen
    healthy (vendor: one server first, and once it is up and running, the others)."""
    found = []
    ha = {s.name: g for g in case.inventory.groups if g.topology is Topology.HA for s in g.servers}
    for step, before, _ in replay(case, plan):
        if step.action is not Action.INSTALL:
            continue
        for server in step.servers:
            if server not in ha:
                continue
            peers = [s.name for s in ha[server].servers if s.name != server]
            ahead = [p for p in peers if before.release[p] == step.release]
            if ahead and not [p for p in ahead if p in before.healthy]:
                found.append(f"{step.id}: {', '.join(ahead)} on {step.release}, none seen healthy")
    return found


@settings(max_examples=150, deadline=None)
@given(cases(half_done=False))
def test_an_ha_groups_first_member_is_running_and_healthy_before_the_rest_are_installed(case: Case) -> None:
    plan = plan_or_refusal(case)
    if plan is not None:
        event("has an HA group of more than one server to upgrade" if any(
            g.topology is Topology.HA and len(g.servers) > 1 and case.scope.covers(g.name, g.is_main)
            for g in case.inventory.groups) else "no HA group to upgrade")  # fmt: skip
        assert first_healthy_violations(case, plan) == []


@settings(max_examples=100, deadline=None)
@given(cases(half_done=True))
def test_a_half_done_ha_groups_upgraded_member_is_healthy_before_the_rest_are_installed(case: Case) -> None:
    plan = plan_or_refusal(case)
    if plan is not None:
        assert first_healthy_violations(case, plan) == []


@settings(max_examples=100, deadline=None)
@given(cases())
def test_every_plan_survives_its_json_form(case: Case) -> None:
    plan = plan_or_refusal(case)
    if plan is not None:
        assert Plan.from_dict(plan.to_dict()) == plan
        ids = [s.id for s in plan.steps]
        assert len(ids) == len(set(ids))
