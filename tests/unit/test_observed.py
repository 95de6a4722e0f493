"""The one resolver of what each server runs: sources by strength, disagreements, unknown as a state."""

from __future__ import annotations

import base64

import pytest

from tests.inventories import GroupSpec, build
from xsoar_mt.errors import InvalidInput
from xsoar_mt.inventory import Inventory
from xsoar_mt.known import KnownState, deployment_key
from xsoar_mt.observed import Installer, Known, Marker, Reading, Service, Source, resolve, resolve_server
from xsoar_mt.probe import parse_facts, parse_version
from xsoar_mt.releases import Version

V = Version.parse


def inventory() -> Inventory:
    return build("bolt", GroupSpec("main", "single", ("6.11",)), [GroupSpec("a", "single", ("6.10",))])


def reading(**fields: object) -> Reading:
    return Reading("a-0", 1000.0, sudo_ok=True, **fields)  # type: ignore[arg-type]  # test data


def test_the_running_service_wins_over_every_other_source_and_the_difference_is_said() -> None:
    view = resolve_server(
        "a-0",
        reading(status_code=0, api_version=V("6.11.0"), marker=Marker(V("6.10.0"), 900.0)),
        Known(V("6.10.0"), Source.API, 800.0),
        V("6.10.0"),
    )
    assert (view.version, view.source, view.service) == (V("6.11.0"), Source.API, Service.RUNNING)
    assert "inventory says 6.10.0, a-0 reports 6.11.0" in view.notes
    assert "marker says 6.10.0, a-0 reports 6.11.0" in view.notes


def test_a_stopped_server_is_known_from_its_marker_before_the_local_record_and_the_inventory() -> None:
    view = resolve_server("a-0", reading(status_code=3, marker=Marker(V("6.11"), 900.0)), None, V("6.10.0"))
    assert (view.version, view.source, view.service) == (V("6.11"), Source.MARKER, Service.STOPPED)
    assert view.notes == ("inventory says 6.10.0, a-0 has a marker for 6.11.0",)


def test_without_a_marker_the_local_record_then_the_inventory_tell_the_version() -> None:
    assert resolve_server(
        "a-0", reading(status_code=3), Known(V("6.11.0"), Source.API, 5.0), V("6.10.0")
    ).source is (Source.STATE)
    assert resolve_server("a-0", reading(status_code=3), None, V("6.10.0")).source is Source.INVENTORY


def test_a_version_the_local_record_kept_from_the_inventory_yields_to_the_inventory_as_corrected() -> None:
    view = resolve_server(
        "a-0", reading(status_code=3), Known(V("6.10.0"), Source.INVENTORY, 5.0), V("6.11.0")
    )
    assert (view.version, view.source) == (V("6.11.0"), Source.INVENTORY)
    assert view.notes == ()


def test_nothing_recording_a_stopped_servers_version_leaves_it_unknown() -> None:
    view = resolve_server("a-0", reading(status_code=3), None, None)
    assert view.version is None and view.planning_version is None


def test_a_failed_installer_makes_the_older_sources_stale_the_version_is_unknown_with_its_reason() -> None:
    failed = Installer("6.11", 42, 1, False, False, started=1000.0, finished=1100.0)
    view = resolve_server(
        "a-0",
        reading(status_code=3, marker=Marker(V("6.10.0"), 900.0), installers=(failed,)),
        None,
        V("6.10.0"),
    )
    assert view.version is None
    assert view.unknown is not None and view.unknown.startswith("installer for 6.11 exited 1 at ")
    assert view.basis == V("6.10.0")  # planned from it: the same install runs again
    assert view.describe_version().startswith("unknown (installer for 6.11 exited 1")


def test_the_running_service_settles_a_failed_install() -> None:
    failed = Installer("6.11", 42, 1, False, False, started=1000.0, finished=1100.0)
    view = resolve_server(
        "a-0", reading(status_code=0, api_version=V("6.11.0"), installers=(failed,)), None, None
    )
    assert (view.version, view.source) == (V("6.11.0"), Source.API)


def test_an_installer_that_exited_0_after_the_marker_was_written_tells_the_version() -> None:
    done = Installer("6.11", 42, 0, False, False, started=1000.0, finished=1100.0)
    view = resolve_server(
        "a-0", reading(status_code=3, marker=Marker(V("6.10.0"), 900.0), installers=(done,)), None, None
    )
    assert (view.version, view.source) == (V("6.11"), Source.MARKER)


def test_an_installer_still_running_is_in_flight_and_planned_from_the_version_before_it() -> None:
    running = Installer("6.11", 42, None, True, False, started=1000.0)
    view = resolve_server(
        "a-0", reading(status_code=3, installers=(running,)), Known(V("6.10.0"), Source.API, 5.0), None
    )
    assert view.in_flight == "6.11" and view.version is None
    assert view.planning_version == V("6.10.0")
    assert view.unknown is not None and "running (pid 42" in view.unknown


def test_an_installer_that_vanished_after_a_restart_says_so() -> None:
    gone = Installer("6.11", 42, None, False, True, started=1000.0)
    view = resolve_server("a-0", reading(status_code=3, installers=(gone,)), None, V("6.10.0"))
    assert view.unknown is not None and "the server restarted since" in view.unknown
    assert view.in_flight is None and view.basis == V("6.10.0")


def test_the_deployment_is_judged_only_when_every_version_is_known() -> None:
    inv = inventory()
    answered = {
        "main-0": Reading("main-0", 1.0, status_code=0, api_version=V("6.11.0")),
        "a-0": Reading("a-0", 1.0, status_code=0, api_version=V("6.10.0")),
    }
    judged = resolve(inv, answered, {}).judge(inv)
    assert judged is not None and judged.verdict.value == "degraded"
    failed = Installer("6.11", 42, 1, False, False, started=0.5, finished=0.9)
    unknown = {**answered, "a-0": Reading("a-0", 1.0, status_code=3, installers=(failed,))}
    assert resolve(inv, unknown, {}).judge(inv) is None


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_server_clock_times_are_moved_onto_this_machines_clock() -> None:
    marker_json = (
        '{"at": 900, "how": "api", "release": "6.10", "run_id": null, "server": "a-0", "version": "6.10.0"}'
    )
    stdout = (
        f"__xsoar_mt_sudo=0\n__xsoar_mt_status=3\n__xsoar_mt_now=1000\n__xsoar_mt_boot={b64('b2')}\n"
        f"__xsoar_mt_marker={b64(marker_json)}\n"
        f"__xsoar_mt_installer={b64('6.11')} {b64('42')} 0 {b64('1')} {b64('b1')} 950 960\n"
        f"__xsoar_mt_installer={b64('6.12')} {b64('43')} 1 - {b64('b2')} 970 -\n"
    )
    marker, installers = parse_facts(stdout, local_now=5000.0)
    assert marker is not None and marker.at == 4900.0 and marker.version == V("6.10.0")
    first, second = installers
    assert (first.release, first.exit_code, first.finished, first.rebooted, first.alive) == (
        "6.11",
        1,
        4960.0,
        True,
        False,
    )
    assert (second.release, second.exit_code, second.alive, second.in_flight) == ("6.12", None, True, True)


def test_only_demisto_version_json_or_a_bare_version_is_a_version() -> None:
    assert parse_version('{"demistoVersion": "6.11.0", "buildNumber": "1"}') == V("6.11.0")
    assert parse_version("6.10.0 (B187344)\n") == V("6.10.0 (B187344)")
    for text in ("<html>nginx/1.18.0</html>", '{"error": "6.11"}', "server 6.11.0 starting"):
        with pytest.raises(InvalidInput, match="demistoVersion"):
            parse_version(text)


def test_the_local_record_survives_a_new_process_and_names_the_deployment_by_its_main(
    tmp_path: object,
) -> None:
    from pathlib import Path

    inv = inventory()
    state = KnownState(Path(str(tmp_path)), inv)
    observed = resolve(inv, {"a-0": Reading("a-0", 7.0, status_code=0, api_version=V("6.11.0"))}, {})
    state.record(observed.views.values(), run_id="r1")
    state.record_backup(["a-0"], "6.12")
    again = KnownState(Path(str(tmp_path)), inv)
    assert again.servers()["a-0"].version == V("6.11.0") and again.servers()["a-0"].source is Source.API
    assert again.backups() == {"a-0": ["6.12"]}
    assert again.path.stat().st_mode & 0o777 == 0o600
    assert deployment_key(inv).startswith(f"{inv.name}-")
