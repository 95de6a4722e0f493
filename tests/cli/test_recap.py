"""The recap after a run: each server's own outcome, whatever step it shared with others."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.recaps import recap_state
from xsoar_mt.cli.render import render_recap
from xsoar_mt.engine import RunReport
from xsoar_mt.inventory import load_inventory
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import Version
from xsoar_mt.usecases.run import RunOutcome

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.example.yaml"


def test_the_recap_shows_each_servers_own_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    inventory = load_inventory(EXAMPLE)
    plan = plan_upgrade(inventory, inventory.versions(), "6.12")
    v11, v12 = Version.parse("6.11.0"), Version.parse("6.12.0")
    # ha-b and ha-c shared the "rest" install step; only ha-c failed it.
    servers = {
        "ha-a": recap_state(v12, True, "g@6.12/wait-healthy", "ok"),
        "ha-b": recap_state(v12, True, "g@6.12/install", "ok"),
        "ha-c": recap_state(v11, False, "g@6.12/install", "failed"),
        "h2": recap_state(v11, True, None, "not started"),
        "h3": recap_state(v12, True, None, "skipped"),
    }
    outcome = RunOutcome(RunReport("failed", servers, 20, ["ha-c: the installer exited 1"]), plan, "r1",
                         Path("/state/runs/r1"), resume_command="xsoar-mt upgrade run -i i.yaml --resume r1")  # fmt: skip
    render_recap(outcome)
    rows = {
        cells[0]: cells[4]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("│") and (cells := [c.strip() for c in line.strip("│").split("│")])
    }
    assert rows == {"ha-a": "ok", "ha-b": "ok", "ha-c": "failed", "h2": "not started", "h3": "skipped"}


def test_an_interrupted_recap_says_so_names_the_tenants_down_and_what_lags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = load_inventory(EXAMPLE)
    plan = plan_upgrade(inventory, inventory.versions(), "6.12")
    servers = {"m": recap_state(Version.parse("6.11.0"), True, "main@6.11/wait-healthy/m", "ok")}
    outcome = RunOutcome(RunReport("interrupted", servers, 9, []), plan, "r1", Path("/state/runs/r1"),
                         resume_command="xsoar-mt upgrade run -i i.yaml --resume r1",
                         tenants_down=["globex", "initech"], lagging_functions=("content sync",))  # fmt: skip
    render_recap(outcome)
    out = capsys.readouterr().out
    assert "interrupted by the operator (Ctrl-C or SIGTERM): nothing failed" in out
    assert "once the cause is fixed" not in out and "to continue: xsoar-mt upgrade run" in out
    assert "tenants down now: globex, initech" in out
    assert "these do not work:" in out and "  - content sync" in out


def test_the_tenants_down_are_those_whose_serving_servers_are_all_stopped() -> None:
    from xsoar_mt.recap import lagging_functions, tenants_down

    inventory = load_inventory(EXAMPLE)
    running: dict[str, bool | None] = {s.name: True for s in inventory.servers}
    assert tenants_down(inventory, running) == []
    emea = inventory.group("emea")
    secondary = [s.name for s in emea.servers if s.role.value == "secondary"]
    primary = [s.name for s in emea.servers if s.role.value == "primary"]
    assert tenants_down(inventory, running | dict.fromkeys(secondary, False)) == []  # a standby serves nobody
    assert tenants_down(inventory, running | dict.fromkeys(primary, False)) == [t.name for t in emea.tenants]
    main = {s.name for s in inventory.main.servers}
    releases = {s.name: "6.11" if s.name in main else "6.10" for s in inventory.servers}
    assert lagging_functions(inventory, releases)  # hosts one behind main: degraded
    assert lagging_functions(inventory, dict.fromkeys(releases, "6.11")) == ()


def test_a_run_with_nothing_to_do_says_what_is_already_true_for_an_upgrade_and_for_a_rollback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A rollback's target names the way back, not a release: 'already runs rollback' would be untrue."""
    from dataclasses import replace

    from xsoar_mt.plan import ROLLBACK, ROLLBACK_RELEASE_ONLY

    inventory = load_inventory(EXAMPLE)
    nothing = plan_upgrade(inventory, {s.name: Version.parse("6.12.0") for s in inventory.servers}, "6.12")
    assert nothing.nothing_to_do
    render_recap(RunOutcome(None, nothing, None, None))
    assert capsys.readouterr().out.strip() == "Nothing to do: every server in scope already runs 6.12."
    for target in (ROLLBACK, ROLLBACK_RELEASE_ONLY):
        render_recap(RunOutcome(None, replace(nothing, target=target), None, None))
        said = capsys.readouterr().out.strip()
        assert said == "Nothing to do: no server in scope runs a newer release than its backup."
