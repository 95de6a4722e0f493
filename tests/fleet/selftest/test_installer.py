"""Tests of the installer stand-in: refusals, the version it carries, starting the service, events."""

from __future__ import annotations

from subprocess import CompletedProcess

import pytest

from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet

FETCH = "mkdir -p xsoar-mt && wget -q -O xsoar-mt/demisto.sh -i - && chmod +x xsoar-mt/demisto.sh"
STOP = "sudo service demisto stop"


def fetch_and_run(fleet: Fleet, server: str, then: str, link: str = "6_12_latest") -> CompletedProcess[str]:
    """Download the installer behind `link` on `server` as xsoar-mt does (the link on stdin), then run `then`."""
    return fleet.ssh(server, f"{FETCH} && {then}", input=fleet.download_link(link) + "\n")


def events_of(fleet: Fleet, server: str) -> list[str]:
    return [e["event"] for e in fleet.events() if e["server"] == server and e["event"] != "baseline"]


def test_the_installer_refuses_while_the_service_runs(fleet: Fleet) -> None:
    result = fetch_and_run(fleet, "single-h1", "sudo ./xsoar-mt/demisto.sh -- -multi-tenant")
    assert result.returncode == 1
    assert "running; stop it first" in result.stderr
    assert fleet.server("single-h1").version == "6.11.0"
    refused = [e for e in fleet.events() if e["event"] == "install_refused"]
    assert [(e["server"], e["reason"]) for e in refused] == [("single-h1", "running")]


def test_the_installer_refuses_without_multi_tenant(fleet: Fleet) -> None:
    result = fetch_and_run(fleet, "single-h1", f"{STOP} && sudo ./xsoar-mt/demisto.sh")
    assert result.returncode == 1
    assert "-multi-tenant" in result.stderr
    assert fleet.server("single-h1").version == "6.11.0"


def test_the_installer_installs_its_own_version_and_starts_the_service(fleet: Fleet) -> None:
    result = fetch_and_run(fleet, "single-h2", f"{STOP} && sudo ./xsoar-mt/demisto.sh -- -multi-tenant")
    assert result.returncode == 0, result.stderr
    assert "6.12.0 installed successfully" in result.stdout
    server = fleet.server("single-h2")
    assert (server.version, server.running) == ("6.12.0", True)
    assert events_of(fleet, "single-h2") == ["download", "stop", "install_begin", "install_end", "start"]
    begin = next(e for e in fleet.events() if e["event"] == "install_begin")
    assert (begin["version_before"], begin["version_after"]) == ("6.11.0", "6.12.0")


def test_do_not_start_server_leaves_the_service_stopped(fleet: Fleet) -> None:
    result = fetch_and_run(
        fleet, "single-h2", f"{STOP} && sudo ./xsoar-mt/demisto.sh -- -multi-tenant -do-not-start-server"
    )
    assert result.returncode == 0, result.stderr
    server = fleet.server("single-h2")
    assert (server.version, server.running) == ("6.12.0", False)


def test_a_wrong_installer_installs_the_version_inside_it_not_the_one_asked_for(fleet: Fleet) -> None:
    fleet.add_installer("6.12", installs="6.13.0", build="999")
    result = fetch_and_run(
        fleet, "single-h2", f"{STOP} && sudo ./xsoar-mt/demisto.sh -- -multi-tenant", link="6_12_999"
    )
    assert result.returncode == 0, result.stderr
    assert fleet.server("single-h2").version == "6.13.0 (B999)"
