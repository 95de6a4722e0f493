"""The planner: the vendor's order for every topology, one-release hops, scope, and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.inventories import GroupSpec, bolt, elastic, inventory_dict, parsed
from tests.inventories import dr_group as dr
from tests.inventories import ha_group as ha
from tests.inventories import single_group as single
from tests.unit.planning import plan
from xsoar_mt.errors import InvalidInput, PlanRefused, StalePlan, UsageError
from xsoar_mt.inventory import Inventory
from xsoar_mt.plan import Action, Basis, Plan, Scope, Step
from xsoar_mt.planner import PlanFacts, plan_upgrade, with_extract_dirs
from xsoar_mt.releases import Version
from xsoar_mt.skew import SkewVerdict

ROOT = Path(__file__).resolve().parents[2]
STOP, INSTALL, START, HEALTHY = Action.STOP, Action.INSTALL, Action.START, Action.HEALTHY


def sequence(p: Plan, phase: str) -> list[tuple[Action, tuple[str, ...]]]:
    """(action, servers) of one phase's steps, in order."""
    (found,) = [ph for ph in p.phases if ph.id == phase]
    return [(s.action, s.servers) for s in found.steps]


def installs(p: Plan) -> list[tuple[str, ...]]:
    return [s.servers for s in p.steps if s.action is INSTALL]


def phase_ids(p: Plan) -> list[str]:
    return [ph.id for ph in p.phases]


# -- each topology ---------------------------------------------------------------------------------


def test_a_single_main_is_stopped_installed_started_and_checked_in_that_order() -> None:
    p = plan(bolt(single("main")))
    assert sequence(p, "main@6.12") == [
        (STOP, ("main-0",)),
        (INSTALL, ("main-0",)),
        (START, ("main-0",)),
        (HEALTHY, ("main-0",)),
    ]


def test_an_ha_main_stops_every_app_server_installs_one_and_waits_for_it_before_the_rest() -> None:
    p = plan(elastic(ha("main", "6.11", "6.11", "6.11")))
    assert sequence(p, "main@6.12") == [
        (STOP, ("main-0", "main-1", "main-2")),
        (INSTALL, ("main-0",)),
        (START, ("main-0",)),
        (HEALTHY, ("main-0",)),
        (INSTALL, ("main-1", "main-2")),
        (START, ("main-1", "main-2")),
        (HEALTHY, ("main-1", "main-2")),
    ]


def test_a_dr_main_follows_the_vendors_dr_order() -> None:
    p = plan(bolt(dr("main")))
    assert sequence(p, "main@6.12") == [
        (STOP, ("main-p",)),
        (STOP, ("main-s",)),
        (INSTALL, ("main-s",)),
        (START, ("main-s",)),
        (HEALTHY, ("main-s",)),
        (INSTALL, ("main-p",)),
        (START, ("main-p",)),
        (HEALTHY, ("main-p",)),
    ]


def test_dr_secondary_is_upgraded_before_primary() -> None:
    p = plan(bolt(dr("main"), dr("emea")))
    assert installs(p) == [("main-s",), ("main-p",), ("emea-s",), ("emea-p",)]


def test_dr_secondary_is_running_and_healthy_before_the_primary_is_installed() -> None:
    steps = sequence(plan(bolt(single("main"), dr("emea"))), "emea@6.12")
    primary_install = steps.index((INSTALL, ("emea-p",)))
    assert (HEALTHY, ("emea-s",)) in steps[:primary_install]


def test_single_hosts_are_upgraded_plainly_one_group_at_a_time() -> None:
    p = plan(bolt(single("main"), single("a"), single("b")))
    assert phase_ids(p) == ["prepare", "main@6.12", "a@6.12", "b@6.12", "validate"]
    assert sequence(p, "b@6.12") == [
        (STOP, ("b-0",)),
        (INSTALL, ("b-0",)),
        (START, ("b-0",)),
        (HEALTHY, ("b-0",)),
    ]


def test_ha_group_is_stopped_whole_before_first_install() -> None:
    steps = sequence(plan(elastic(single("main"), ha("soc", "6.11", "6.11", "6.11"))), "soc@6.12")
    assert steps[0] == (STOP, ("soc-0", "soc-1", "soc-2"))
    assert steps[1] == (INSTALL, ("soc-0",))
    assert steps[4] == (INSTALL, ("soc-1", "soc-2"))


def test_main_is_upgraded_before_any_host() -> None:
    p = plan(elastic(ha("main", "6.11", "6.11"), ha("soc", "6.11", "6.11"), single("lab")))
    order = installs(p)
    assert order[:2] == [("main-0",), ("main-1",)]
    assert set(order[2:]) == {("soc-0",), ("soc-1",), ("lab-0",)}


def test_a_mixed_deployment_is_planned_group_by_group_in_inventory_order() -> None:
    p = plan(bolt(dr("main"), dr("emea"), single("apac"), dr("us")))
    assert phase_ids(p) == ["prepare", "main@6.12", "emea@6.12", "apac@6.12", "us@6.12", "validate"]


def test_prepare_backs_up_and_delivers_the_installer_to_every_server_before_any_stop() -> None:
    p = plan(bolt(dr("main"), single("apac")))
    prepare = sequence(p, "prepare")
    assert prepare == [
        (Action.BACKUP, ("main-p", "main-s")),
        (Action.FETCH, ("main-p", "main-s")),
        (Action.BACKUP, ("apac-0",)),
        (Action.FETCH, ("apac-0",)),
    ]
    assert p.phases[0].id == "prepare"


def test_the_fetch_step_makes_the_installer_executable() -> None:
    fetch = next(s for s in plan(bolt(single("main"))).steps if s.action is Action.FETCH)
    assert fetch.command.endswith('mv -f "$xm_part" /var/lib/xsoar-mt/demisto-6.12.sh')


def test_the_install_runs_the_installer_in_multi_tenant_mode() -> None:
    install = next(s for s in plan(bolt(single("main"))).steps if s.action is INSTALL)
    assert install.command == "sudo /var/lib/xsoar-mt/demisto-6.12.sh -- -multi-tenant -do-not-start-server"


def test_target_dir_comes_before_the_other_installer_flags() -> None:
    inventory = bolt(single("main"))
    inventory = replace(
        inventory,
        installer=replace(inventory.installer, target_dir="/var/tmp", extra_flags=("-backup=false",)),
    )
    install = next(s for s in plan(inventory).steps if s.action is INSTALL)
    assert (
        install.command
        == "sudo /var/lib/xsoar-mt/demisto-6.12.sh -target /var/tmp -- -multi-tenant -do-not-start-server -backup=false"
    )


def test_a_server_with_noexec_tmp_gets_its_own_install_command_with_target() -> None:
    inventory = elastic(ha("main", "6.11", "6.11", "6.11"))
    base = plan(inventory)
    adjusted = with_extract_dirs(base, inventory, {"main-2": "/var/tmp/xsoar-mt/extract"})
    for before, after in zip(base.steps, adjusted.steps, strict=True):
        if after.action is INSTALL and "main-2" in after.servers:
            assert after.command == before.command  # the other servers keep the plain command
            assert after.per_server == {
                "main-2": "sudo /var/lib/xsoar-mt/demisto-6.12.sh -target /var/tmp/xsoar-mt/extract -- -multi-tenant -do-not-start-server"
            }
            assert after.command_on("main-1") == before.command
        else:
            assert after == before
    assert any(s.per_server for s in adjusted.steps)
    assert Plan.from_dict(json.loads(json.dumps(adjusted.to_dict()))) == adjusted


def test_validate_checks_main_through_the_load_balancer_and_every_tenant_through_main() -> None:
    p = plan(elastic(ha("main", "6.11", "6.11", tenants=1), single("lab", tenants=2)))
    validate = p.phases[-1]
    assert validate.id == "validate"
    assert validate.steps[0].command == "GET https://main.example/health"
    assert "3 tenants (acc_main-t0, acc_lab-t0, acc_lab-t1)" in validate.steps[1].command


def test_without_a_load_balancer_main_is_validated_on_its_own_address() -> None:
    validate = plan(bolt(single("main"))).phases[-1]
    assert validate.steps[0].command.startswith("GET https://10.")


# -- hops and skew ---------------------------------------------------------------------------------


def test_a_two_hop_plan_alternates_main_and_hosts() -> None:
    p = plan(bolt(single("main", "6.10"), single("a", "6.10"), dr("b", "6.10")))
    assert p.hops == ("6.11", "6.12")
    assert phase_ids(p) == [
        "prepare",
        "main@6.11",
        "a@6.11",
        "b@6.11",
        "main@6.12",
        "a@6.12",
        "b@6.12",
        "validate",
    ]


def test_a_two_hop_plan_never_leaves_the_fleet_unsupported() -> None:
    p = plan(bolt(single("main", "6.10"), single("a", "6.10")))
    assert SkewVerdict.UNSUPPORTED not in {s.verdict_after for s in p.steps}
    assert [s.verdict_after for s in p.steps if s.action is INSTALL] == [
        SkewVerdict.DEGRADED,
        SkewVerdict.OK,
        SkewVerdict.DEGRADED,
        SkewVerdict.OK,
    ]


def test_a_two_hop_plan_delivers_both_installers_in_prepare() -> None:
    fetches = [s for s in plan(bolt(single("main", "6.10"))).steps if s.action is Action.FETCH]
    assert [s.release for s in fetches] == ["6.11", "6.12"]


def test_hosts_one_behind_catch_up_before_main_moves() -> None:
    p = plan(bolt(single("main", "6.11"), single("a", "6.10"), single("b", "6.11")))
    assert phase_ids(p) == ["prepare", "a@6.11", "main@6.12", "a@6.12", "b@6.12", "validate"]


def test_a_host_already_two_behind_is_refused_naming_it() -> None:
    with pytest.raises(PlanRefused, match=r"already unsupported \(a-0 runs 6\.9, 2 releases behind main"):
        plan(bolt(single("main", "6.11"), single("a", "6.9")))


def test_a_host_ahead_of_main_is_refused() -> None:
    inventory = bolt(single("main", "6.11"), single("a", "6.11"))
    versions = {**inventory.versions(), "a-0": Version(6, 12)}
    with pytest.raises(PlanRefused, match="ahead of main"):
        plan_upgrade(inventory, versions, "6.12")


def test_degraded_functions_are_listed_while_hosts_lag() -> None:
    p = plan(bolt(single("main"), single("a")))
    assert any("content sync" in f for f in p.degraded_functions)


# -- scope -----------------------------------------------------------------------------------------


def test_only_main_is_allowed_with_a_warning_when_hosts_end_degraded() -> None:
    p = plan(bolt(single("main"), single("a")), scope=Scope(main=True, groups=()))
    assert installs(p) == [("main-0",)]
    assert len(p.warnings) == 1
    assert "lag main by one release (a-0)" in p.warnings[0]
    assert [(s.server, s.reason) for s in p.skipped] == [("a-0", "out of scope")]


def test_only_main_is_refused_when_hosts_would_end_unsupported() -> None:
    with pytest.raises(
        PlanRefused, match=r"installing 6\.12 on main-0 would leave the deployment unsupported"
    ):
        plan(bolt(single("main", "6.11"), single("a", "6.10")), scope=Scope(main=True, groups=()))


def test_only_main_is_refused_when_the_target_is_two_hops_away() -> None:
    with pytest.raises(PlanRefused, match="unsupported"):
        plan(bolt(single("main", "6.10"), single("a", "6.10")), scope=Scope(main=True, groups=()))


def test_a_group_scope_upgrades_only_that_group_when_main_is_at_the_target() -> None:
    p = plan(bolt(single("main", "6.12"), single("a"), single("b")), scope=Scope(main=False, groups=("b",)))
    assert installs(p) == [("b-0",)]
    assert p.warnings and "a-0" in p.warnings[0]


def test_a_group_scope_with_main_behind_the_target_is_refused() -> None:
    with pytest.raises(PlanRefused, match=r"main runs 6\.11: hosts cannot be upgraded past main to 6\.12"):
        plan(bolt(single("main"), single("a")), scope=Scope(main=False, groups=("a",)))


def test_an_unknown_group_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"--group nope: no such host group \(known: a, b\)"):
        plan(bolt(single("main"), single("a"), single("b")), scope=Scope(main=False, groups=("nope",)))


# -- what is already done --------------------------------------------------------------------------


def test_servers_at_the_target_are_skipped_and_never_touched() -> None:
    p = plan(bolt(single("main", "6.12"), single("a", "6.12"), single("b", "6.11")))
    touched = {n for s in p.steps if s.action is not Action.VALIDATE for n in s.servers}
    assert touched == {"b-0"}
    assert [(s.server, s.reason) for s in p.skipped] == [
        ("main-0", "already runs 6.12"),
        ("a-0", "already runs 6.12"),
    ]


def test_a_half_upgraded_dr_main_gates_the_done_secondary_healthy_before_the_primary_install() -> None:
    p = plan(bolt(dr("main", "6.11", "6.12"), single("a", "6.11")))
    changed = {
        n for s in p.steps if s.action in (STOP, INSTALL, Action.BACKUP, Action.FETCH) for n in s.servers
    }
    assert "main-s" not in changed  # never stopped, backed up or installed again
    assert sequence(p, "main@6.12")[:3] == [
        (HEALTHY, ("main-s",)),
        (STOP, ("main-p",)),
        (INSTALL, ("main-p",)),
    ]
    assert installs(p) == [("main-p",), ("a-0",)]
    assert SkewVerdict.UNSUPPORTED not in {s.verdict_after for s in p.steps}


def test_a_half_upgraded_main_is_finished_before_hosts_on_a_two_hop_plan() -> None:
    p = plan(bolt(dr("main", "6.10", "6.11"), single("a", "6.10")))
    assert phase_ids(p) == ["prepare", "main@6.11", "a@6.11", "main@6.12", "a@6.12", "validate"]
    assert sequence(p, "main@6.11")[:3] == [
        (HEALTHY, ("main-s",)),
        (STOP, ("main-p",)),
        (INSTALL, ("main-p",)),
    ]


def test_everything_at_the_target_is_nothing_to_do() -> None:
    p = plan(bolt(single("main", "6.12"), single("a", "6.12")))
    assert p.nothing_to_do
    assert p.phases == ()
    assert len(p.skipped) == 2


def test_a_downgrade_is_refused() -> None:
    with pytest.raises(PlanRefused, match="does not downgrade"):
        plan(bolt(single("main", "6.12"), single("a", "6.12")), target="6.11")


def test_a_server_without_a_version_is_refused_naming_it() -> None:
    inventory = bolt(single("main"), single("a"))
    versions = {"main-0": Version(6, 11)}
    with pytest.raises(InvalidInput, match="no version known for a-0"):
        plan_upgrade(inventory, versions, "6.12")


# -- the plan as data ------------------------------------------------------------------------------


def test_step_ids_name_the_phase_the_action_and_the_first_server_with_how_many_more() -> None:
    p = plan(elastic(ha("main", "6.11", "6.11", "6.11"), single("lab", "6.11")))
    assert [s.id for s in p.steps] == [
        "prepare/backup-6.12/main-0+2", "prepare/fetch-installer-6.12/main-0+2",
        "prepare/backup-6.12/lab-0", "prepare/fetch-installer-6.12/lab-0",
        "main@6.12/stop/main-0+2", "main@6.12/install/main-0", "main@6.12/start/main-0",
        "main@6.12/wait-healthy/main-0", "main@6.12/install/main-1+1", "main@6.12/start/main-1+1",
        "main@6.12/wait-healthy/main-1+1",
        "lab@6.12/stop/lab-0", "lab@6.12/install/lab-0", "lab@6.12/start/lab-0", "lab@6.12/wait-healthy/lab-0",
        "validate/load-balancer/main-0",
    ]  # fmt: skip
    assert all(s.phase == s.id.split("/")[0] for s in p.steps)
    assert {s.release for s in p.steps} == {"6.12"}  # the validation through the load balancer too
    assert [(ph.id, ph.group, ph.release) for ph in p.phases] == [
        ("prepare", None, None), ("main@6.12", "main", "6.12"), ("lab@6.12", "lab", "6.12"),
        ("validate", None, None),
    ]  # fmt: skip


def test_each_server_is_backed_up_once_before_the_first_release_it_moves_to() -> None:
    p = plan(bolt(single("main", "6.10"), single("a", "6.10")))
    backups = [s for s in p.steps if s.action is Action.BACKUP]
    assert [(s.servers, s.release) for s in backups] == [(("main-0",), "6.11"), (("a-0",), "6.11")]
    assert "demisto-before-6.11-{stamp}.tar.gz" in backups[0].command


def test_custom_commands_keep_the_per_server_placeholders_for_the_run() -> None:
    data = inventory_dict("bolt", single("main", "6.10"), [])
    data["commands"] = {
        "backup": "backup {server} at {address} before {version} into {backup_dir}",
        "health": "curl https://{address}:{port}/health",
        "install": "sudo {installer} {target} -- -multi-tenant {flags} # {server} {address} {port}",
        "status": "status {server}",
    }
    data["installer"] = {"extra_flags": ["-elasticsearch-url", "a b"]}
    steps = {s.action: s.command for s in plan(parsed(data, "x.yaml")).steps}  # last hop
    assert steps[Action.BACKUP] == "backup {server} at {address} before 6.11 into /var/lib/xsoar-mt/backup"
    assert steps[HEALTHY] == "status {server} && curl https://{address}:443/health"
    assert steps[INSTALL] == (
        "sudo /var/lib/xsoar-mt/demisto-6.12.sh -- -multi-tenant -elasticsearch-url 'a b' # {server} {address} 443"
    )


def test_upload_delivery_prepares_each_server_with_the_uploaded_installers_check() -> None:
    data = inventory_dict("bolt", single("main", "6.10"), [])
    data["installer"] = {"delivery": "upload", "file": "demisto-{release}.sh"}
    fetches = [s for s in plan(parsed(data, "x.yaml")).steps if s.action is Action.FETCH]
    assert [s.release for s in fetches] == ["6.11", "6.12"]
    assert all("sha256sum /var/lib/xsoar-mt/demisto-" + s.release + ".sh" in s.command for s in fetches)
    assert not any("read -r link" in s.command for s in fetches)  # nothing is downloaded by the server


def test_validation_names_the_first_tenants_and_says_when_there_are_more() -> None:
    five = "acc_main-t0, acc_main-t1, acc_main-t2, acc_main-t3, acc_main-t4"
    for count, listed in ((5, f"({five})"), (6, f"({five}, ...)")):
        p = plan(bolt(GroupSpec("main", "single", ("6.11",), count)))
        (validate,) = [ph for ph in p.phases if ph.id == "validate"]
        assert [(s.id, s.release, s.servers) for s in validate.steps] == [
            ("validate/main/main-0", "6.12", ("main-0",)), ("validate/tenants/main-0", "6.12", ("main-0",)),
        ]  # fmt: skip
        assert validate.steps[0].command == "GET https://10.0.0.1:443/health"
        assert (
            validate.steps[1].command
            == f"GET /accounts, then GET /<tenant>/about for {count} tenants {listed}"
        )


def test_main_and_host_installs_say_why_each_comes_when_it_does() -> None:
    p = plan(bolt(single("main"), single("a")))
    whys = {s.servers: s.why for s in p.steps if s.action is INSTALL}
    assert whys == {
        ("main-0",): "main is upgraded before any host",
        ("a-0",): "run the installer in multi-tenant mode",
    }


def test_skipped_servers_keep_their_version_and_why() -> None:
    inventory = bolt(single("main", "6.12"), single("a", "6.12"), single("b", "6.11"), single("c", "6.11"))
    versions = {**inventory.versions(), "a-0": Version.parse("6.12.3 (B123)")}
    p = plan_upgrade(inventory, versions, "6.12", Scope(main=True, groups=("b",)))
    assert [(s.server, s.version, s.reason) for s in p.skipped] == [
        ("main-0", "6.12.0", "already runs 6.12"),
        ("a-0", "6.12.3 (B123)", "out of scope"),
        ("c-0", "6.11.0", "out of scope"),
    ]
    p = plan_upgrade(inventory, versions, "6.12", Scope(main=False, groups=("a", "b")))
    assert [(s.server, s.reason) for s in p.skipped] == [
        ("a-0", "already runs 6.12"), ("main-0", "out of scope"), ("c-0", "out of scope"),
    ]  # fmt: skip


def test_a_plan_with_no_moment_of_lag_lists_no_degraded_functions() -> None:
    assert plan(bolt(single("main", "6.11"))).degraded_functions == ()  # no host ever lags


def test_refusals_say_what_is_wrong_and_what_to_do() -> None:
    with pytest.raises(PlanRefused) as unsupported:
        plan(bolt(single("main", "6.11"), single("a", "6.9"), single("b", "6.9")))
    assert unsupported.value.message == (
        "the deployment is already unsupported (a-0 runs 6.9, 2 releases behind main (6.11); "
        "b-0 runs 6.9, 2 releases behind main (6.11)); xsoar-mt plans only from a supported state"
    )
    assert (
        unsupported.value.hint
        == "bring the lagging hosts within one release of main by hand, then plan again"
    )
    with pytest.raises(PlanRefused) as past_main:
        plan(bolt(single("main"), single("a")), scope=Scope(main=False, groups=("a",)))
    assert past_main.value.hint == "upgrade main first (--only main), or plan hosts to --to 6.11"
    with pytest.raises(PlanRefused) as narrow:
        plan(
            elastic(ha("main", "6.11", "6.11"), single("a", "6.10"), single("b", "6.10")),
            scope=Scope(True, ()),
        )
    assert narrow.value.message == (
        "installing 6.12 on main-0 would leave the deployment unsupported: "
        "a-0 runs 6.10, 2 releases behind main (6.12); b-0 runs 6.10, 2 releases behind main (6.12)"
    )
    assert narrow.value.hint == "widen the scope so those hosts are upgraded too, or choose a nearer target"


def test_scope_mistakes_are_refused_with_the_flags_to_use() -> None:
    with pytest.raises(UsageError) as empty:
        plan(bolt(single("main")), scope=Scope(main=False, groups=()))
    assert (
        empty.value.message == "the scope is empty: give --only main, --group NAME, or neither for everything"
    )
    with pytest.raises(UsageError) as unknown:
        plan(bolt(single("main")), scope=Scope(main=False, groups=("x",)))
    assert unknown.value.message == "--group x: no such host group (known: none)"


def test_only_main_warns_naming_every_lagging_host() -> None:
    p = plan(bolt(single("main"), single("a"), single("b")), scope=Scope(main=True, groups=()))
    assert p.warnings == (
        "after this plan, hosts left out of scope lag main by one release (a-0, b-0): "
        "some functions do not work until they are upgraded too",
    )


def test_servers_without_a_version_are_all_named() -> None:
    inventory = bolt(single("main"), single("a"), single("b"))
    with pytest.raises(InvalidInput) as missing:
        plan_upgrade(inventory, {"main-0": Version(6, 11)}, "6.12")
    assert missing.value.message.startswith("no version known for a-0, b-0: ")


def test_a_scope_describes_itself_in_the_flags_words() -> None:
    assert Scope().describe() == "everything"
    assert Scope(main=True, groups=()).describe() == "main"
    assert Scope(main=False, groups=("emea", "apac")).describe() == "group emea, group apac"
    assert Scope(main=True, groups=("emea",)).describe() == "main, group emea"


def test_a_step_runs_its_own_command_on_a_server_that_has_one_and_saves_it_only_then() -> None:
    step = Step(
        "s",
        "p",
        Action.INSTALL,
        ("a", "b"),
        "install",
        "why",
        "6.12",
        SkewVerdict.OK,
        "6.12",
        per_server={"b": "install -target /x"},
    )
    assert (step.command_on("a"), step.command_on("b")) == ("install", "install -target /x")
    assert Step.from_dict(step.to_dict()) == step
    plain = Step("s", "p", Action.STOP, ("a",), "stop", "why", "6.12", SkewVerdict.OK)
    assert "per_server" not in plain.to_dict()


def test_a_saved_plan_without_the_optional_lists_reads_as_empty_ones() -> None:
    data = plan(bolt(single("main"))).to_dict()
    for key in ("skipped", "warnings", "degraded_functions", "downtime_minutes"):
        data.pop(key, None)
    read = Plan.from_dict(data)
    assert (read.skipped, read.warnings, read.degraded_functions, dict(read.downtime_minutes)) == (
        (),
        (),
        (),
        {},
    )


def test_step_ids_are_unique() -> None:
    p = plan(
        elastic(
            ha("main", "6.10", "6.10", "6.10", tenants=1), ha("soc", "6.10", "6.10"), single("lab", "6.10")
        )
    )
    ids = [s.id for s in p.steps]
    assert len(ids) == len(set(ids))


_PLAN_IN_A_NEW_PROCESS = """
import json
from tests.inventories import fleet
from xsoar_mt.planner import plan_upgrade
for database in ("bolt", "elasticsearch"):
    inventory = fleet(40, database=database, release="6.10", seed=7)
    print(json.dumps(plan_upgrade(inventory, inventory.versions(), "6.12").to_dict()))
"""


def test_step_ids_and_the_whole_plan_are_the_same_in_every_process_whatever_its_hash_seed() -> None:
    # A saved plan is run, and a run resumed, by another process: a step id (or an order) that depended
    # on str hashing or set order would differ there. Each process gets its own PYTHONHASHSEED.
    plans = []
    for seed in ("0", "1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", _PLAN_IN_A_NEW_PROCESS],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        plans.append([json.loads(line) for line in done.stdout.splitlines()])
    ids = [[[step["id"] for phase in p["phases"] for step in phase["steps"]] for p in run] for run in plans]
    assert all(len(i) > 40 for i in ids[0])
    assert ids[1:] == ids[:1] * 3
    assert plans[1:] == plans[:1] * 3


def test_every_step_says_why_and_which_release_it_works_toward() -> None:
    p = plan(bolt(dr("main", "6.10"), single("a", "6.10")))
    assert all(s.why and s.release in ("6.11", "6.12") for s in p.steps)
    assert next(s for s in p.steps if s.servers == ("main-s",) and s.action is INSTALL).why == (
        "DR: the secondary is upgraded before the primary"
    )


def test_installs_record_the_release_they_set_and_other_steps_none() -> None:
    p = plan(bolt(single("main")))
    assert {(s.action, s.sets_release) for s in p.steps} >= {(INSTALL, "6.12"), (STOP, None)}
    assert all((s.sets_release is None) == (s.action is not INSTALL) for s in p.steps)


def test_plan_json_round_trips() -> None:
    p = plan(elastic(ha("main", "6.10", "6.10", tenants=1), ha("soc", "6.10", "6.10"), single("lab", "6.10")))
    assert Plan.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_a_scoped_plan_with_warnings_round_trips() -> None:
    p = plan(bolt(single("main"), single("a")), scope=Scope(main=True, groups=()))
    assert Plan.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_a_plan_of_another_format_version_is_refused() -> None:
    data = plan(bolt(single("main"))).to_dict() | {"format_version": 99}
    with pytest.raises(InvalidInput, match="format_version 99"):
        Plan.from_dict(data)


def test_a_plan_missing_a_field_is_refused_as_not_a_plan() -> None:
    data = plan(bolt(single("main"))).to_dict()
    del data["phases"]
    with pytest.raises(InvalidInput, match="not a valid xsoar-mt plan"):
        Plan.from_dict(data)


def test_the_plan_records_what_it_was_built_from() -> None:
    inventory = bolt(single("main"), single("a", "6.10"))
    basis = plan(inventory, "6.11").basis
    assert basis.inventory_digest == inventory.digest
    assert basis.versions == {"a-0": "6.10.0", "main-0": "6.11.0"}
    assert (basis.target, basis.scope) == ("6.11", Scope())


def test_basis_differences_names_what_changed() -> None:
    saved = Basis("aaa", {"main": "6.11.0", "a": "6.10.0", "gone": "6.11.0"}, "6.12", Scope())
    now = Basis(
        "bbb", {"main": "6.12.0", "a": "6.10.0", "new": "6.11.0"}, "6.13", Scope(main=True, groups=())
    )
    assert saved.differences(now) == [
        "the inventory file changed since the plan was made",
        "target: plan 6.12, now 6.13",
        "scope: plan everything, now main",
        "gone: planned from 6.11.0, now not in the inventory",
        "main: planned from 6.11.0, now 6.12.0",
        "new: planned from no version, now 6.11.0",
    ]


def test_an_unchanged_basis_has_no_differences_and_a_changed_one_is_stale() -> None:
    basis = Basis("aaa", {"main": "6.11.0"}, "6.12", Scope())
    assert basis.differences(basis) == []
    basis.require_same(basis)
    with pytest.raises(StalePlan, match=r"target: plan 6\.12, now 6\.13"):
        basis.require_same(replace(basis, target="6.13"))


def test_downtime_per_group_sums_every_hop_with_defaults_for_the_durations_not_given() -> None:
    # install 15 and start 5 from the inventory; stop 1 and healthy 5 by default. A single main is down
    # for its whole phase (26 min a hop), a DR pair until its primary is healthy again (52 min a hop).
    p = plan(bolt(single("main", "6.10"), dr("emea", "6.10")))
    assert p.downtime_minutes == {"main": 52.0, "emea": 104.0}
    data = inventory_dict("bolt", single("main", "6.11"), [])
    data["durations"] = {"stop": 1, "install": 15, "start": 5, "healthy": 2}
    assert plan(parsed(data, "x.yaml")).downtime_minutes == {"main": 23.0}


def test_a_step_is_immutable_and_equal_to_a_step_with_the_same_fields() -> None:
    import dataclasses

    step = next(plan(bolt(single("main"))).steps)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.command = "rm -rf /"  # type: ignore[misc]  # the point: assignment is refused
    assert dataclasses.replace(step) == step
    assert hash(dataclasses.replace(step)) == hash(step)
    assert dataclasses.asdict(step)["id"] == step.id


# -- what the observed state adds: installers in flight, servers down, backups taken, a resume's checks --


def plan_with(inventory: Inventory, facts: PlanFacts, target: str = "6.12", scope: Scope = Scope()) -> Plan:
    return plan_upgrade(inventory, inventory.versions(), target, scope, facts)


def test_an_installer_in_flight_is_followed_without_backup_fetch_or_stop_around_it() -> None:
    inv = bolt(single("main", "6.12"), single("a", "6.11"), single("b", "6.11"))
    p = plan_with(inv, PlanFacts(in_flight={"a-0": "6.12"}))
    around = [s for s in p.steps if "a-0" in s.servers and s.action in (Action.BACKUP, Action.FETCH, STOP)]
    assert around == []
    assert sequence(p, "a@6.12") == [(INSTALL, ("a-0",)), (START, ("a-0",)), (HEALTHY, ("a-0",))]
    assert sequence(p, "b@6.12")[0] == (STOP, ("b-0",))


def test_an_installer_in_flight_for_another_release_than_the_plan_needs_is_refused() -> None:
    inv = bolt(single("main", "6.12"), single("a", "6.11"))
    with pytest.raises(PlanRefused, match=r"a-0 is still installing 6\.13"):
        plan_with(inv, PlanFacts(in_flight={"a-0": "6.13"}))


def test_the_ha_member_whose_installer_still_runs_is_followed_first() -> None:
    inv = elastic(single("main", "6.12"), ha("g", "6.11", "6.11", "6.11"))
    p = plan_with(inv, PlanFacts(in_flight={"g-1": "6.12"}))
    assert sequence(p, "g@6.12")[:2] == [(STOP, ("g-0", "g-2")), (INSTALL, ("g-1",))]


def test_a_half_upgraded_ha_group_stops_the_rest_then_gates_the_done_members_before_installing() -> None:
    inv = elastic(single("main", "6.12"), ha("g", "6.12", "6.11", "6.11"))
    p = plan_with(inv, PlanFacts(down=frozenset({"g-0", "g-1", "g-2"})))
    assert sequence(p, "g@6.12") == [
        (STOP, ("g-1", "g-2")),
        (START, ("g-0",)),
        (HEALTHY, ("g-0",)),
        (INSTALL, ("g-1", "g-2")),
        (START, ("g-1", "g-2")),
        (HEALTHY, ("g-1", "g-2")),
    ]


def test_a_dr_pair_whose_secondary_is_done_and_down_starts_it_before_the_primary_install() -> None:
    inv = bolt(single("main", "6.12"), dr("d", "6.11", "6.12"))
    p = plan_with(inv, PlanFacts(down=frozenset({"d-p", "d-s"})))
    assert sequence(p, "d@6.12")[:4] == [
        (START, ("d-s",)),
        (HEALTHY, ("d-s",)),
        (STOP, ("d-p",)),
        (INSTALL, ("d-p",)),
    ]


def test_servers_found_down_that_no_phase_starts_are_recovered_first() -> None:
    inv = bolt(single("main", "6.12"), single("a", "6.12"), single("b", "6.11"))
    p = plan_with(inv, PlanFacts(down=frozenset({"main-0", "a-0"})))
    assert phase_ids(p)[0] == "recover"
    assert sequence(p, "recover") == [
        (START, ("main-0",)), (HEALTHY, ("main-0",)), (START, ("a-0",)), (HEALTHY, ("a-0",)),
    ]  # fmt: skip


def test_a_server_down_out_of_scope_is_not_started_but_named() -> None:
    inv = bolt(single("main", "6.11"), single("a", "6.11"))
    p = plan_with(inv, PlanFacts(down=frozenset({"a-0"})), scope=Scope(main=True, groups=()))
    assert "recover" not in phase_ids(p)
    assert any("out of scope and not running: a-0" in w for w in p.warnings)


def test_a_server_backed_up_for_the_release_is_not_backed_up_again() -> None:
    inv = bolt(single("main", "6.11"), single("a", "6.11"))
    p = plan_with(inv, PlanFacts(backed_up={"main-0": ("6.12",)}))
    backups = [s.servers for s in p.steps if s.action is Action.BACKUP]
    assert backups == [("a-0",)]


def test_a_resume_with_nothing_to_install_still_gates_every_server_and_validates() -> None:
    inv = bolt(single("main", "6.12", tenants=1), single("a", "6.12"))
    p = plan_with(inv, PlanFacts(verify=True))
    assert not p.nothing_to_do
    assert phase_ids(p) == ["validate"]
    assert [(s.action, s.servers) for s in p.steps][:2] == [(HEALTHY, ("main-0",)), (HEALTHY, ("a-0",))]
    assert any(s.action is Action.VALIDATE for s in p.steps)


def test_backups_are_named_with_a_stamp_the_run_fills_in() -> None:
    p = plan(bolt(single("main", "6.11"), single("a", "6.11")))
    (backup, *_) = [s for s in p.steps if s.action is Action.BACKUP]
    assert "demisto-before-6.12-{stamp}.tar.gz" in backup.command
