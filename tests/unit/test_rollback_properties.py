"""Properties of every rollback plan, over generated deployments after an upgrade (hypothesis).

A deployment is drawn as it was before an upgrade (supported), then as the upgrade left it: every group
in the upgrade's reach one or two releases newer, each of its servers with a backup of the release it ran
before. The rollback plan is replayed step by step, and after every step: no host runs a newer release
than main (stopped or not), and a host more than one release behind main is stopped. HA groups go back
whole, and a DR secondary is reinstalled before its primary and healthy before the primary starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import event, given
from hypothesis import strategies as st

from tests.inventories import GroupSpec, build
from xsoar_mt.errors import PlanRefused
from xsoar_mt.inventory import Inventory, Topology
from xsoar_mt.plan import Action, Plan, Scope
from xsoar_mt.releases import ReleaseLine, Version
from xsoar_mt.rollback.backups import BackupRecord
from xsoar_mt.rollback.planner import RollbackFacts, plan_rollback
from xsoar_mt.skew import SkewVerdict, judge

LINE = ReleaseLine()
RELEASES = LINE.releases


@dataclass(frozen=True)
class Case:
    inventory: Inventory  # versions as the upgrade left them
    before: dict[str, str]  # each server's release before the upgrade (its backup's)
    scope: Scope


@st.composite
def cases(draw: st.DrawFn) -> Case:
    database = draw(st.sampled_from(["bolt", "elasticsearch"]))
    grouped = "ha" if database == "elasticsearch" else "dr"
    m = draw(st.integers(1, len(RELEASES) - 3))
    hops = draw(st.integers(1, 2))
    main_shape = draw(st.sampled_from(["single", grouped]))
    specs_before: list[GroupSpec] = []
    specs_after: list[GroupSpec] = []
    size = 1 if main_shape == "single" else 2 if main_shape == "dr" else draw(st.integers(2, 3))
    specs_before.append(GroupSpec("main", main_shape, (RELEASES[m],) * size, 1))
    specs_after.append(GroupSpec("main", main_shape, (RELEASES[m + hops],) * size, 1))
    for i in range(draw(st.integers(0, 4))):
        shape = draw(st.sampled_from(["single", grouped]))
        count = 1 if shape == "single" else 2 if shape == "dr" else draw(st.integers(2, 3))
        was = draw(st.sampled_from([RELEASES[m], RELEASES[m - 1]]))
        upgraded = draw(st.booleans())  # a group the upgrade did not reach stays (one behind main: degraded)
        now = RELEASES[m + hops] if upgraded else was
        if not upgraded and LINE.distance(was, RELEASES[m + hops]) > 1:
            now = RELEASES[m + hops - 1]  # the upgrade brought it along far enough to stay supported
        specs_before.append(GroupSpec(f"g{i}", shape, (was,) * count, draw(st.integers(0, 1))))
        specs_after.append(GroupSpec(f"g{i}", shape, (now,) * count, specs_before[-1].tenants))
    after = build("bolt" if database == "bolt" else database, specs_after[0], specs_after[1:])
    before = {name: spec.releases[k] for spec in specs_before for k, name in enumerate(spec.server_names())}
    names = [s.name for s in specs_after[1:]]
    kind = draw(st.integers(0, 5))
    if kind < 3 or not names:
        scope = Scope()
    elif kind < 5:
        scope = Scope(
            main=False, groups=tuple(draw(st.lists(st.sampled_from(names), min_size=1, unique=True)))
        )
    else:
        scope = Scope(main=True, groups=())
    return Case(after, before, scope)


def facts(case: Case) -> RollbackFacts:
    backups = {
        s.name: BackupRecord(
            s.name, case.before[s.name], None, f"/var/tmp/b/{s.name}.tar.gz", 10, "ab" * 32, "r", 1.0, "snap"
        )
        for s in case.inventory.servers
    }
    return RollbackFacts(backups)  # type: ignore[arg-type]


def plan_of(case: Case) -> Plan | None:
    inv = case.inventory
    versions = {s.name: s.version for s in inv.servers if s.version}
    try:
        rollback = plan_rollback(inv, versions, facts(case), case.scope, release_only=True)
    except PlanRefused as refused:
        assert case.scope != Scope(), f"a rollback of everything is never refused: {refused.message}"
        event("refused")
        return None
    event("planned" if rollback.plan.phases else "nothing to do")
    return rollback.plan


def replay(case: Case, plan: Plan) -> None:
    inv = case.inventory
    main = {s.name for s in inv.main.servers}
    release = {s.name: s.version.release for s in inv.servers if s.version}
    stopped: set[str] = set()
    for number, step in enumerate(plan.steps, 1):
        if step.action is Action.STOP:
            stopped |= set(step.servers)
        elif step.action is Action.START:
            stopped -= set(step.servers)
        elif step.action is Action.INSTALL:
            assert stopped >= set(step.servers), f"step {number}: installs on a running server"
            for server in step.servers:
                release[server] = step.release
        verdict = judge({n: r for n, r in release.items() if n in main},
                        {n: r for n, r in release.items() if n not in main}, LINE)  # fmt: skip
        for fault in verdict.faults:
            assert not fault.ahead, f"step {number} ({step.id}): {fault.reason}"
            if fault.verdict is SkewVerdict.UNSUPPORTED:
                assert fault.server in stopped, f"step {number} ({step.id}): {fault.reason}, and it runs"
    assert not stopped, f"the plan leaves {sorted(stopped)} stopped"


@given(cases())
def test_no_host_is_ever_ahead_of_main_and_a_host_far_behind_is_stopped(case: Case) -> None:
    plan = plan_of(case)
    if plan is not None:
        replay(case, plan)


@given(cases())
def test_every_group_that_goes_back_goes_back_whole_to_its_backup_release(case: Case) -> None:
    plan = plan_of(case)
    if plan is None:
        return
    installed = {
        s: step.release for step in plan.steps if step.action is Action.INSTALL for s in step.servers
    }
    for group in case.inventory.groups:
        names = {s.name for s in group.servers}
        touched = names & set(installed)
        assert touched in (set(), names), f"{group.name} goes back in part: {sorted(touched)}"
        for name in touched:
            assert installed[name] == case.before[name]


@given(cases())
def test_a_dr_secondary_goes_back_and_is_healthy_before_its_primary_starts(case: Case) -> None:
    plan = plan_of(case)
    if plan is None:
        return
    steps = list(plan.steps)

    def first(action: Action, server: str) -> int | None:
        return next((i for i, s in enumerate(steps) if s.action is action and server in s.servers), None)

    for group in case.inventory.groups:
        if group.topology is not Topology.DR:
            continue
        p, s = group.primary.name, group.secondary.name
        if first(Action.INSTALL, p) is None:
            continue
        assert first(Action.INSTALL, s) < first(Action.INSTALL, p)  # type: ignore[operator]
        assert first(Action.HEALTHY, s) < first(Action.START, p)  # type: ignore[operator]


@given(cases())
def test_a_rollback_of_everything_returns_every_upgraded_server_to_its_backup_release(case: Case) -> None:
    if case.scope != Scope():
        return
    plan = plan_of(case)
    assert plan is not None
    after = {s.name: s.version.release for s in case.inventory.servers if s.version}
    for step in plan.steps:
        if step.action is Action.INSTALL:
            after.update(dict.fromkeys(step.servers, step.release))
    for server, release in after.items():
        if Version.parse(release) > Version.parse(case.before[server]):
            raise AssertionError(f"{server} stays on {release}, backed up on {case.before[server]}")
