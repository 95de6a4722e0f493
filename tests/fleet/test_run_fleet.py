"""`xsoar-mt upgrade run` end to end against the fleet of real OpenSSH servers, as an operator runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.download_stub import download_server, link_file
from tests.fleet.fleet import Fleet
from tests.fleet.runs import (
    events_of,
    installs,
    interrupt_when,
    journal,
    nothing_changed,
    order_violations,
    run,
    run_json,
    start_run,
    versions,
)
from tests.operator_shell import xsoar_mt

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]


def inventory(fleet: Fleet, deployment: str, tmp_path: Path, **overrides: Any) -> Path:
    return fleet.inventory(deployment, tmp_path / "inventory.yaml", **overrides)


@pytest.fixture(autouse=True)
def installers(fleet: Fleet) -> None:
    for release in ("6.10", "6.11", "6.12"):
        fleet.add_installer(release)


@pytest.mark.parametrize("deployment", ["single", "hamain", "drmain", "hahosts", "drhosts", "mixed"])
def test_every_topology_upgrades_in_vendor_order_to_the_target(
    fleet: Fleet, tmp_path: Path, deployment: str
) -> None:
    inv = inventory(fleet, deployment, tmp_path)
    # The mixed deployment's two host groups go side by side: the order checker still sees vendor order.
    parallel = ["--parallel", "2"] if deployment == "mixed" else []
    result = run(inv, "--to", "6.12", *parallel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(versions(fleet, deployment).values()) == {"6.12.0"}
    assert all(s.running for s in fleet.servers(deployment))
    assert order_violations(fleet) == []


def test_two_hop_upgrade_alternates_main_and_hosts_and_is_never_unsupported(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.reset(versions={s.name: "6.10.0" for s in fleet.servers("drmain")})
    inv = inventory(fleet, "drmain", tmp_path)
    result = run(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installs(fleet) == [
        ("drmain-s", "6.11.0"), ("drmain-p", "6.11.0"), ("drmain-h1", "6.11.0"),
        ("drmain-s", "6.12.0"), ("drmain-p", "6.12.0"), ("drmain-h1", "6.12.0"),
    ]  # fmt: skip
    assert order_violations(fleet) == []


def test_failed_install_stops_the_run_with_a_true_recap_and_resume_finishes(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h1").set_fault(installer_fails=True)
    inv = inventory(fleet, "single", tmp_path)
    failed = run(inv, "--to", "6.12")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    assert "single-h1" in failed.stdout and "STOPPED" in failed.stdout
    assert "--resume" in failed.stdout
    assert fleet.server("single-main").version == "6.12.0"
    assert fleet.server("single-h1").running is False
    assert fleet.server("single-h2").version == "6.11.0"  # nothing new was started after the failure
    assert "single-h2" not in [s for s, _ in installs(fleet)]

    fleet.server("single-h1").clear_faults()
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert [s for s, _ in installs(fleet)].count("single-main") == 1  # never re-installed
    assert order_violations(fleet) == []


def test_ssh_dropped_mid_install_the_install_completes_and_the_run_carries_on(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h1").set_fault(ssh_drop_seconds=2)
    inv = inventory(fleet, "single", tmp_path)
    result = run(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reconnected" in result.stdout
    assert any(e["event"] == "ssh_drop" for e in fleet.events())
    assert [s for s, _ in installs(fleet)].count("single-h1") == 1
    assert set(versions(fleet, "single").values()) == {"6.12.0"}


def test_changed_host_key_is_refused_before_any_change(fleet: Fleet, tmp_path: Path) -> None:
    fleet.server("single-h2").set_fault(host_key_changed=True)
    inv = inventory(fleet, "single", tmp_path)
    result = run(inv, "--to", "6.12")
    assert result.returncode == 7, result.stdout + result.stderr
    assert "host key changed" in result.stderr
    assert nothing_changed(fleet)


def test_changed_host_key_is_refused_even_with_accept_new_host_keys(fleet: Fleet, tmp_path: Path) -> None:
    fleet.server("single-h2").set_fault(host_key_changed=True)
    inv = inventory(fleet, "single", tmp_path)
    result = run(inv, "--to", "6.12", "--accept-new-host-keys")
    assert result.returncode == 7
    assert "host key changed" in result.stderr


def test_unknown_host_key_is_refused_by_default_and_accepted_only_when_asked(
    fleet: Fleet, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    inv = inventory(fleet, "single", tmp_path, ssh={"known_hosts": str(known), "config_file": None})
    refused = run(inv, "--to", "6.12", "--dry-run", "--probe")
    assert refused.returncode == 7
    assert "unknown host key" in refused.stderr
    accepted = run(inv, "--to", "6.12", "--dry-run", "--probe", "--accept-new-host-keys")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert len(known.read_text().splitlines()) == 3


def test_wrong_sudo_password_is_refused_before_any_change(fleet: Fleet, tmp_path: Path) -> None:
    fleet.server("single-main").set_fault(wrong_sudo_password=True)
    inv = inventory(fleet, "single", tmp_path)
    result = run(inv, "--to", "6.12")
    assert result.returncode == 7, result.stdout + result.stderr
    assert "sudo rejected the password" in result.stderr
    assert nothing_changed(fleet)


def health_answers(fleet: Fleet, server: str) -> list[tuple[int, int]]:
    """(event number, status) of each /health answer the server gave since its service last started."""
    events = [e for e in fleet.events() if e["server"] == server]
    starts = [i for i, e in enumerate(events) if e["event"] == "start"]
    since = events[starts[-1] :] if starts else events
    return [(e["seq"], e["status"]) for e in since if e["event"] == "health"]


def test_a_service_that_never_turns_healthy_fails_the_run_at_the_health_gate(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h1").set_fault(health_503_seconds=10**6)  # it starts, but /health stays 503
    inv = inventory(fleet, "single", tmp_path, health={"timeout": 3, "interval": 0.2, "max_interval": 0.5})
    result = run(inv, "--to", "6.12")
    assert result.returncode == 6, result.stdout + result.stderr
    assert fleet.server("single-h1").running and fleet.server("single-h1").version == "6.12.0"
    (failed,) = [r for r in journal(inv) if r["kind"] == "step-finished" and r["data"]["outcome"] != "ok"]
    assert failed["step"].endswith("/wait-healthy/single-h1"), failed  # the install and start went through
    answers = [status for _, status in health_answers(fleet, "single-h1")]
    assert len(answers) >= 3 and set(answers) == {503}  # asked again and again until its timeout
    assert "single-h1" in result.stdout
    assert "single-h2" not in [s for s, _ in installs(fleet)]


def test_health_gate_waits_out_a_slow_start(fleet: Fleet, tmp_path: Path) -> None:
    fleet.server("single-main").set_fault(health_503_seconds=3)
    inv = inventory(fleet, "single", tmp_path, health={"interval": 0.2, "max_interval": 0.5})
    result = run(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    answers = health_answers(fleet, "single-main")
    statuses = [status for _, status in answers]
    assert statuses[0] == 503 and statuses[-1] == 200, statuses  # the gate asked while main was starting
    first_ok = next(seq for seq, status in answers if status == 200)
    hosts_began = [
        e["seq"] for e in fleet.events() if e["event"] == "install_begin" and e["server"] != "single-main"
    ]
    assert hosts_began and min(hosts_began) > first_ok  # and the hosts waited for main's 200


def test_stale_saved_plan_is_refused_with_the_difference_named(fleet: Fleet, tmp_path: Path) -> None:
    inv = inventory(fleet, "single", tmp_path)
    plan = tmp_path / "plan.json"
    made = xsoar_mt(
        "upgrade", "plan", "-i", str(inv), "--to", "6.12", "--probe", "--out", str(plan), cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    fleet.server("single-h2").set_version("6.10.0")  # someone rolled it back by hand since the plan was made
    result = run(inv, "--plan", str(plan))
    assert result.returncode == 8, result.stdout + result.stderr
    assert "single-h2: planned from 6.11.0, now 6.10.0" in result.stderr
    assert nothing_changed(fleet)


def test_interrupt_stops_cleanly_and_resume_completes(fleet: Fleet, tmp_path: Path) -> None:
    inv = inventory(fleet, "single", tmp_path)
    process = start_run(inv, "--to", "6.12")
    out, err = interrupt_when(process, lambda: bool(installs(fleet)))
    assert process.returncode == 130, out + err
    (finished,) = [e for e in events_of(out) if e["kind"] == "run-finished"]
    assert finished["data"]["outcome"] == "interrupted"
    assert fleet.server("single-main").version == "6.12.0"  # the install under way was followed to its end
    assert "single-h1" not in [s for s, _ in installs(fleet)]

    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert order_violations(fleet) == []


def test_journal_records_every_step_and_is_private(fleet: Fleet, tmp_path: Path) -> None:
    inv = inventory(fleet, "single", tmp_path)
    assert run(inv, "--to", "6.12").returncode == 0
    (run_dir,) = (tmp_path / "state" / "runs").iterdir()
    assert (run_dir / "journal.jsonl").stat().st_mode & 0o777 == 0o600
    records = journal(inv)
    started = [r["step"] for r in records if r["kind"] == "step-started"]
    finished = [r["step"] for r in records if r["kind"] == "step-finished" and r["data"]["outcome"] == "ok"]
    assert started and sorted(started) == sorted(finished)
    assert records[-1]["kind"] == "run-finished"
    assert (run_dir / "logs" / "single-h1.log").exists()


def test_one_ssh_connection_per_server_for_the_whole_run(fleet: Fleet, tmp_path: Path) -> None:
    inv = inventory(fleet, "single", tmp_path)
    result, events = run_json(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    (stats,) = [e["data"] for e in events if e["kind"] == "ssh-stats"]
    assert set(stats) == {"single-main", "single-h1", "single-h2"}
    assert all(s["connections"] == 1 for s in stats.values()), stats
    assert all(s["commands"] == len(fleet.commands(name)) for name, s in stats.items())


def test_a_failing_preflight_check_stops_the_run_before_any_change_unless_ignored(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h2").set_fault(low_disk=True)
    inv = inventory(fleet, "single", tmp_path)
    refused = run(inv, "--to", "6.12")
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert "disk" in refused.stderr and "single-h2" in refused.stderr
    assert nothing_changed(fleet)
    mandatory = run(inv, "--to", "6.12", "--ignore-preflight-errors=sudo")
    assert mandatory.returncode == 2, mandatory.stdout + mandatory.stderr
    ignored = run(inv, "--to", "6.12", "--ignore-preflight-errors=disk")
    assert "preflight disk on single-h2" in ignored.stdout
    assert [s for s, _ in installs(fleet)][:2] == ["single-main", "single-h1"]


def test_servers_are_reached_through_a_bastion_whose_host_key_is_checked(
    fleet: Fleet, tmp_path: Path
) -> None:
    jump = fleet.server("drmain-h1")  # another deployment's server stands in for the bastion
    bastion = {"host": jump.address, "port": jump.ssh_port}
    inv = inventory(fleet, "single", tmp_path, ssh={"bastion": bastion, "config_file": None})
    result = run(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert not fleet.commands("drmain-h1")  # the bastion only forwarded: it ran no command

    unknown = tmp_path / "known_hosts_without_bastion"
    unknown.write_text(
        "".join(line for line in fleet.known_hosts.read_text().splitlines(True) if jump.address not in line)
    )
    inv = inventory(fleet, "single", tmp_path, ssh={"bastion": bastion, "config_file": None,
                                                   "known_hosts": str(unknown)})  # fmt: skip
    refused = run(inv, "--to", "6.12")
    assert refused.returncode == 7
    assert "unknown host key" in refused.stderr


def test_proxyjump_hops_from_the_ssh_config_have_their_host_keys_checked(
    fleet: Fleet, tmp_path: Path
) -> None:
    jump = fleet.server("drmain-h1")  # another deployment's server stands in for the jump host
    addresses = " ".join(s.address for s in fleet.servers("single"))
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host {addresses}\n    ProxyJump {fleet.user}@{jump.address}:{jump.ssh_port}\n"
        f"Host *\n    IdentityFile {fleet.identity_file}\n"
    )
    inv = inventory(fleet, "single", tmp_path, ssh={"config_file": str(config)})
    result = run(inv, "--to", "6.12", "--dry-run", "--probe")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "single-h1: 6.11.0" in result.stdout
    assert not fleet.commands("drmain-h1")  # the jump host only forwarded: it ran no command

    unknown = tmp_path / "known_hosts_without_jump"
    unknown.write_text(
        "".join(line for line in fleet.known_hosts.read_text().splitlines(True) if jump.address not in line)
    )
    inv = inventory(fleet, "single", tmp_path, ssh={"config_file": str(config), "known_hosts": str(unknown)})
    refused = run(inv, "--to", "6.12")
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert "unknown host key" in refused.stderr
    assert nothing_changed(fleet)


def upload_inventory(fleet: Fleet, tmp_path: Path, **installer: Any) -> tuple[Path, Path]:
    """An inventory for upload delivery of the operator's own file (6.12, copied next to it): (inventory,
    that file)."""
    local = tmp_path / "installers" / "demisto-6.12.sh"
    local.parent.mkdir()
    shutil.copy(fleet.downloads / "demisto-6.12.sh", local)
    upload = {"delivery": "upload", "file": "installers/demisto-{release}.sh", "link": None, **installer}
    return inventory(fleet, "single", tmp_path, installer=upload), local


def test_upload_delivery_sends_each_installer_once_over_sftp_and_the_server_verifies_it(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv, local = upload_inventory(fleet, tmp_path)
    # single-h2 already holds the very same installer: it must not be sent again
    (fleet.server("single-h2").home / "xsoar-mt").mkdir(exist_ok=True)
    shutil.copy(local, fleet.server("single-h2").home / "xsoar-mt" / "demisto-6.12.sh")
    result = run(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    sftp = [c["server"] for c in fleet.commands() if c["command"] == "<sftp>"]
    assert sorted(sftp) == ["single-h1", "single-main"]
    assert not [e for e in fleet.events() if e["event"] == "download"]


def test_an_upload_whose_connection_drops_is_sent_again_after_reconnecting_and_the_run_goes_on(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv, local = upload_inventory(fleet, tmp_path)
    # the SFTP session to single-h1 drops as it opens (its sshd gone for a second), once
    fleet.server("single-h1").set_fault(commands=[{"match": "sftp-server", "action": "drop", "seconds": 1}])
    result = run(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    print(result.stdout)
    assert "single-h1: upload failed" in result.stdout and "reconnecting to run it again" in result.stdout
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    sftp = [c["server"] for c in fleet.commands() if c["command"] == "<sftp>"]
    assert sftp.count("single-h1") == 2  # the dropped session, then the one that sent it
    arrived = fleet.server("single-h1").home / "xsoar-mt" / "demisto-6.12.sh"
    assert arrived.read_bytes() == local.read_bytes()


def test_an_upload_the_server_refuses_on_a_working_connection_fails_its_step_at_once_without_reconnecting(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv, _ = upload_inventory(fleet, tmp_path)
    (fleet.server("single-h1").home / "xsoar-mt" / "demisto-6.12.sh").mkdir(parents=True)  # in the way
    result = run(inv, "--to", "6.12")
    assert result.returncode == 6, result.stdout[-3000:] + result.stderr
    assert "on single-h1 failed: upload to xsoar-mt/demisto-6.12.sh failed (Failure)" in result.stdout
    assert "reconnecting" not in result.stdout  # an SFTP refusal is the answer, not a dropped connection
    assert nothing_changed(fleet)


def test_a_second_ctrl_c_stops_an_upload_under_way_and_resume_sends_it_again_whole(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv, local = upload_inventory(fleet, tmp_path)
    with local.open("ab") as grow:  # 128 MiB after the script's `exit`: a second or two on the wire
        grow.write(b"#" * (128 << 20))
    for name in ("single-main", "single-h2"):  # they hold it already: only single-h1 is sent it
        (fleet.server(name).home / "xsoar-mt").mkdir(exist_ok=True)
        shutil.copy(local, fleet.server(name).home / "xsoar-mt" / "demisto-6.12.sh")
    arriving = fleet.server("single-h1").home / "xsoar-mt" / "demisto-6.12.sh"
    process = start_run(inv, "--to", "6.12")
    out, err = interrupt_when(
        process, lambda: arriving.exists() and arriving.stat().st_size > 0, times=2, timeout=120
    )
    assert process.returncode == 130, out[-3000:] + err
    stopped = [e for e in events_of(out) if "stopped the upload at" in (e.get("message") or "")]
    assert stopped and "second interrupt" in stopped[0]["message"]
    assert arriving.stat().st_size < local.stat().st_size  # it stopped sending, it did not finish first
    assert nothing_changed(fleet)
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr
    assert arriving.read_bytes() == local.read_bytes()
    assert set(versions(fleet, "single").values()) == {"6.12.0"}


def test_upload_delivery_refuses_an_installer_whose_checksum_the_inventory_contradicts(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv, _ = upload_inventory(fleet, tmp_path, sha256={"6.12": "0" * 64})
    result = run(inv, "--to", "6.12", "--ignore-preflight-errors=installer")
    assert result.returncode == 6, result.stdout + result.stderr
    assert "the inventory expects 000000" in result.stdout
    assert nothing_changed(fleet)


def test_upload_delivery_from_a_link_downloads_each_hop_once_here_and_uploads_it_to_every_server(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.reset(versions={s.name: "6.10.0" for s in fleet.servers("drmain")})
    token = "tok-" + os.urandom(8).hex()
    with download_server(fleet.downloads, token, tmp_path / "stub") as stub:
        link = link_file(stub, tmp_path, monkeypatch)
        inv = inventory(
            fleet, "drmain", tmp_path, installer={"delivery": "upload", "link": {"file": str(link)}}
        )
        result = run(inv, "--to", "6.12")
        assert result.returncode == 0, result.stdout + result.stderr
        # once per hop on this machine, whatever the number of servers; preflight only asked (HEAD)
        # prepare steps run side by side, so the two hops' downloads may come in either order
        assert sorted(stub.downloads()) == ["6_11_latest", "6_12_latest"]
        assert [r["method"] for r in stub.requests].count("HEAD") == 1
    assert set(versions(fleet, "drmain").values()) == {"6.12.0"}
    assert not [e for e in fleet.events() if e["event"] == "download"]  # no server downloaded anything
    sftp = sorted(c["server"] for c in fleet.commands() if c["command"] == "<sftp>")
    assert sftp == sorted(["drmain-p", "drmain-s", "drmain-h1"] * 2)  # every server, each hop
    cache = inv.parent / "state" / "installers"
    assert sorted(p.name for p in cache.iterdir()) == ["demisto-6_11_latest.sh", "demisto-6_12_latest.sh"]
    assert {oct(p.stat().st_mode & 0o777) for p in cache.iterdir()} == {"0o600"}
    assert "downloaded" in result.stdout
    produced = [p for p in (inv.parent / "state").rglob("*") if p.is_file() and p.parent != cache]
    for text in [result.stdout, result.stderr, *(p.read_text(errors="replace") for p in produced)]:
        assert token not in text
    assert not [c for c in fleet.commands() if token in c["command"]]


def test_a_resumed_upload_from_a_link_reuses_the_installer_the_failed_run_downloaded(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failed run's journal records each download's sha256 (installer-downloaded); --resume reads it
    # back to trust its cached installer, where a fresh run would download `latest` again.
    fleet.server("single-h1").set_fault(installer_fails=True)
    with download_server(fleet.downloads, "tok-" + os.urandom(8).hex(), tmp_path / "stub") as stub:
        link = link_file(stub, tmp_path, monkeypatch)
        upload = {"delivery": "upload", "link": {"file": str(link)}}
        inv = inventory(fleet, "single", tmp_path, installer=upload)
        failed = run(inv, "--to", "6.12")
        assert failed.returncode == 6, failed.stdout + failed.stderr
        assert stub.downloads() == ["6_12_latest"]
        fleet.server("single-h1").clear_faults()
        resumed = run(inv, "--resume", "latest")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert stub.downloads() == ["6_12_latest"]  # not downloaded again
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert [r["data"]["reused"] for r in journal(inv) if r["kind"] == "installer-downloaded"] == [
        False,
        True,
    ]


def test_an_installer_that_installs_another_release_stops_the_run_naming_the_server_and_release(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.add_installer("6.12", installs="6.13.1")  # the vendor's 6.12 link handed out a 6.13 installer
    inv = inventory(fleet, "single", tmp_path)
    result = run(inv, "--to", "6.12")
    assert result.returncode == 6, result.stdout + result.stderr
    assert "single-main" in result.stdout and "6.13.1" in result.stdout, result.stdout
    (failed,) = [r for r in journal(inv) if r["kind"] == "step-finished" and r["data"]["outcome"] != "ok"]
    assert failed["servers"] == ["single-main"] and "6.13.1" in json.dumps(failed["data"])
    assert [s for s, _ in installs(fleet)] == ["single-main"]  # nothing installed after it


def test_an_installer_corrupted_on_its_way_to_the_server_is_refused_there_and_never_run(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h1").set_fault(corrupt_uploads=True)
    inv, local = upload_inventory(fleet, tmp_path)
    result = run(inv, "--to", "6.12")
    assert result.returncode == 6, result.stdout + result.stderr
    assert "single-h1" in result.stdout and "not made executable" in result.stdout
    assert nothing_changed(fleet)
    arrived = fleet.server("single-h1").home / "xsoar-mt" / "demisto-6.12.sh"
    assert arrived.read_bytes() != local.read_bytes()  # the fault did corrupt it
    assert not os.access(arrived, os.X_OK)


def test_a_server_whose_tmp_is_noexec_is_installed_with_target_and_the_others_without(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.reset(faults={"single-h2": {"tmp_noexec": True}})
    inv = inventory(fleet, "single", tmp_path)
    result = run(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    targets = {e["server"]: e.get("target") for e in fleet.events() if e["event"] == "install_begin"}
    assert targets == {"single-main": None, "single-h1": None, "single-h2": "xsoar-mt/extract"}
    assert "preflight tmp-noexec on single-h2: /tmp is mounted noexec" in result.stdout
    assert "gets -target xsoar-mt/extract" in result.stdout
    records = journal(inv)
    own = [
        r["data"]["per_server"] for r in records if r["kind"] == "step-started" and "per_server" in r["data"]
    ]
    assert len(own) == 1 and list(own[0]) == ["single-h2"]
    assert "-target xsoar-mt/extract -- -multi-tenant" in own[0]["single-h2"]


def test_the_ssh_agent_is_used_when_the_inventory_names_no_key(fleet: Fleet, tmp_path: Path) -> None:
    started = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    agent = dict(part.split("=", 1) for part in started.replace(";", "\n").split() if "=" in part)
    try:
        with_agent = {**os.environ, "SSH_AUTH_SOCK": agent["SSH_AUTH_SOCK"], "PYTHONPATH": str(REPO)}
        subprocess.run(["ssh-add", "-q", str(fleet.identity_file)], env=with_agent, check=True, timeout=10)
        inv = inventory(fleet, "single", tmp_path, ssh={"identity_file": None, "config_file": None})
        argv = [sys.executable, "-m", "xsoar_mt", "upgrade", "run", "-i", str(inv), "--to", "6.12", "--dry-run",
                "--probe", "--state-dir", str(tmp_path / "state")]  # fmt: skip
        probed = subprocess.run(
            argv, env=with_agent, capture_output=True, text=True, timeout=120, check=False
        )
        assert probed.returncode == 0, probed.stdout + probed.stderr
        assert "single-h1: 6.11.0" in probed.stdout
        without = {k: v for k, v in with_agent.items() if k != "SSH_AUTH_SOCK"}
        refused = subprocess.run(argv, env=without, capture_output=True, text=True, timeout=120, check=False)
        assert refused.returncode == 7
        assert "authentication failed" in refused.stderr
    finally:
        os.kill(int(agent["SSH_AGENT_PID"]), signal.SIGTERM)


def test_a_declined_prompt_shows_the_plan_changes_nothing_and_exits_12(fleet: Fleet, tmp_path: Path) -> None:
    import pty

    inv = inventory(fleet, "single", tmp_path)
    parent, child = pty.openpty()  # a terminal on standard input: the run asks before the first change
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "xsoar_mt", "upgrade", "run", "-i", str(inv), "--to", "6.12",
             "--state-dir", str(tmp_path / "state")],
            cwd=tmp_path, stdin=child, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        )  # fmt: skip
        os.write(parent, b"n\n")  # read once the question is asked (the terminal keeps it until then)
        out, err = process.communicate(timeout=300)
    finally:
        os.close(parent)
        os.close(child)
    assert process.returncode == 12, out + err
    assert "now? [y/N]" in out and "error: not confirmed: nothing was changed" in err
    assert out.index("expected length of the night") < out.index("now? [y/N]")
    assert nothing_changed(fleet)


def test_with_yes_the_run_shows_the_plan_summary_before_the_first_change(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = inventory(fleet, "single", tmp_path)
    result = run(inv, "--to", "6.12", "--parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.index("Upgrade plan for single:")
    assert summary < result.stdout.index("done: ")  # before any step finished
    assert "up to 2 host groups at once" in result.stdout  # the estimate --parallel gives, as plan shows it
