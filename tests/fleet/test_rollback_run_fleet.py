"""`rollback run` on real OpenSSH servers: an upgrade, data changed on the upgraded release, then the way
back. Each shape returns to its pre-upgrade release and data, every tenant answers through main, and the
order checker finds no host ahead of main at any moment. Refusals come before anything is stopped."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import runs
from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet


def rollback(inv: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return runs.xsoar_mt("rollback", "run", "-i", str(inv), "--yes", "--state-dir", str(inv.parent / "state"),
                         *args, cwd=inv.parent, timeout=timeout)  # fmt: skip


def rollback_json(inv: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    result = rollback(inv, *args, "-o", "json")
    return result, runs.events_of(result.stdout)


def tenant_dir(fleet: Fleet, server: str) -> Path:
    return fleet.server(server).home / "var" / "lib" / "demisto" / "tenants"


def upgrade_then_write(fleet: Fleet, deployment: str, tmp_path: Path, overrides: dict[str, Any] | None = None
                       ) -> Path:  # fmt: skip
    """The deployment upgraded 6.11 -> 6.12 by `upgrade run`, then a file written on every upgraded server
    (what rollback must take away)."""
    inv = fleet.inventory(deployment, tmp_path / "inventory.yaml")
    if overrides:
        import yaml

        from tests.fleet.inventory import merge

        inv.write_text(yaml.safe_dump(merge(yaml.safe_load(inv.read_text()), overrides), sort_keys=False))
    upgraded = runs.run(inv, "--to", "6.12")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    for server in fleet.servers(deployment):
        assert server.version.startswith("6.12"), server.name
        written = server.home / "var" / "lib" / "demisto" / "written-after-the-upgrade"
        written.write_text("lost on the way back\n")
    return inv


def assert_back(fleet: Fleet, deployment: str, events: list[dict[str, Any]]) -> None:
    for server in fleet.servers(deployment):
        assert server.version.startswith("6.11"), (server.name, server.version)
        assert server.running, server.name
        assert not (server.home / "var" / "lib" / "demisto" / "written-after-the-upgrade").exists(), (
            server.name
        )
    validated = {
        e["step"].split("/")[1]: e["data"]["outcome"]
        for e in events
        if e["kind"] == "step-finished" and e.get("step", "").startswith("validate/")
    }
    assert validated.get("tenants") == "ok"  # every tenant answered through main
    assert (validated.get("load-balancer") or validated.get("main")) == "ok"  # main's own health
    assert runs.order_violations(fleet) == []


ES_REPOSITORY = {"deployment": {"elasticsearch_snapshot_repository": "backups"}}


def es(fleet: Fleet, method: str, path: str, body: Any = None) -> Any:
    from xsoar_mt.snapshots import request

    return request(fleet.elasticsearch_url, method, path, None, body)


@pytest.mark.parametrize("deployment", ["single", "hahosts", "drhosts"])
def test_an_upgrade_is_rolled_back_to_its_release_and_data_with_no_host_ever_ahead_of_main(
    fleet: Fleet, tmp_path: Path, deployment: str
) -> None:
    elastic = fleet.spec.deployment(deployment).database == "elasticsearch"
    index = f"incidents-{deployment}-{tmp_path.name.lower().replace('_', '-')}"[:100]
    if elastic:
        es(fleet, "PUT", f"/{index}/_doc/before", {"written": "before the upgrade"})
    inv = upgrade_then_write(fleet, deployment, tmp_path, ES_REPOSITORY if elastic else None)
    if elastic:
        es(fleet, "PUT", f"/{index}/_doc/after", {"written": "after the upgrade"})
        assert es(fleet, "GET", f"/{index}/_count")["count"] == 2
    result, events = rollback_json(inv)
    if elastic:  # the snapshot the upgrade took before its first stop is back: the later document is gone
        assert es(fleet, "GET", f"/{index}/_count")["count"] == 1
        assert any(e["kind"] == "snapshot-restored" for e in events)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert_back(fleet, deployment, events)
    purged = [e["server"] for e in fleet.events() if e["event"] == "purge"]
    assert sorted(purged) == sorted(s.name for s in fleet.servers(deployment))


def stops(fleet: Fleet) -> int:
    return sum(1 for e in fleet.events() if e["event"] in ("stop", "purge", "install_begin"))


def test_one_group_whose_upgrade_failed_goes_back_alone_while_main_stays_on_the_target(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    fleet.server("single-h2").set_fault(installer_fails=True)
    failed = runs.run(inv, "--to", "6.12")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    fleet.server("single-h2").clear_faults()
    written = tenant_dir(fleet, "single-h2") / "written-after-the-failed-upgrade"
    written.write_text("lost on the way back\n")

    result, events = rollback_json(inv, "--group", "h2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    h2 = fleet.server("single-h2")
    assert (h2.version, h2.running) == ("6.11.0", True)
    assert not written.exists()
    assert runs.versions(fleet, "single")["single-main"] == "6.12.0"  # main stays on the target
    assert runs.versions(fleet, "single")["single-h1"] == "6.12.0"
    started = {s for e in events if e["kind"] == "step-started" for s in e.get("servers", ())}
    assert started == {"single-h2", "single-main"}  # h2's way back, then validation through main
    assert runs.order_violations(fleet) == []
    as_upgrade = runs.run(inv, "--resume", "latest")  # the latest run is the rollback: not an upgrade's
    assert as_upgrade.returncode == 3, as_upgrade.stdout + as_upgrade.stderr
    assert "is a rollback" in as_upgrade.stderr


def test_a_server_without_a_recorded_backup_is_refused_with_exit_7_before_anything_stops(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    for server in fleet.servers("single"):  # upgraded by hand: xsoar-mt took no backup
        server.set_version("6.12.0")
    before = stops(fleet)
    result = rollback(inv)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "no backup recorded" in result.stderr
    assert stops(fleet) == before


def test_a_backup_changed_since_the_upgrade_is_refused_with_exit_7_before_anything_stops(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    (archive,) = (fleet.server("single-h1").home / "xsoar-mt" / "backup").glob("*.tar.gz")
    with archive.open("ab") as tampered:
        tampered.write(b"x")
    before = stops(fleet)
    result = rollback(inv)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "single-h1" in result.stderr and "has changed since it was taken" in result.stderr
    assert stops(fleet) == before
    assert all(s.version == "6.12.0" and s.running for s in fleet.servers("single"))


def test_a_rollback_of_main_alone_that_would_leave_hosts_ahead_of_main_is_refused_with_exit_4(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    before = stops(fleet)
    result = rollback(inv, "--only", "main")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "ahead" in result.stderr
    assert stops(fleet) == before


def test_elasticsearch_without_a_snapshot_repository_is_refused_with_exit_4_unless_release_only(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "hahosts", tmp_path)
    before = stops(fleet)
    result = rollback(inv)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "snapshot repository" in result.stderr and "--release-only" in result.stderr
    assert stops(fleet) == before


def test_a_saved_rollback_plan_is_refused_by_upgrade_run_and_when_edited_by_rollback_run(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    saved = tmp_path / "rollback.json"
    made = runs.xsoar_mt("rollback", "plan", "-i", str(inv), "--probe", "--out", str(saved),
                         "--state-dir", str(tmp_path / "state"), cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    as_upgrade = runs.run(inv, "--plan", str(saved))
    assert as_upgrade.returncode == 2, as_upgrade.stdout + as_upgrade.stderr
    assert "rollback plan" in as_upgrade.stderr
    data = json.loads(saved.read_text())
    data["phases"][1]["steps"][0]["command"] += " ; true"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    before = stops(fleet)
    refused = rollback(inv, "--plan", str(edited))
    assert refused.returncode == 8, refused.stdout + refused.stderr
    assert stops(fleet) == before
    dry = runs.xsoar_mt("rollback", "run", "-i", str(inv), "--dry-run", "--plan", str(saved), "-o", "json",
                        "--state-dir", str(tmp_path / "state"), cwd=tmp_path)  # fmt: skip
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr
    would = [e["message"] for e in runs.events_of(dry.stdout) if e["kind"] == "would-run"]
    assert any("-purge" in m for m in would) and any("want=" in m for m in would)
    assert stops(fleet) == before  # a dry run changes nothing
    ran = rollback(inv, "--plan", str(saved))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr
    assert all(s.version == "6.11.0" for s in fleet.servers("single"))


def test_the_backup_record_beside_the_marker_serves_a_machine_without_the_local_record_and_is_read_strictly(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = upgrade_then_write(fleet, "single", tmp_path)
    elsewhere = tmp_path / "elsewhere"  # another operator's machine: no local record of the backups
    record = fleet.server("single-h1").home / "xsoar-mt" / "backup-record.json"
    kept = json.loads(record.read_text())
    assert kept["release"] == "6.11" and kept["run_id"] and len(kept["sha256"]) == 64
    record.write_text(json.dumps({**kept, "restore_as": "root"}) + "\n")  # a field xsoar-mt never writes
    before = stops(fleet)
    refused = runs.xsoar_mt(
        "rollback", "run", "-i", str(inv), "--yes", "--state-dir", str(elsewhere), cwd=tmp_path
    )
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert "single-h1" in refused.stderr and "a field xsoar-mt does not write" in refused.stderr
    assert stops(fleet) == before
    record.write_text(json.dumps(kept) + "\n")
    ran = runs.xsoar_mt(
        "rollback", "run", "-i", str(inv), "--yes", "--state-dir", str(elsewhere), cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr
    assert all(s.version == "6.11.0" and s.running for s in fleet.servers("single"))


def local_installers(fleet: Fleet, tmp_path: Path, *releases: str) -> Path:
    """The operator's installer files for upload delivery, `installers/demisto-<release>.sh` beside the
    inventory, copied from the vendor's."""
    folder = tmp_path / "installers"
    folder.mkdir(exist_ok=True)
    for release in releases:
        shutil.copy(fleet.downloads / f"demisto-{release}.sh", folder / f"demisto-{release}.sh")
    return folder


UPLOAD_FILES = {"installer": {"delivery": "upload", "file": "installers/demisto-{release}.sh", "link": None}}


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


def phase_spans(state_dir: Path) -> dict[str, tuple[int, int]]:
    """Each phase of the latest run: the positions in its journal of its first step-started and its last
    step-finished record (the journal is appended in the order things happen)."""
    from tests.recap_check import latest_run_dir

    run_dir = latest_run_dir(state_dir)
    assert run_dir is not None
    records = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    spans: dict[str, tuple[int, int]] = {}
    for at, record in enumerate(records):
        if record.get("kind") not in ("step-started", "step-finished"):
            continue
        phase = str(record["step"]).split("/")[0]
        first, _ = spans.get(phase, (at, at))
        spans[phase] = (first, at)
    return spans


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
