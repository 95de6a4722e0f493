"""The fleet's command faults (a simulator self-test): a rule fails, delays or drops matching commands."""

from __future__ import annotations

import time

import pytest

from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet


def test_a_fail_rule_fails_only_the_matching_commands_and_only_as_often_as_it_says(fleet: Fleet) -> None:
    fleet.server("single-h1").set_fault(commands=[{"match": "echo hit", "action": "fail", "times": 2}])
    results = [fleet.ssh("single-h1", "echo hit") for _ in range(3)]
    assert [r.returncode for r in results] == [1, 1, 0]
    assert "simulated failure" in results[0].stderr
    assert fleet.ssh("single-h1", "echo other").returncode == 0
    assert [e["detail"] for e in fleet.events() if e["event"] == "fault"] == [
        "fail on a command matching 'echo hit'"
    ] * 2


def test_a_drop_rule_takes_sshd_away_for_its_seconds_then_it_answers_again(fleet: Fleet) -> None:
    fleet.server("single-h1").set_fault(commands=[{"match": "echo drop", "action": "drop", "seconds": 1}])
    dropped = fleet.ssh("single-h1", "echo drop")
    assert dropped.returncode == 255 and "drop" not in dropped.stdout
    deadline = time.monotonic() + 15
    while fleet.ssh("single-h1", "echo back").returncode != 0:
        assert time.monotonic() < deadline, "sshd did not come back"
        time.sleep(0.2)
    assert fleet.ssh("single-h1", "echo drop").returncode == 0  # the rule hit once


def test_a_slow_rule_delays_the_command_then_runs_it(fleet: Fleet) -> None:
    fleet.server("single-h1").set_fault(commands=[{"match": "echo slow", "action": "slow", "seconds": 1}])
    began = time.monotonic()
    result = fleet.ssh("single-h1", "echo slow")
    assert result.returncode == 0 and result.stdout.strip() == "slow"
    assert [e["detail"] for e in fleet.events() if e["event"] == "fault"] == [
        "slow on a command matching 'echo slow'"
    ]
    assert time.monotonic() - began >= 1
