"""`rollback run` across waves, side by side with --parallel, and resumed after a validation that
failed: host groups always go back before main, and no host is ever ahead of main."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.rollbacks import (
    assert_back,
    phase_spans,
    rollback,
    rollback_json,
    upgrade_then_write,
)

pytestmark = pytest.mark.fleet


def test_a_resumed_rollback_whose_validation_failed_validates_again_and_ends_by_what_it_finds(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    fleet.server("single-h1").set_fault(tenants_503=True)  # its tenants stop answering through main
    failed, _ = rollback_json(inv)
    assert failed.returncode == 9, failed.stdout[-3000:] + failed.stderr
    assert all(s.version == "6.11.0" and s.running for s in fleet.servers("single"))

    still = rollback(inv, "--resume", "latest")  # the cause is not fixed: validation fails again, saying why
    assert still.returncode == 9, still.stdout[-3000:] + still.stderr
    assert "acme" in still.stdout and "validat" in still.stdout

    fleet.server("single-h1").clear_faults()
    resumed, events = rollback_json(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr
    assert_back(fleet, "single", events)  # validation ran again, and every tenant answered
    from tests.recap_check import assert_recap_agrees_with_journal

    assert_recap_agrees_with_journal(tmp_path / "state")
    (finished,) = [e for e in events if e["kind"] == "run-finished"]
    assert finished["data"]["outcome"] == "succeeded", finished


def test_with_parallel_2_the_host_groups_go_back_side_by_side_and_all_before_main(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    result, events = rollback_json(inv, "--parallel", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert_back(fleet, "single", events)  # release and data back, tenants answer, no host ever ahead of main
    spans = phase_spans(tmp_path / "state")
    h1, h2, main = spans["h1@6.11"], spans["h2@6.11"], spans["main@6.11"]
    assert h1[0] < h2[1] and h2[0] < h1[1], spans  # each began before the other finished: side by side
    assert max(h1[1], h2[1]) < main[0], spans  # main began only once both host groups were back


def test_with_waves_each_wave_goes_back_after_the_one_before_is_validated_and_all_before_main(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    result, events = rollback_json(inv, "--waves", "1,100%")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert_back(fleet, "single", events)
    spans = phase_spans(tmp_path / "state")
    h1, check, h2, main = (spans[p] for p in ("h1@6.11", "validate:wave-1", "h2@6.11", "main@6.11"))
    assert h1[1] < check[0] and check[1] < h2[0] and h2[1] < main[0], spans
    waves = [e["data"] for e in events if e["kind"] == "wave-started"]
    assert [(w["wave"], w["groups"]) for w in waves] == [(1, ["h1"]), (2, ["h2"])]
    validated = [
        e for e in events if e["kind"] == "step-finished" and e["step"].startswith("validate:wave-1/")
    ]
    assert [e["data"]["outcome"] for e in validated] == ["ok"]  # h1's tenants answered through main
