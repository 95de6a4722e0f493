"""`rollback run` fetching the old release: with upload delivery (the operator's file, or this machine
downloading it once from the link) and with a link that no longer serves it (refused in preflight,
before anything stops)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.fleet import runs
from tests.fleet.fleet import Fleet
from tests.fleet.rollbacks import (
    UPLOAD_FILES,
    assert_back,
    local_installers,
    rollback,
    rollback_json,
    stops,
    upgrade_then_write,
)

pytestmark = pytest.mark.fleet


def test_upload_delivery_takes_the_old_release_from_its_own_file_here_checks_it_on_each_server_and_goes_back(
    fleet: Fleet, tmp_path: Path
) -> None:
    folder = local_installers(fleet, tmp_path, "6.12")
    inv = upgrade_then_write(fleet, "single", tmp_path, UPLOAD_FILES)
    names = [s.name for s in fleet.servers("single")]

    before = stops(fleet)  # no file here for 6.11: refused in preflight, with the path, nothing stopped
    refused = rollback(inv)
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert f"installer file {folder / 'demisto-6.11.sh'} does not exist" in refused.stderr
    assert stops(fleet) == before
    assert all(s.version == "6.12.0" and s.running for s in fleet.servers("single"))

    local_installers(fleet, tmp_path, "6.11")
    planned = runs.xsoar_mt(
        "rollback", "plan", "-i", str(inv), "--state-dir", str(tmp_path / "state"), cwd=tmp_path
    )
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"  6.11: upload of {folder / 'demisto-6.11.sh'} over SFTP" in planned.stdout
    sent_before = len(fleet.commands())
    result, events = rollback_json(inv)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert_back(fleet, "single", events)
    sent = [c["server"] for c in fleet.commands()[sent_before:] if c["command"] == "<sftp>"]
    assert sorted(sent) == sorted(names)  # the old installer went from here to every server
    assert not [e for e in fleet.events() if e["event"] == "download"]  # no server downloaded anything
    want = hashlib.sha256((folder / "demisto-6.11.sh").read_bytes()).hexdigest()
    for server in fleet.servers("single"):  # each server checked what arrived before making it executable
        arrived = server.home / "xsoar-mt" / "demisto-6.11.sh"
        assert (server.home / "xsoar-mt" / "demisto-6.11.sh.sha256").read_text().strip() == want
        assert arrived.read_bytes() == (folder / "demisto-6.11.sh").read_bytes()


def test_an_old_installer_corrupted_on_its_way_up_is_refused_by_its_server_before_anything_stops(
    fleet: Fleet, tmp_path: Path
) -> None:
    local_installers(fleet, tmp_path, "6.12", "6.11")
    inv = upgrade_then_write(fleet, "single", tmp_path, UPLOAD_FILES)
    fleet.server("single-h1").set_fault(corrupt_uploads=True)
    before = stops(fleet)
    result = rollback(inv)
    assert result.returncode == 6, result.stdout[-3000:] + result.stderr
    assert "single-h1" in result.stdout and "not made executable" in result.stdout
    assert stops(fleet) == before  # the installers are delivered before anything is stopped
    assert all(s.version == "6.12.0" and s.running for s in fleet.servers("single"))
    arrived = fleet.server("single-h1").home / "xsoar-mt" / "demisto-6.11.sh"
    assert arrived.exists() and not os.access(arrived, os.X_OK)


def test_an_old_release_the_link_no_longer_serves_is_refused_in_preflight_before_any_stop_then_goes_back(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    served = fleet.downloads / "demisto-6.11.sh"
    aside = tmp_path / "demisto-6.11.sh.aside"
    before = stops(fleet)
    shutil.move(served, aside)  # the vendor's link answers 404 for 6_11_latest
    try:
        refused = rollback(inv)
        planned = runs.xsoar_mt("rollback", "plan", "-i", str(inv), "--probe", "--state-dir", str(tmp_path / "state"),
                                cwd=tmp_path)  # fmt: skip
    finally:
        shutil.move(aside, served)
    assert planned.returncode == 7, planned.stdout + planned.stderr  # the probed plan makes the same check
    assert "installer on single-h1: the download link does not answer" in planned.stderr
    assert refused.returncode == 7, refused.stdout + refused.stderr
    for server in fleet.servers("single"):
        assert f"installer on {server.name}: the download link does not answer" in refused.stderr
    assert "for 6.11 (downloadName 6_11_latest)" in refused.stderr
    assert stops(fleet) == before
    assert all(s.version == "6.12.0" and s.running for s in fleet.servers("single"))
    token = fleet.spec.download_token
    assert token and token not in refused.stdout + refused.stderr + planned.stdout + planned.stderr
    assert not [c for c in fleet.commands() if token in c["command"]]  # the link went on stdin only

    result, events = rollback_json(inv)  # the control: served again, the same rollback goes back
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert_back(fleet, "single", events)
    assert token not in result.stdout + result.stderr


def test_upload_delivery_from_a_link_downloads_the_old_release_here_once_and_sends_it_to_every_server(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.download_stub import download_server, link_file

    token = "tok-" + os.urandom(8).hex()
    with download_server(fleet.downloads, token, tmp_path / "stub") as stub:
        link = link_file(stub, tmp_path, monkeypatch)
        upload = {"installer": {"delivery": "upload", "link": {"file": str(link)}}}
        inv = upgrade_then_write(fleet, "single", tmp_path, upload)
        asked_before = len(stub.requests)
        sent_before = len(fleet.commands())
        result, events = rollback_json(inv)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        asked = [(r["method"], r["download_name"]) for r in stub.requests[asked_before:]]
    assert asked == [("HEAD", "6_11_latest"), ("GET", "6_11_latest")]  # preflight asked, then one download
    assert_back(fleet, "single", events)
    sent = [c["server"] for c in fleet.commands()[sent_before:] if c["command"] == "<sftp>"]
    assert sorted(sent) == sorted(s.name for s in fleet.servers("single"))
    assert not [e for e in fleet.events() if e["event"] == "download"]  # no server downloaded anything
    cached = inv.parent / "state" / "installers" / "demisto-6_11_latest.sh"
    assert cached.read_bytes() == (fleet.downloads / "demisto-6.11.sh").read_bytes()
    produced = [p for p in (inv.parent / "state").rglob("*") if p.is_file() and p.parent != cached.parent]
    for text in [result.stdout, result.stderr, *(p.read_text(errors="replace") for p in produced)]:
        assert token not in text
    assert not [c for c in fleet.commands() if token in c["command"]]
