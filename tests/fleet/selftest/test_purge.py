"""The installer stand-in on the way back, as the vendor's installer behaves: it refuses to install an
older release over a newer one, and `-- -purge` removes the installed release (and the data, except a
mounted data directory, which only `-purge-mount` removes) so an older release then installs cleanly."""

from __future__ import annotations

from subprocess import CompletedProcess

import pytest

from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet

FETCH = "mkdir -p xsoar-mt && wget -q -O xsoar-mt/demisto.sh -i - && chmod +x xsoar-mt/demisto.sh"
STOP = "sudo service demisto stop"
INSTALL = "sudo ./xsoar-mt/demisto.sh -- -multi-tenant -do-not-start-server"


def old_installer(fleet: Fleet, server: str, then: str) -> CompletedProcess[str]:
    """Fetch the 6.11 installer onto `server` (the link on stdin, as xsoar-mt does), then run `then`."""
    return fleet.ssh(server, f"{FETCH} && {then}", input=fleet.download_link("6_11_latest") + "\n")


def test_the_installer_refuses_to_install_an_older_release_over_a_newer_one(fleet: Fleet) -> None:
    fleet.server("single-h2").set_version("6.12.0")
    result = old_installer(fleet, "single-h2", f"{STOP} && {INSTALL}")
    assert result.returncode == 1
    assert "Cortex XSOAR 6.12.0 is installed, newer than 6.11.0: downgrade is not supported" in result.stderr
    assert fleet.server("single-h2").version == "6.12.0"
    refused = [e for e in fleet.events() if e["event"] == "install_refused"]
    assert [(e["server"], e["reason"]) for e in refused] == [("single-h2", "downgrade")]


def test_the_same_release_installs_again_over_itself(fleet: Fleet) -> None:
    result = old_installer(fleet, "single-h2", f"{STOP} && {INSTALL}")  # the spec's servers run 6.11.0
    assert result.returncode == 0, result.stderr
    assert fleet.server("single-h2").version == "6.11.0"


def test_purge_removes_the_release_and_the_data_and_then_the_older_release_installs(fleet: Fleet) -> None:
    server = fleet.server("single-h2")
    server.set_version("6.12.0")
    data = server.home / "var" / "lib" / "demisto"
    assert (data / "tenants" / "acc_gamma").is_dir()
    purged = old_installer(fleet, "single-h2", f"{STOP} && {INSTALL} -purge")
    assert purged.returncode == 0, purged.stderr
    assert server.version == "" and not server.running
    assert not data.exists() and not (server.home / "etc" / "demisto.conf").exists()
    start = fleet.ssh("single-h2", "sudo service demisto start")
    assert start.returncode == 1 and "not installed" in start.stderr
    installed = fleet.ssh("single-h2", INSTALL)
    assert installed.returncode == 0, installed.stderr
    assert server.version == "6.11.0"
    events = [e["event"] for e in fleet.events() if e["server"] == "single-h2" and e["event"] != "baseline"]
    assert events == ["download", "stop", "purge", "start_failed", "install_begin", "install_end"]


def test_purge_refuses_while_the_service_runs(fleet: Fleet) -> None:
    fleet.server("single-h2").set_version("6.12.0")
    result = old_installer(fleet, "single-h2", f"{INSTALL} -purge")
    assert result.returncode == 1 and "running; stop it first" in result.stderr
    assert fleet.server("single-h2").version == "6.12.0"


def test_purge_keeps_a_mounted_data_directory_unless_purge_mount_is_given(fleet: Fleet) -> None:
    kept, removed = fleet.server("hahosts-g1a"), fleet.server("hahosts-g1b")
    for server in (kept, removed):
        server.set_version("6.12.0")
    assert old_installer(fleet, kept.name, f"{STOP} && {INSTALL} -purge").returncode == 0
    assert old_installer(fleet, removed.name, f"{STOP} && {INSTALL} -purge -purge-mount").returncode == 0
    assert (kept.home / "var" / "lib" / "demisto" / "tenants" / "acc_acme").is_dir()
    assert not (removed.home / "var" / "lib" / "demisto").exists()
    assert kept.version == removed.version == ""


def test_purge_mount_alone_is_refused(fleet: Fleet) -> None:
    result = old_installer(fleet, "single-h2", f"{STOP} && {INSTALL} -purge-mount")
    assert result.returncode == 1 and "-purge-mount must come with -purge" in result.stderr
    assert fleet.server("single-h2").version == "6.11.0"
