"""Tests of the order checker with hand-made event logs: a good log per topology, a bad one per rule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fleet.order import RULES, check_order
from tests.fleet.spec import FleetSpec, topology_spec

SPEC = topology_spec()


def log(*steps: str, versions: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Events from ``"server event [version]"`` (or ``"server health STATUS"``) steps, after a baseline of
    the whole spec."""
    current = {name: "6.11.0" for name in SPEC.server_names()} | (versions or {})
    events: list[dict[str, Any]] = [
        {"server": n, "event": "baseline", "version_after": v, "running": True} for n, v in current.items()
    ]
    for step in steps:
        server, event, *rest = step.split()
        if event == "health":  # "server health 200"
            events.append({"server": server, "event": event, "status": int(rest[0])})
            continue
        target = rest[0] if rest else current[server]
        events.append(
            {
                "server": server,
                "event": event,
                "version_before": current[server],
                "version_after": target,
                **({"reason": "running"} if event == "install_refused" else {}),
            }
        )
        if event == "install_end":
            current[server] = target
    return events


def upgrade(*servers: str, to: str = "6.12.0") -> list[str]:
    """stop, install, start each server in turn."""
    steps = []
    for server in servers:
        steps += [f"{server} stop", f"{server} install_begin {to}", f"{server} install_end {to}"]
        steps.append(f"{server} start")
    return steps


def rules(events: list[dict[str, Any]], spec: FleetSpec = SPEC) -> list[str]:
    return [v.rule for v in check_order(events, spec)]


def test_a_vendor_order_upgrade_of_every_topology_has_no_violation() -> None:
    events = log(
        *upgrade("single-main", "single-h1", "single-h2"),
        # HA main: stop all, one first, then the other
        "hamain-m1 stop", "hamain-m2 stop",
        "hamain-m1 install_begin 6.12.0", "hamain-m1 install_end 6.12.0", "hamain-m1 start",
        "hamain-m1 health 503", "hamain-m1 health 200",
        "hamain-m2 install_begin 6.12.0", "hamain-m2 install_end 6.12.0", "hamain-m2 start",
        *upgrade("hamain-h1"),
        # DR main: stop primary, stop secondary, secondary, then primary
        "drmain-p stop", "drmain-s stop",
        "drmain-s install_begin 6.12.0", "drmain-s install_end 6.12.0", "drmain-s start",
        "drmain-p install_begin 6.12.0", "drmain-p install_end 6.12.0", "drmain-p start",
        *upgrade("drmain-h1", "hahosts-main", "drhosts-main"),
        "hahosts-g1a stop", "hahosts-g1b stop",
        "hahosts-g1a install_begin 6.12.0", "hahosts-g1a install_end 6.12.0", "hahosts-g1a start",
        "hahosts-g1a health 200",
        "hahosts-g1b install_begin 6.12.0", "hahosts-g1b install_end 6.12.0", "hahosts-g1b start",
        "drhosts-d1p stop", "drhosts-d1s stop",
        "drhosts-d1s install_begin 6.12.0", "drhosts-d1s install_end 6.12.0", "drhosts-d1s start",
        "drhosts-d1p install_begin 6.12.0", "drhosts-d1p install_end 6.12.0", "drhosts-d1p start",
    )  # fmt: skip
    assert check_order(events, SPEC) == []


def test_two_hops_alternating_main_and_hosts_have_no_violation() -> None:
    versions = {"single-main": "6.10.0", "single-h1": "6.10.0", "single-h2": "6.10.0"}
    events = log(
        *upgrade("single-main", "single-h1", "single-h2", to="6.11.0"),
        *upgrade("single-main", "single-h1", "single-h2", to="6.12.0"),
        versions=versions,
    )
    assert check_order(events, SPEC) == []


def test_install_while_running_is_a_violation() -> None:
    events = log(*upgrade("single-main"), "single-h1 install_begin 6.12.0")
    found = check_order(events, SPEC)
    assert [v.rule for v in found] == ["install-while-running"]
    assert found[0].servers == ("single-h1",)
    assert found[0].index == len(events) - 1


def test_a_refused_install_because_the_service_ran_is_a_violation() -> None:
    assert rules(log("single-main install_refused 6.12.0")) == ["install-while-running"]


def test_a_host_installed_before_main_finished_is_a_violation() -> None:
    events = log(
        "single-main stop", "single-main install_begin 6.12.0",
        "single-h1 stop", "single-h1 install_begin 6.12.0",
    )  # fmt: skip
    found = check_order(events, SPEC)
    assert [v.rule for v in found] == ["main-before-hosts"]
    assert found[0].servers == ("single-h1", "single-main")


def test_ha_main_installed_while_a_peer_still_runs_is_a_violation() -> None:
    events = log("hamain-m1 stop", "hamain-m1 install_begin 6.12.0")
    found = check_order(events, SPEC)
    assert [v.rule for v in found] == ["ha-stopped-before-install"]
    assert found[0].servers == ("hamain-m2",)


def test_ha_host_group_installed_while_a_peer_still_runs_is_a_violation() -> None:
    events = log(*upgrade("hahosts-main"), "hahosts-g1b stop", "hahosts-g1b install_begin 6.12.0")
    assert rules(events) == ["ha-stopped-before-install"]


def test_ha_peers_running_mixed_versions_is_a_violation() -> None:
    events = log(
        "hamain-m1 stop", "hamain-m2 stop",
        "hamain-m1 install_begin 6.12.0", "hamain-m1 install_end 6.12.0", "hamain-m1 start",
        "hamain-m2 start",
    )  # fmt: skip
    assert rules(events) == ["ha-mixed-versions"]


def test_ha_rest_installed_before_the_first_answered_health_is_a_violation() -> None:
    first = ["hamain-m1 stop", "hamain-m2 stop",
             "hamain-m1 install_begin 6.12.0", "hamain-m1 install_end 6.12.0", "hamain-m1 start"]  # fmt: skip
    never_asked = check_order(log(*first, "hamain-m2 install_begin 6.12.0"), SPEC)
    assert [(v.rule, v.servers) for v in never_asked] == [("ha-first-healthy", ("hamain-m2", "hamain-m1"))]
    assert rules(log(*first, "hamain-m1 health 503", "hamain-m2 install_begin 6.12.0")) == [
        "ha-first-healthy"
    ]
    # healthy once, then stopped (or restarted) before the rest: no longer evidence of health
    for again in ("stop", "start"):
        events = log(*first, "hamain-m1 health 200", f"hamain-m1 {again}", "hamain-m2 install_begin 6.12.0")
        assert "ha-first-healthy" in rules(events), again
    assert rules(log(*first, "hamain-m1 health 200", "hamain-m2 install_begin 6.12.0")) == []


def test_dr_primary_installed_before_its_secondary_is_a_violation() -> None:
    events = log("drmain-p stop", "drmain-p install_begin 6.12.0")
    found = check_order(events, SPEC)
    assert [v.rule for v in found] == ["dr-secondary-first"]
    assert "not yet on 6.12" in found[0].message


def test_dr_primary_installed_while_its_secondary_is_down_is_a_violation() -> None:
    events = log(
        "drmain-p stop", "drmain-s stop",
        "drmain-s install_begin 6.12.0", "drmain-s install_end 6.12.0",
        "drmain-p install_begin 6.12.0",
    )  # fmt: skip
    found = check_order(events, SPEC)
    assert [v.rule for v in found] == ["dr-secondary-first"]
    assert found[0].message.endswith("was not running")


def test_a_host_two_releases_behind_main_is_a_violation() -> None:
    versions = {"single-main": "6.10.0", "single-h1": "6.10.0", "single-h2": "6.10.0"}
    events = log(*upgrade("single-main", to="6.12.0"), versions=versions)
    found = check_order(events, SPEC)
    assert [(v.rule, v.servers) for v in found] == [
        ("version-skew", ("single-h1",)),
        ("version-skew", ("single-h2",)),
    ]
    assert "behind" in found[0].message


def test_a_host_ahead_of_main_is_a_violation_and_release_steps_follow_the_list() -> None:
    events = log("single-h1 stop", "single-h1 install_begin 6.12.0", "single-h1 install_end 6.12.0")
    assert rules(events) == ["main-before-hosts", "version-skew"]
    # 6.2 -> 6.5 is one release (there is no 6.3 or 6.4): a host on 6.2 under main 6.5 is fine
    versions = {"single-main": "6.2.0", "single-h1": "6.2.0", "single-h2": "6.2.0"}
    assert rules(log(*upgrade("single-main", to="6.5.0"), versions=versions)) == []


def test_skew_already_in_the_baseline_is_not_reported() -> None:
    assert rules(log("single-main stop", versions={"single-h1": "6.9.0"})) == []


# One short log per rule that breaks that rule and no other: a rule added to RULES without a log here
# fails test_every_rule_has_a_log_that_breaks_it.
BREAKS = {
    "install-while-running": log("single-main install_begin 6.12.0"),
    "main-before-hosts": log(
        "single-main stop", "single-main install_begin 6.12.0", "single-h1 stop", "single-h1 install_begin 6.12.0"
    ),
    "ha-stopped-before-install": log("hamain-m1 stop", "hamain-m1 install_begin 6.12.0"),
    "ha-first-healthy": log(
        "hamain-m1 stop", "hamain-m2 stop", "hamain-m1 install_begin 6.12.0", "hamain-m1 install_end 6.12.0",
        "hamain-m1 start", "hamain-m2 install_begin 6.12.0",
    ),
    "ha-mixed-versions": log(
        "hamain-m1 stop", "hamain-m2 stop", "hamain-m1 install_begin 6.12.0", "hamain-m1 install_end 6.12.0",
        "hamain-m1 start", "hamain-m2 start",
    ),
    "dr-secondary-first": log("drmain-p stop", "drmain-p install_begin 6.12.0"),
    "version-skew": log(
        *upgrade("single-main", to="6.12.0"),
        versions={"single-main": "6.10.0", "single-h1": "6.10.0", "single-h2": "6.11.0"},
    ),
}  # fmt: skip


def test_every_rule_has_a_log_that_breaks_it() -> None:
    assert sorted(BREAKS) == sorted(RULES)


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_each_breaking_log_breaks_its_rule_and_no_other(rule: str) -> None:
    assert rules(BREAKS[rule]) == [rule]
