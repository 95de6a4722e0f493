"""The planner with waves: each wave its own phases, validated before the next, kept on resume."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.inventories import build, five, inventory_dict, parsed
from tests.inventories import single_group as single
from tests.unit.planning import Case, cases, plan, plan_or_refusal, waved
from xsoar_mt.plan import Action, Plan, Scope, Waves
from xsoar_mt.planner import PlanFacts, plan_upgrade
from xsoar_mt.releases import Version
from xsoar_mt.waves import WaveSpec


def ids(p: Plan) -> list[str]:
    return [ph.id for ph in p.phases]


def test_each_wave_is_its_own_phases_and_the_wave_before_is_validated_first() -> None:
    p = waved(five(), "1,50%,100%")
    assert ids(p) == [
        "prepare", "main@6.12",
        "h1@6.12",
        "validate:wave-1@6.12",
        "h2@6.12", "h3@6.12",
        "validate:wave-2@6.12",
        "h4@6.12", "d5@6.12",
        "validate",
    ]  # fmt: skip
    assert p.waves == Waves("1,50%,100%", {"h1": 1, "h2": 2, "h3": 2, "h4": 3, "d5": 3})
    assert [ph.wave for ph in p.phases if ph.group not in (None, "main")] == [1, 2, 2, 3, 3]


def test_a_wave_validation_asks_the_tenants_of_that_wave_through_main_on_its_release() -> None:
    p = waved(five(), "2,100%")
    (check,) = next(ph for ph in p.phases if ph.id == "validate:wave-1@6.12").steps
    assert check.action is Action.VALIDATE and check.servers == ("main-0",) and check.release == "6.12"
    assert check.id == "validate:wave-1@6.12/tenants/main-0"
    assert "2 tenants of wave 1 (acc_h1-t0, acc_h2-t0)" in check.command


def test_a_wave_without_tenants_checks_that_main_answers() -> None:
    inventory = build("bolt", single("main"), [single("a"), single("b")])
    (check,) = next(ph for ph in waved(inventory, "1").phases if ph.wave == 1 and ph.group is None).steps
    assert check.id == "validate:wave-1@6.12/main/main-0"


def test_a_wave_and_the_last_validation_show_an_ipv6_mains_url_in_brackets() -> None:
    layout = inventory_dict("bolt", single("main"), [single("a"), single("b")])
    layout["main"]["server"]["address"] = "fd00::1"
    p = waved(parsed(layout), "1")
    checks = [s.command for s in p.steps if s.id.endswith("/main/main-0")]
    assert checks == ["GET https://[fd00::1]:443/health"] * 2  # the wave's and the run's own


def test_a_two_hop_plan_runs_the_same_waves_in_each_hop() -> None:
    p = waved(five("6.10"), "1,100%")
    assert ids(p) == [
        "prepare",
        "main@6.11", "h1@6.11", "validate:wave-1@6.11", "h2@6.11", "h3@6.11", "h4@6.11", "d5@6.11",
        "main@6.12", "h1@6.12", "validate:wave-1@6.12", "h2@6.12", "h3@6.12", "h4@6.12", "d5@6.12",
        "validate",
    ]  # fmt: skip


def test_the_wave_key_puts_a_friendly_group_in_the_canary() -> None:
    inventory = five()
    hosts = tuple(replace(g, wave=1) if g.name == "h4" else g for g in inventory.hosts)
    inventory = replace(inventory, hosts=hosts)
    p = waved(inventory, "1,100%")
    assert ids(p)[2:4] == ["h4@6.12", "validate:wave-1@6.12"]


def test_a_resumed_plan_keeps_the_waves_and_validates_the_wave_before_the_first_left() -> None:
    inventory = five()
    first = waved(inventory, "1,50%,100%")
    assert first.waves is not None
    # main, h1 (wave 1) and h2 (wave 2) are done; h3 of wave 2 and all of wave 3 are left
    versions = dict(inventory.versions())
    for server in ("main-0", "h1-0", "h2-0"):
        versions[server] = Version.parse("6.12.0")
    resumed = plan_upgrade(inventory, versions, "6.12", facts=PlanFacts(verify=True), waves=first.waves)
    assert resumed.waves == first.waves
    assert ids(resumed) == [
        "prepare", "validate:wave-1@6.12", "h3@6.12", "validate:wave-2@6.12", "h4@6.12", "d5@6.12", "validate",
    ]  # fmt: skip
    assert [ph.wave for ph in resumed.phases if ph.group] == [2, 3, 3]


def test_without_waves_the_plan_has_no_wave_anywhere_in_its_json() -> None:
    text = json.dumps(plan(five()).to_dict())
    assert '"wave' not in text


def test_a_plan_with_waves_reads_back_from_its_json_unchanged() -> None:
    p = waved(five("6.10"), "1,25%,100%")
    assert Plan.from_dict(json.loads(json.dumps(p.to_dict()))) == p


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from(["1", "1,100%", "2,10", "1,25%,100%", "50%", "3,1"]))
def test_every_planned_host_group_runs_in_its_wave_and_each_wave_waits_for_the_one_before(
    case: Case, spec: str
) -> None:
    plain = plan_or_refusal(case)
    if plain is None:
        return
    p = plan_upgrade(
        case.inventory, case.inventory.versions(), case.target, case.scope, waves=WaveSpec.parse(spec)
    )
    if p.waves is None:  # no host group to upgrade: the plan without waves
        assert p == plain and not [ph for ph in p.phases if ph.group not in (None, "main")]
        return
    # the same work as without waves, only in another order, with the validations between the waves
    assert sorted(s.id for s in p.steps if s.action is not Action.VALIDATE) == sorted(
        s.id for s in plain.steps if s.action is not Action.VALIDATE
    )
    assert {ph.group for ph in p.phases if ph.group not in (None, "main")} == set(p.waves.groups)
    numbers = sorted(set(p.waves.groups.values()))
    for hop in p.hops:
        sequence = [
            ph
            for ph in p.phases
            if (ph.group not in (None, "main") and ph.release == hop)
            or (ph.group is None and ph.wave is not None and ph.id.endswith(f"@{hop}"))
        ]
        before_it, seen = None, []
        for phase in sequence:
            if phase.group is not None:
                wave = p.waves.groups[phase.group]
                assert phase.wave == wave
                if not seen or seen[-1] != wave:  # the first group of a wave in this hop
                    assert not seen or seen[-1] < wave  # waves in order, each whole
                    earlier = [n for n in numbers if n < wave]
                    if earlier:  # right after the validation of the wave before it
                        assert before_it is not None and before_it.group is None
                        assert before_it.wave == earlier[-1]
                    seen.append(wave)
            before_it = phase


def test_waves_with_no_host_group_to_upgrade_leave_the_plan_as_it_is() -> None:
    inventory = five()
    only_main = plan_upgrade(
        inventory, inventory.versions(), "6.12", Scope(main=True, groups=()), waves=WaveSpec.parse("1")
    )
    assert only_main.waves is None
    assert only_main == plan(inventory, "6.12", Scope(main=True, groups=()))
