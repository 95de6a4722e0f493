"""The upgrade night on the fleet: waves, a maintenance window that closes mid-run, a failure inside a wave,
each followed by `--resume`, and tenant impact; with an operator's inventory (no `version:` keys) plus the
tiny `durations` that make the fleet's half-second installs' estimates meaningful."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet import Fleet, require_sshd
from tests.fleet.runs import order_violations, run, run_json, versions, xsoar_mt
from tests.fleet.spec import FleetSpec
from xsoar_mt.inventory import load_inventory
from xsoar_mt.known import KnownState

# its module-scoped fleet is started once: every test of the file on the same pytest-xdist worker
pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("waves-fleet")]

WAVES = "1,50%,100%"  # four host groups: w1 the canary, then w2 and w3 (a DR pair) together, then w4
TENANTS = {"ops", "acme", "beta", "gamma", "delta"}
# Minutes per step, so the estimates fit the fleet's half-second installs (the defaults assume real ones).
DURATIONS = {"backup": 0.02, "fetch": 0.02, "stop": 0.02, "install": 0.1, "start": 0.02, "healthy": 0.05,
             "validate": 0.02}  # fmt: skip


@pytest.fixture(scope="module")
def night_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_sshd()
    spec = FleetSpec.from_dict(
        {
            "deployments": [
                {
                    "name": "night",
                    "version": "6.11.0",
                    "main": {"server": {"name": "night-main"}, "tenants": ["ops"]},
                    "hosts": [
                        {"name": "w1", "server": {"name": "night-w1"}, "tenants": ["acme"]},
                        {"name": "w2", "server": {"name": "night-w2"}, "tenants": ["beta"]},
                        {
                            "name": "w3",
                            "dr": {"primary": {"name": "night-w3p"}, "secondary": {"name": "night-w3s"}},
                            "tenants": ["gamma"],
                        },
                        {"name": "w4", "server": {"name": "night-w4"}, "tenants": ["delta"]},
                    ],
                }
            ]
        }
    )
    with Fleet(spec, tmp_path_factory.mktemp("night-fleet")) as fleet:
        yield fleet


@pytest.fixture
def fleet(night_fleet: Fleet) -> Fleet:
    night_fleet.reset()
    night_fleet.add_installer("6.12")
    return night_fleet


def inventory(fleet: Fleet, tmp_path: Path) -> Path:
    return fleet.inventory("night", tmp_path / "inventory.yaml", durations=DURATIONS)


def first(events: list[dict[str, Any]], kind: str, step: str) -> int:
    return next(i for i, e in enumerate(events) if e["kind"] == kind and step in (e.get("step") or ""))


def waves_started(events: list[dict[str, Any]]) -> list[tuple[int, list[str]]]:
    return [(e["data"]["wave"], e["data"]["groups"]) for e in events if e["kind"] == "wave-started"]


def groups_on_one_version(fleet: Fleet) -> bool:
    return fleet.server("night-w3p").version == fleet.server("night-w3s").version


def test_a_canary_wave_is_healthy_and_validated_before_any_other_host_installs(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = inventory(fleet, tmp_path)
    planned = xsoar_mt("upgrade", "plan", "-i", str(inv), "--to", "6.12", "--probe", "--waves", WAVES, "-o", "json",
                       "--state-dir", str(tmp_path / "state"), cwd=tmp_path)  # fmt: skip
    assert planned.returncode == 0, planned.stdout + planned.stderr
    impact = json.loads(planned.stdout)["tenant_impact"]
    assert sorted(row["tenant"] for row in impact) == sorted(TENANTS)  # every tenant once, main's too
    assert {row["tenant"]: row["wave"] for row in impact} == {
        "ops": None, "acme": 1, "beta": 2, "gamma": 2, "delta": 3,
    }  # fmt: skip

    result, events = run_json(inv, "--to", "6.12", "--waves", WAVES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(versions(fleet, "night").values()) == {"6.12.0"}
    assert order_violations(fleet) == []
    assert waves_started(events) == [(1, ["w1"]), (2, ["w2", "w3"]), (3, ["w4"])]
    canary_healthy = first(events, "step-finished", "w1@6.12/wait-healthy/")
    validated = first(events, "step-finished", "validate:wave-1@6.12/tenants/")
    assert events[validated]["data"]["outcome"] == "ok"
    other_installs = [i for i, e in enumerate(events) if e["kind"] == "step-started" and "/install/" in (e.get("step") or "")
                      and not e["step"].startswith(("main@", "w1@"))]  # fmt: skip
    assert canary_healthy < validated < min(other_installs)
    # the fleet's own log agrees: the canary's installer ended before any other host's began
    begins = [e["server"] for e in fleet.events() if e["event"] == "install_begin"]
    assert begins[:2] == ["night-main", "night-w1"]


def test_a_window_that_closes_mid_run_stops_at_a_safe_point_and_resume_keeps_the_waves(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = inventory(fleet, tmp_path)
    state = tmp_path / "state"
    # An earlier night measured installs of half an hour on wave 2's servers: they no longer fit tonight.
    KnownState(state, load_inventory(inv)).record_durations(
        {name: {"install": 30.0} for name in ("night-w2", "night-w3p", "night-w3s")}, "an-earlier-run"
    )
    planned = xsoar_mt("upgrade", "plan", "-i", str(inv), "--to", "6.12", "--probe", "--waves", WAVES,
                       "--window-end", "+20m", "--state-dir", str(state), cwd=tmp_path)  # fmt: skip
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "the run stops before w2@6.12 (wave 2)" in planned.stdout
    assert "learned durations: 3 servers" in planned.stdout

    closed = run(inv, "--to", "6.12", "--waves", WAVES, "--window-end", "+20m")
    assert closed.returncode == 11, closed.stdout + closed.stderr
    assert "window closed" in closed.stdout and "left for the next window: 3 group upgrades" in closed.stdout
    assert "--resume" in closed.stdout and "--window-end" in closed.stdout
    # the safe point: main and the canary done, nothing stopped, no group on mixed versions
    assert versions(fleet, "night") == {
        "night-main": "6.12.0", "night-w1": "6.12.0",
        "night-w2": "6.11.0", "night-w3p": "6.11.0", "night-w3s": "6.11.0", "night-w4": "6.11.0",
    }  # fmt: skip
    assert all(server.running for server in fleet.servers("night"))
    assert groups_on_one_version(fleet)
    assert not [
        e for e in fleet.events() if e["event"] == "stop" and e["server"] not in ("night-main", "night-w1")
    ]

    resumed, events = run_json(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, "night").values()) == {"6.12.0"}
    assert order_violations(fleet) == []
    assert waves_started(events) == [(2, ["w2", "w3"]), (3, ["w4"])]  # the waves the run started with
    assert first(events, "step-finished", "validate:wave-1@6.12/") < first(events, "step-started", "w2@6.12/")


def test_a_failure_inside_a_wave_stops_the_run_and_resume_finishes_in_the_same_waves(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("night-w2").set_fault(installer_fails=True)
    inv = inventory(fleet, tmp_path)
    failed, events = run_json(inv, "--to", "6.12", "--waves", WAVES)
    assert failed.returncode == 6, failed.stdout + failed.stderr
    assert waves_started(events) == [(1, ["w1"]), (2, ["w2", "w3"])]
    # w3 went beside w2 and is finished; nothing of wave 3 began
    assert fleet.server("night-w3p").version == fleet.server("night-w3s").version == "6.12.0"
    assert fleet.server("night-w3p").running and fleet.server("night-w3s").running
    assert fleet.server("night-w4").version == "6.11.0" and fleet.server("night-w4").running

    fleet.server("night-w2").clear_faults()
    resumed, events = run_json(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, "night").values()) == {"6.12.0"}
    assert all(server.running for server in fleet.servers("night"))
    assert order_violations(fleet) == []
    assert waves_started(events) == [(2, ["w2"]), (3, ["w4"])]
