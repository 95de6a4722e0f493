"""Validation dispatches on a kind and reports each tenant's problem as that tenant's, never by message text."""

from __future__ import annotations

import json

import pytest

from tests.unit.engine_setup import INVENTORY
from xsoar_mt.inventory import parse_inventory
from xsoar_mt.plan import Action, Phase, PhaseKind, Step, ValidationKind
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.validation import check_tenants


def test_a_tenant_that_does_not_answer_is_reported_as_that_tenant_s_problem() -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    (problem,) = check_tenants(inventory, {}, "6.11")
    assert problem.tenant == ("g1", "acme")
    assert problem.message.startswith("tenant acme (g1) did not answer through main")


def test_a_tenant_on_another_release_is_reported_as_that_tenant_s_problem() -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    (problem,) = check_tenants(inventory, {"acc_acme": '{"demistoVersion": "6.10.0"}'}, "6.11")
    assert problem.tenant == ("g1", "acme") and "runs 6.10.0, expected 6.11" in problem.message


def test_every_validation_step_of_a_plan_has_the_kind_it_was_planned_with() -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    checks = [s.check for s in plan.steps if s.action is Action.VALIDATE]
    assert checks == [ValidationKind.MAIN, ValidationKind.TENANTS]
    assert {s.check for s in plan.steps if s.action is not Action.VALIDATE} == {None}


@pytest.mark.parametrize("kind", list(ValidationKind))
def test_a_validation_step_read_back_from_json_has_its_kind_and_the_json_has_no_new_key(
    kind: ValidationKind,
) -> None:
    step = Step(f"validate/{kind}/m1", "validate", Action.VALIDATE, ("m1",), "", "", "6.11", check=kind)
    assert "check" not in step.to_dict()
    read = Step.from_dict(json.loads(json.dumps(step.to_dict())))
    assert read.check is kind and read == step


def test_a_saved_validation_step_whose_id_names_no_kind_reads_as_the_tenants_check() -> None:
    tenants = ValidationKind.TENANTS
    data = Step("validate/validate/main", "validate", Action.VALIDATE, ("m1",), "", "", "6.11", check=tenants)
    assert Step.from_dict(data.to_dict()).check is tenants
    other = Step("g1@6.11/stop/h1", "g1@6.11", Action.STOP, ("h1",), "", "", "6.11").to_dict()
    assert Step.from_dict(other).check is None


def test_a_validation_step_without_its_kind_or_another_step_with_one_is_refused() -> None:
    with pytest.raises(ValueError, match="validation step has a kind"):
        Step("validate/main/m1", "validate", Action.VALIDATE, ("m1",), "", "", "6.11")
    with pytest.raises(ValueError, match="validation step has a kind"):
        Step("g1@6.11/stop/h1", "g1@6.11", Action.STOP, ("h1",), "", "", "6.11", check=ValidationKind.MAIN)


def test_each_phase_of_a_plan_has_its_kind_from_its_own_fields() -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    kinds = [p.kind for p in plan.phases]
    assert kinds[0] is PhaseKind.PREPARE and kinds[-1] is PhaseKind.VALIDATE
    assert set(kinds[1:-1]) == {PhaseKind.GROUP}
    assert Phase("recover", "Recover", ()).kind is PhaseKind.RECOVER
    assert Phase("validate:wave-1@6.11", "Validate wave 1", (), wave=1).kind is PhaseKind.VALIDATE
