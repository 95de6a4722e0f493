"""Validation dispatches on a kind and reports each tenant's problem as that tenant's, never by message text."""

from __future__ import annotations

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
    step = Step("validate/load-balancer/m1", "validate", Action.VALIDATE, ("m1",), "", "", "6.11")
    assert step.check is ValidationKind.LOAD_BALANCER


def test_each_phase_of_a_plan_has_its_kind_from_its_own_fields() -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    kinds = [p.kind for p in plan.phases]
    assert kinds[0] is PhaseKind.PREPARE and kinds[-1] is PhaseKind.VALIDATE
    assert set(kinds[1:-1]) == {PhaseKind.GROUP}
    assert Phase("recover", "Recover", ()).kind is PhaseKind.RECOVER
    assert Phase("validate:wave-1@6.11", "Validate wave 1", (), wave=1).kind is PhaseKind.VALIDATE
