"""Preflight against the fleet of real OpenSSH servers: each check passing, and failing for a real reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.elasticsearch_stub import ClusterState, elasticsearch_stub
from tests.fleet.fleet import Fleet
from tests.fleet.inventory import inventory_data, write_secret
from tests.fleet.spec import FleetSpec
from tests.inventories import merge, write
from xsoar_mt.checks import FindingVerdict, PreflightReport, run_preflight
from xsoar_mt.checks.preflight import PreflightInput
from xsoar_mt.usecases.session import LinkNeed, Session

# its module-scoped fleet is started once: every test of the file on the same pytest-xdist worker
pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("preflight-fleet")]

REPO = Path(__file__).resolve().parents[2]


def preflight(
    fleet: Fleet, name: str, tmp_path: Path, ignore: str | None = None, **overrides: Any
) -> PreflightReport:
    path = write_inventory(fleet, name, tmp_path / f"inventory-{name}.yaml", overrides)
    with Session(path, tmp_path / "state") as session:
        secrets = session.read_secrets(sudo=True, link=LinkNeed.IF_SET)
        return run_preflight(session.inventory, session.shells, secrets, PreflightInput("6.12", ignore))


def write_inventory(fleet: Fleet, name: str, path: Path, overrides: dict[str, Any]) -> Path:
    """Like fleet.inventory, which cannot take a `deployment` override (its own parameter's name)."""
    return write(path, merge(inventory_data(fleet, fleet.spec.deployment(name)), overrides))


def verdicts(report: PreflightReport, check: str) -> dict[str, FindingVerdict]:
    return {f.server: f.verdict for f in report.findings if f.check == check}


def detail(report: PreflightReport, check: str, server: str) -> str:
    return next(f.detail for f in report.findings if f.check == check and f.server == server)


@pytest.fixture
def stub() -> Iterator[Any]:
    with elasticsearch_stub(ClusterState(credentials="elastic:es-pass")) as running:
        yield running


def es_overrides(fleet: Fleet, url: str) -> dict[str, Any]:
    credentials = write_secret(fleet, "es-credentials", "elastic:es-pass")
    return {"deployment": {"elasticsearch_url": url, "elasticsearch_credentials": {"file": str(credentials)}}}


def test_a_healthy_deployment_passes_every_check_in_two_commands_per_server(
    fleet: Fleet, tmp_path: Path, stub: Any
) -> None:
    report = preflight(fleet, "mixed", tmp_path, **es_overrides(fleet, stub.url))
    failures = [f for f in report.findings if f.verdict is FindingVerdict.FAIL]
    assert failures == []
    for check in (
        "ssh",
        "sudo",
        "installer",
        "disk",
        "tmp-noexec",
        "communication",
        "tls",
        "elasticsearch",
        "api-key",
    ):
        assert set(verdicts(report, check).values()) == {FindingVerdict.PASS}, check
    assert verdicts(report, "version")["mixed-main"] is FindingVerdict.PASS
    assert report.ok
    assert {s: (n["connections"], n["commands"]) for s, n in report.ssh.items()} == {
        s: (1, 2) for s in ("mixed-main", "mixed-solo", "mixed-ga", "mixed-gb")
    }


def test_no_secret_reaches_a_remote_command_line_or_the_report(
    fleet: Fleet, tmp_path: Path, stub: Any
) -> None:
    report = preflight(fleet, "mixed", tmp_path, **es_overrides(fleet, stub.url))
    lines = "\n".join(c["command"] for c in fleet.commands())
    text = json.dumps(report.to_dict())
    for secret in ("fleet-api-key", "s3cret", fleet.spec.download_token or "", "es-pass"):
        assert secret not in lines and secret not in text
    assert stub.state.seen_authorization[-1].startswith("Basic ")


def test_an_unknown_host_key_fails_ssh_and_the_rest_of_that_server_is_not_checked(
    fleet: Fleet, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(line + "\n" for line in fleet.known_hosts.read_text().splitlines() if "single-h2" not in line)
    )
    report = preflight(fleet, "single", tmp_path, ssh={"known_hosts": str(known)})
    assert verdicts(report, "ssh") == {
        "single-main": FindingVerdict.PASS,
        "single-h1": FindingVerdict.PASS,
        "single-h2": FindingVerdict.FAIL,
    }
    assert "unknown host key" in detail(report, "ssh", "single-h2")
    assert "single-h2" not in verdicts(report, "disk")
    assert not report.ok


def test_a_changed_host_key_fails_ssh(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(faults={"single-h1": {"host_key_changed": True}})
    report = preflight(fleet, "single", tmp_path)
    assert verdicts(report, "ssh")["single-h1"] is FindingVerdict.FAIL
    assert "host key changed" in detail(report, "ssh", "single-h1")


def test_a_wrong_sudo_password_fails_sudo_and_cannot_be_ignored(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(faults={"mixed-main": {"wrong_sudo_password": True}})
    report = preflight(fleet, "mixed", tmp_path, ignore="all")
    assert verdicts(report, "sudo")["mixed-main"] is FindingVerdict.FAIL
    assert "rejected the password" in detail(report, "sudo", "mixed-main")
    assert verdicts(report, "sudo")["mixed-solo"] is FindingVerdict.PASS
    assert not report.ok


def test_a_host_two_releases_behind_main_fails_the_version_check(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(versions={"single-h1": "6.9.0"})
    report = preflight(fleet, "single", tmp_path)
    assert verdicts(report, "version")["single-h1"] is FindingVerdict.PASS  # it answers: 6.9.0
    assert verdicts(report, "version")["deployment"] is FindingVerdict.FAIL
    assert "already unsupported" in detail(report, "version", "deployment")


def test_a_download_link_the_vendor_refuses_fails_the_installer_check(fleet: Fleet, tmp_path: Path) -> None:
    bad = write_secret(fleet, "bad-link", fleet.download_link(token="not-the-token"))
    report = preflight(fleet, "single", tmp_path, installer={"link": {"file": str(bad)}})
    assert set(verdicts(report, "installer").values()) == {FindingVerdict.FAIL}
    assert "not-the-token" not in json.dumps(report.to_dict())


def test_low_disk_fails_and_can_be_ignored(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(faults={"single-h1": {"low_disk": True}})
    report = preflight(fleet, "single", tmp_path)
    assert verdicts(report, "disk") == {
        "single-main": FindingVerdict.PASS,
        "single-h1": FindingVerdict.FAIL,
        "single-h2": FindingVerdict.PASS,
    }
    assert [f.check for f in report.blocking] == ["disk", "disk"]
    ignored = preflight(fleet, "single", tmp_path, ignore="disk")
    assert ignored.ok and verdicts(ignored, "disk")["single-h1"] is FindingVerdict.IGNORED


def test_a_noexec_tmp_gets_an_automatic_target_and_a_noexec_target_dir_fails(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.reset(faults={"single-h2": {"tmp_noexec": True}})
    report = preflight(fleet, "single", tmp_path)
    assert verdicts(report, "tmp-noexec") == {
        "single-main": FindingVerdict.PASS,
        "single-h1": FindingVerdict.PASS,
        "single-h2": FindingVerdict.WARN,
    }
    assert report.ok
    assert report.extract_dirs == {"single-h2": "xsoar-mt/extract"}
    assert "gets -target xsoar-mt/extract" in detail(report, "tmp-noexec", "single-h2")
    chosen = preflight(fleet, "single", tmp_path, installer={"target_dir": "/tmp/xsoar"})
    assert (
        verdicts(chosen, "tmp-noexec")["single-h2"] is FindingVerdict.FAIL
    )  # the operator's choice is noexec too
    assert chosen.extract_dirs == {}


def test_a_blocked_tenant_port_fails_communication_from_its_host_and_from_main(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.reset(faults={"mixed-ga": {"blocked_ports": [18502]}})
    report = preflight(fleet, "mixed", tmp_path)
    found = verdicts(report, "communication")
    assert found == {
        "mixed-main": FindingVerdict.FAIL,
        "mixed-solo": FindingVerdict.PASS,
        "mixed-ga": FindingVerdict.FAIL,
        "mixed-gb": FindingVerdict.PASS,
    }
    assert "gamma@mixed-ga" in detail(report, "communication", "mixed-main")
    closed = [(p.link.source, p.link.target) for p in report.paths if p.state.value != "open"]
    assert sorted(closed) == [("mixed-ga", "gamma@mixed-ga"), ("mixed-main", "gamma@mixed-ga")]


def test_a_server_accepting_tls_1_0_fails_tls(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(faults={"single-h1": {"tls10": True}})
    report = preflight(fleet, "single", tmp_path)
    assert verdicts(report, "tls") == {
        "single-main": FindingVerdict.PASS,
        "single-h1": FindingVerdict.FAIL,
        "single-h2": FindingVerdict.PASS,
    }
    assert "accepts TLSv1" in detail(report, "tls", "single-h1")


def test_an_expired_certificate_fails_tls(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(faults={"single-main": {"expired_cert": True}})
    report = preflight(fleet, "single", tmp_path)
    assert verdicts(report, "tls")["single-main"] is FindingVerdict.FAIL
    assert "expired" in detail(report, "tls", "single-main")


def test_an_ha_peer_with_its_own_certificate_fails_tls_for_the_group(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(faults={"hahosts-g1b": {"own_cert": True}})
    report = preflight(fleet, "hahosts", tmp_path)
    found = verdicts(report, "tls")
    assert (found["hahosts-main"], found["hahosts-g1a"], found["hahosts-g1b"]) == (
        FindingVerdict.PASS,
        FindingVerdict.FAIL,
        FindingVerdict.FAIL,
    )
    assert "differs from its HA peer(s) hahosts-g1b" in detail(report, "tls", "hahosts-g1a")


def test_elasticsearch_with_too_few_free_shards_fails(fleet: Fleet, tmp_path: Path) -> None:
    with elasticsearch_stub(ClusterState(data_nodes=1, max_shards_per_node=20, active_shards=18)) as stub:
        report = preflight(fleet, "hamain", tmp_path, deployment={"elasticsearch_url": stub.url})
    assert verdicts(report, "elasticsearch") == {"cluster": FindingVerdict.FAIL}
    assert "20 - 18 active shards = 2 free; the upgrade adds 3 indices" in detail(
        report, "elasticsearch", "cluster"
    )
    with elasticsearch_stub(ClusterState(data_nodes=1, max_shards_per_node=20, active_shards=17)) as stub:
        report = preflight(fleet, "hamain", tmp_path, deployment={"elasticsearch_url": stub.url})
    assert verdicts(report, "elasticsearch") == {"cluster": FindingVerdict.PASS}


def test_elasticsearch_refusing_the_credentials_fails(fleet: Fleet, tmp_path: Path) -> None:
    with elasticsearch_stub(ClusterState(credentials="elastic:other")) as stub:
        report = preflight(fleet, "hamain", tmp_path, **es_overrides(fleet, stub.url))
    assert verdicts(report, "elasticsearch") == {"cluster": FindingVerdict.FAIL}
    assert "HTTP 401" in detail(report, "elasticsearch", "cluster")


def test_a_wrong_api_key_is_not_a_main_account_key(fleet: Fleet, tmp_path: Path) -> None:
    wrong = write_secret(fleet, "wrong-key", "not-the-fleet-key")
    report = preflight(
        fleet, "mixed", tmp_path, ignore="elasticsearch", deployment={"api_key": {"file": str(wrong)}}
    )
    assert verdicts(report, "api-key") == {"deployment": FindingVerdict.FAIL}
    assert "answered 401, so it is not a main-account key" in detail(report, "api-key", "deployment")


def test_the_right_api_key_is_reported_as_a_main_account_key(fleet: Fleet, tmp_path: Path) -> None:
    report = preflight(fleet, "mixed", tmp_path)
    assert "main-account key" in detail(report, "api-key", "deployment")
    assert "reaches every tenant" in detail(report, "api-key", "deployment")


@pytest.fixture(scope="module")
def small_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Servers sized below and above the vendor's sizing (the shared fleet's servers are all 16/32/1000)."""
    spec = FleetSpec.from_dict(
        {
            "deployments": [
                {
                    "name": "sized",
                    "main": {"server": {"name": "sized-main", "cores": 4, "memory_gb": 8}},
                    "hosts": [
                        {
                            "name": "big",
                            "server": {
                                "name": "sized-big",
                                "cores": 64,
                                "memory_gb": 128,
                                "disk_free_gb": 4000,
                            },
                            "tenants": ["acme", "beta"],
                        }
                    ],
                }
            ]
        }
    )
    fleet = Fleet(spec, tmp_path_factory.mktemp("sized-fleet"))
    fleet.start()
    try:
        yield fleet
    finally:
        fleet.stop()


def test_a_server_below_the_sizing_fails_system_and_a_big_host_with_tenants_passes(
    small_fleet: Fleet, tmp_path: Path
) -> None:
    report = preflight(small_fleet, "sized", tmp_path)
    assert verdicts(report, "system") == {"sized-main": FindingVerdict.FAIL, "sized-big": FindingVerdict.PASS}
    assert "4 cores" in detail(report, "system", "sized-main")
    assert "enough for 3 x production" in detail(report, "system", "sized-big")


def test_the_preflight_command_prints_json_and_exits_7_when_something_blocks(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.reset(faults={"single-h1": {"low_disk": True}})
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "xsoar_mt", "preflight", "-i", str(inventory), "--to", "6.12", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 7, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert {(f["check"], f["server"]) for f in data["findings"] if f["verdict"] == "fail"} == {
        ("disk", "single-h1")
    }
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "xsoar_mt",
            "preflight",
            "-i",
            str(inventory),
            "--to",
            "6.12",
            "--ignore-preflight-errors=disk",
            "--matrix",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Communication matrix" in ok.stdout and "ignored" in ok.stdout
