"""The rollback planner: which groups go back, in what order, with which commands, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inventories import GroupSpec, build
from xsoar_mt.errors import ExitCode, PlanRefused
from xsoar_mt.inventory import Inventory, load_inventory, parse_inventory
from xsoar_mt.plan import Action, Plan, Scope, ValidationKind
from xsoar_mt.releases import Version
from xsoar_mt.rollback.backups import BackupRecord, NoBackup
from xsoar_mt.rollback.planner import (
    RELEASE_ONLY_LINE,
    BackupUnusable,
    RollbackFacts,
    plan_rollback,
)

SHA = "ab" * 32


def rec(
    server: str, release: str, *, build: str | None = "187344", snapshot: str | None = None
) -> BackupRecord:
    return BackupRecord(
        server, release, build, f"/var/tmp/xsoar-mt/backup/{server}.tar.gz", 1000, SHA, "run-1", 1796590800.0,
        snapshot,
    )  # fmt: skip


def facts_for(inv: Inventory, release: str, **extra: object) -> RollbackFacts:
    return RollbackFacts({s.name: rec(s.name, release, **extra) for s in inv.servers})  # type: ignore[arg-type]


def versions(inv: Inventory) -> dict[str, Version]:
    return {s.name: s.version for s in inv.servers if s.version}


def deployment(main: str = "6.12", hosts: tuple[str, ...] = ("6.12",), shape: str = "dr") -> Inventory:
    groups = [GroupSpec(f"g{i}", shape, (r, r) if shape == "dr" else (r,)) for i, r in enumerate(hosts)]
    return build("bolt", GroupSpec("main", "dr", (main, main), tenants=1), groups)


def order(plan: Plan, action: Action) -> list[str]:
    return [s for step in plan.steps if step.action is action for s in step.servers]


def test_hosts_go_back_before_main_and_dr_secondaries_before_primaries() -> None:
    inv = deployment(hosts=("6.12", "6.12"))
    plan = plan_rollback(inv, versions(inv), facts_for(inv, "6.11")).plan
    assert order(plan, Action.INSTALL) == ["g0-s", "g0-p", "g1-s", "g1-p", "main-s", "main-p"]
    steps = list(plan.steps)
    index = {(s.action, s.servers): i for i, s in enumerate(steps)}
    assert index[(Action.HEALTHY, ("g0-s",))] < index[(Action.PURGE, ("g0-p",))]


def test_each_server_is_purged_then_installed_then_restored_before_it_starts() -> None:
    inv = deployment()
    plan = plan_rollback(inv, versions(inv), facts_for(inv, "6.11")).plan
    actions = [s.action for s in plan.steps if s.servers == ("g0-s",)]
    assert actions == [
        Action.STOP,
        Action.PURGE,
        Action.INSTALL,
        Action.RESTORE,
        Action.START,
        Action.HEALTHY,
    ]


def test_the_purge_runs_the_old_release_installer_with_the_vendors_purge_flag() -> None:
    inv = deployment()
    plan = plan_rollback(inv, versions(inv), facts_for(inv, "6.11")).plan
    purge = next(s for s in plan.steps if s.action is Action.PURGE)
    assert "demisto-6.11.sh" in purge.command and purge.command.endswith("-purge")
    assert "-purge-mount" not in purge.command  # BoltDB: nothing mounted to keep or remove


def test_a_restore_names_each_servers_own_archive() -> None:
    inv = deployment()
    plan = plan_rollback(inv, versions(inv), facts_for(inv, "6.11")).plan
    restore = next(s for s in plan.steps if s.action is Action.RESTORE and s.servers == ("g0-s",))
    assert "/var/tmp/xsoar-mt/backup/g0-s.tar.gz" in restore.command_on("g0-s")


def test_the_old_release_is_fetched_for_the_build_it_ran_before() -> None:
    inv = deployment()
    rollback = plan_rollback(inv, versions(inv), facts_for(inv, "6.11"))
    fetch = next(s for s in rollback.plan.steps if s.action is Action.FETCH)
    assert "6_11_187344" in fetch.why and fetch.release == "6.11"
    assert rollback.builds == {"6.11": "187344"}
    assert list(rollback.plan.steps).index(fetch) == 0  # before anything is stopped


def test_a_two_release_way_back_keeps_hosts_stopped_until_main_is_back() -> None:
    inv = deployment(hosts=("6.12",))
    rollback = plan_rollback(inv, versions(inv), facts_for(inv, "6.10"))
    steps = list(rollback.plan.steps)
    start_host = next(i for i, s in enumerate(steps) if s.action is Action.START and s.servers == ("g0-s",))
    main_healthy = max(
        i for i, s in enumerate(steps) if s.action is Action.HEALTHY and s.servers[0].startswith("main")
    )
    assert start_host > main_healthy
    assert [r.held for r in rollback.returns] == [True, False]


def test_a_group_alone_may_go_back_one_release_behind_main() -> None:
    inv = deployment(hosts=("6.12", "6.12"))
    rollback = plan_rollback(inv, versions(inv), facts_for(inv, "6.11"), Scope(main=False, groups=("g1",)))
    assert order(rollback.plan, Action.INSTALL) == ["g1-s", "g1-p"]
    assert any("lag main by one release" in w for w in rollback.plan.warnings)


def test_a_group_alone_that_would_be_two_releases_behind_main_is_refused() -> None:
    inv = deployment(hosts=("6.12",))
    with pytest.raises(PlanRefused, match="2 releases behind main"):
        plan_rollback(inv, versions(inv), facts_for(inv, "6.10"), Scope(main=False, groups=("g0",)))


def test_main_alone_is_refused_while_hosts_run_the_newer_release() -> None:
    inv = deployment(hosts=("6.12",))
    with pytest.raises(PlanRefused, match="ahead of main") as refused:
        plan_rollback(inv, versions(inv), facts_for(inv, "6.11"), Scope(main=True, groups=()))
    assert refused.value.exit_code is ExitCode.PLAN_REFUSED
    assert refused.value.hint is not None and "--group" in refused.value.hint


def test_main_alone_goes_back_when_its_hosts_were_never_upgraded() -> None:
    inv = deployment(hosts=("6.11",))
    backups = {s.name: rec(s.name, "6.11") for s in inv.main.servers}
    rollback = plan_rollback(inv, versions(inv), RollbackFacts(backups), Scope(main=True, groups=()))
    assert order(rollback.plan, Action.INSTALL) == ["main-s", "main-p"]


def test_a_server_without_a_backup_is_refused_with_its_reason() -> None:
    inv = deployment()
    backups = {s.name: rec(s.name, "6.11") for s in inv.servers}
    backups["g0-p"] = NoBackup("g0-p", "no backup recorded")  # type: ignore[assignment]
    with pytest.raises(BackupUnusable) as refused:
        plan_rollback(inv, versions(inv), RollbackFacts(backups))  # type: ignore[arg-type]
    assert refused.value.exit_code is ExitCode.PREFLIGHT_FAILED
    assert refused.value.problems == ["g0-p: no backup recorded"]


def test_a_tampered_backup_is_refused_with_what_the_reading_found() -> None:
    inv = deployment()
    facts = facts_for(inv, "6.11")
    facts = RollbackFacts(facts.backups, unusable={"main-p": "the backup has changed since it was taken"})
    with pytest.raises(BackupUnusable, match="main-p: the backup has changed"):
        plan_rollback(inv, versions(inv), facts)


def test_a_server_whose_install_failed_goes_back_though_its_version_looks_old() -> None:
    inv = deployment(main="6.12", hosts=("6.11",))
    facts = RollbackFacts(
        {s.name: rec(s.name, "6.11") for s in inv.hosts[0].servers}, unsettled=frozenset({"g0-s"})
    )
    rollback = plan_rollback(inv, versions(inv), facts, Scope(main=False, groups=("g0",)))
    assert order(rollback.plan, Action.INSTALL) == ["g0-s", "g0-p"]


def test_nothing_newer_than_its_backup_means_nothing_to_do() -> None:
    inv = deployment(main="6.11", hosts=("6.11",))
    rollback = plan_rollback(inv, versions(inv), facts_for(inv, "6.11"))
    assert rollback.nothing_to_do and not rollback.plan.phases


def test_a_resumed_rollback_with_nothing_left_to_take_back_gates_every_server_in_scope_and_validates() -> (
    None
):
    inv = deployment(main="6.11", hosts=("6.11", "6.11"))
    facts = RollbackFacts(facts_for(inv, "6.11").backups, verify=True)
    rollback = plan_rollback(inv, versions(inv), facts)
    assert rollback.nothing_to_do  # nothing goes back ...
    (phase,) = rollback.plan.phases  # ... but the validation that failed runs again, after the health gates
    assert [s.action for s in phase.steps] == [Action.HEALTHY] * 6 + [Action.VALIDATE] * 2
    assert order(rollback.plan, Action.HEALTHY) == [s.name for s in inv.servers]
    scoped = plan_rollback(inv, versions(inv), facts, Scope(main=False, groups=("g1",)))
    assert order(scoped.plan, Action.HEALTHY) == ["g1-p", "g1-s"]  # only the servers in scope are gated


def test_a_resumed_rollback_gates_again_only_the_servers_no_phase_takes_back() -> None:
    inv = deployment(main="6.12", hosts=("6.11", "6.12"))  # g0 went back before the run stopped
    facts = RollbackFacts(facts_for(inv, "6.11").backups, verify=True)
    plan = plan_rollback(inv, versions(inv), facts).plan
    validate = plan.phases[-1]
    assert validate.id == "validate"
    assert [s.servers for s in validate.steps if s.action is Action.HEALTHY] == [("g0-p",), ("g0-s",)]
    assert [p.group for p in plan.phases if p.group] == ["g1", "main"]


def test_with_waves_host_groups_go_back_wave_by_wave_each_after_the_validation_of_the_one_before() -> None:
    from xsoar_mt.estimate import batches
    from xsoar_mt.waves import WaveSpec

    groups = [GroupSpec(f"g{i}", "single", ("6.12",), tenants=1 if i != 1 else 0) for i in range(4)]
    inv = build("bolt", GroupSpec("main", "single", ("6.12",), tenants=1), groups)
    plan = plan_rollback(inv, versions(inv), facts_for(inv, "6.11"), waves=WaveSpec.parse("1,50%,100%")).plan
    ids = [p.id for p in plan.phases]
    assert ids == ["prepare", "g0@6.11", "validate:wave-1", "g1@6.11", "g2@6.11", "validate:wave-2",
                   "g3@6.11", "main@6.11", "validate"]  # fmt: skip
    assert plan.waves is not None and dict(plan.waves.groups) == {"g0": 1, "g1": 2, "g2": 2, "g3": 3}
    wave_1, wave_2 = (plan.phases[ids.index(f"validate:wave-{n}")].steps[0] for n in (1, 2))
    assert (wave_1.check, wave_2.check) == (ValidationKind.TENANTS, ValidationKind.TENANTS)
    assert "wave 1 (acc_g0-t0)" in wave_1.command and "the tenant of wave 2" in wave_2.command  # g1 has none
    # how a run takes them: a wave's groups side by side (all at once, or up to --parallel), a barrier
    # between waves, main alone after every host group
    taken = [([p.id for p in batch], width) for batch, width in batches(plan.phases)]
    assert taken[1:] == [(["g0@6.11"], 1), (["validate:wave-1"], 1), (["g1@6.11", "g2@6.11"], 2),
                         (["validate:wave-2"], 1), (["g3@6.11"], 1), (["main@6.11"], 1), (["validate"], 1)]  # fmt: skip
    assert [w for _, w in batches(plan.phases, 1)][3] == 1  # --parallel 1: one at a time within a wave


def test_with_parallel_the_host_groups_of_a_rollback_go_back_side_by_side_and_main_after_them_alone() -> None:
    from xsoar_mt.estimate import batches

    inv = deployment(hosts=("6.12", "6.12", "6.12"))
    plan = plan_rollback(inv, versions(inv), facts_for(inv, "6.11")).plan
    taken = [([p.id for p in batch], width) for batch, width in batches(plan.phases, 2)]
    assert taken[1:] == [(["g0@6.11", "g1@6.11", "g2@6.11"], 2), (["main@6.11"], 1), (["validate"], 1)]
    assert not any(p.id.startswith("validate:wave") for p in plan.phases)  # no waves, no wave validation


def test_a_resumed_rollback_keeps_the_waves_it_started_with() -> None:
    from xsoar_mt.plan import Waves

    inv = deployment(hosts=("6.11", "6.12", "6.12"))  # g0 (wave 1) went back before the run stopped
    started = Waves("1,100%", {"g0": 1, "g1": 2, "g2": 2})
    plan = plan_rollback(inv, versions(inv), facts_for(inv, "6.11"), waves=started).plan
    assert plan.waves == started
    assert [(p.id, p.wave) for p in plan.phases if p.group] == [
        ("g1@6.11", 2),
        ("g2@6.11", 2),
        ("main@6.11", None),
    ]
    assert not any(p.id.startswith("validate:wave") for p in plan.phases)  # wave 1 is not going back again


def test_the_final_validation_checks_main_health_then_every_tenant_as_its_steps_say() -> None:
    inv = deployment()
    (validate,) = [
        p for p in plan_rollback(inv, versions(inv), facts_for(inv, "6.11")).plan.phases if p.id == "validate"
    ]
    assert [(s.id, s.check) for s in validate.steps] == [
        ("validate/main/main-p", ValidationKind.MAIN),
        ("validate/tenants/main-p", ValidationKind.TENANTS),
    ]
    assert validate.steps[0].command.endswith("/health")


def test_an_installer_still_running_refuses_the_rollback() -> None:
    inv = deployment()
    facts = RollbackFacts(facts_for(inv, "6.11").backups, in_flight={"g0-s": "6.12"})
    with pytest.raises(PlanRefused, match="still installing"):
        plan_rollback(inv, versions(inv), facts)


ES = """
inventory_version: 1
deployment: {{name: es, database: elasticsearch, elasticsearch_url: "https://es.example:9200"{repo}}}
main:
  ha:
    load_balancer: https://main.example
    servers:
      - {{name: m1, address: 10.0.0.1, version: 6.12.0}}
      - {{name: m2, address: 10.0.0.2, version: 6.12.0}}
hosts:
  - name: h
    ha:
      load_balancer: https://h.example
      servers:
        - {{name: h1, address: 10.0.1.1, version: 6.12.0}}
        - {{name: h2, address: 10.0.1.2, version: 6.12.0}}
"""


def es_inventory(repository: bool) -> Inventory:
    repo = ", elasticsearch_snapshot_repository: xsoar-snapshots" if repository else ""
    return parse_inventory(ES.format(repo=repo), "es.yaml")


def test_elasticsearch_without_a_snapshot_repository_is_refused_because_the_data_cannot_come_back() -> None:
    inv = es_inventory(False)
    with pytest.raises(PlanRefused, match="cannot come back") as refused:
        plan_rollback(inv, versions(inv), facts_for(inv, "6.11"))
    assert refused.value.hint is not None and "--release-only" in refused.value.hint


def test_release_only_says_so_in_the_plans_first_line() -> None:
    inv = es_inventory(False)
    rollback = plan_rollback(inv, versions(inv), facts_for(inv, "6.11"), release_only=True)
    assert rollback.plan.warnings[0] == RELEASE_ONLY_LINE
    assert rollback.plan.target == "rollback-release-only"
    assert not order(rollback.plan, Action.RESTORE_SNAPSHOT)


def test_with_a_repository_each_ha_group_restores_its_snapshot_once_while_all_its_servers_are_stopped() -> (
    None
):
    inv = es_inventory(True)
    rollback = plan_rollback(inv, versions(inv), facts_for(inv, "6.11", snapshot="before-6-12"))
    steps = list(rollback.plan.steps)
    snaps = [i for i, s in enumerate(steps) if s.action is Action.RESTORE_SNAPSHOT]
    assert len(snaps) == 2
    assert "/_snapshot/xsoar-snapshots/before-6-12/_restore" in steps[snaps[0]].command
    # what the run restores is given to it per group, as the plan text names it
    assert rollback.snapshots == {p.group: "before-6-12" for p in rollback.plan.phases if p.group}
    assert {steps[i].phase for i in snaps} == {p.id for p in rollback.plan.phases if p.group}
    h_start = next(i for i, s in enumerate(steps) if s.action is Action.START and s.servers[0] == "h1")
    assert snaps[0] < h_start
    purge = next(s for s in steps if s.action is Action.PURGE)
    assert purge.servers == ("h1", "h2") and purge.command.endswith("-purge -purge-mount")


def test_with_a_repository_but_no_recorded_snapshot_the_server_has_no_usable_backup() -> None:
    inv = es_inventory(True)
    with pytest.raises(BackupUnusable) as refused:
        plan_rollback(inv, versions(inv), facts_for(inv, "6.11"))
    assert refused.value.problems[0] == "m1: no Elasticsearch snapshot recorded with its backup"
    assert len(refused.value.problems) == 4


def test_a_rollback_plan_survives_its_json_form() -> None:
    inv = deployment(hosts=("6.12",))
    plan = plan_rollback(inv, versions(inv), facts_for(inv, "6.10")).plan
    assert Plan.from_dict(plan.to_dict()) == plan


def test_the_example_inventory_after_an_upgrade_to_6_12_goes_back_to_6_10_hosts_first() -> None:
    inv = load_inventory(Path(__file__).parents[2] / "inventory.example.yaml")
    after = {s.name: Version.parse("6.12.0") for s in inv.servers}
    rollback = plan_rollback(inv, after, facts_for(inv, "6.10"))
    assert [r.group for r in rollback.returns] == ["emea", "us-east", "apac", "main"]
    assert rollback.plan.hops == ("6.10",)


def test_a_group_never_upgraded_needs_no_backup_while_one_upgraded_without_one_is_refused() -> None:
    inv = deployment(main="6.12", hosts=("6.11", "6.12"))
    backups = {s.name: rec(s.name, "6.11") for s in (*inv.main.servers, *inv.hosts[0].servers)}
    with pytest.raises(BackupUnusable) as refused:
        plan_rollback(inv, versions(inv), RollbackFacts(backups))  # type: ignore[arg-type]
    assert refused.value.problems == ["g1-p: no backup recorded", "g1-s: no backup recorded"]
    backups.update({s.name: rec(s.name, "6.11") for s in inv.hosts[1].servers})
    rollback = plan_rollback(inv, versions(inv), RollbackFacts(backups))  # type: ignore[arg-type]
    assert [r.group for r in rollback.returns] == ["g1", "main"]


def test_a_rollback_validates_mains_own_health_and_then_every_tenant_as_an_upgrade_does() -> None:
    """Main's step checks /health (through the load balancer where main has one), not the tenants twice."""
    inv = deployment(hosts=("6.12",))
    validate = plan_rollback(inv, versions(inv), facts_for(inv, "6.11")).plan.phases[-1]
    assert [(s.id, s.check) for s in validate.steps] == [
        ("validate/main/main-p", ValidationKind.MAIN),
        ("validate/tenants/main-p", ValidationKind.TENANTS),
    ]
    assert validate.steps[0].command.endswith("/health")
    ha = es_inventory(True)
    saved = plan_rollback(ha, versions(ha), facts_for(ha, "6.11", snapshot="s")).plan
    main_check = saved.phases[-1].steps[0]
    assert (main_check.check, main_check.command) == (
        ValidationKind.LOAD_BALANCER,
        "GET https://main.example/health",
    )
    read_back = Plan.from_dict(saved.to_dict()).phases[-1].steps[0]  # a saved rollback plan reads it back
    assert read_back.check is ValidationKind.LOAD_BALANCER
