"""Tests that each fault of the spec does what it says (docs/fleet.md, "Faults")."""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from cryptography import x509

from tests.fleet.fleet import Fleet
from tests.fleet.spec import Faults

pytestmark = pytest.mark.fleet

FETCH = "mkdir -p xsoar-mt && wget -q -O xsoar-mt/demisto.sh -i - && chmod +x xsoar-mt/demisto.sh"
INSTALL = f"{FETCH} && sudo service demisto stop && sudo ./xsoar-mt/demisto.sh"


def install(fleet: Fleet, name: str, flags: str = "-- -multi-tenant") -> tuple[int, str]:
    result = fleet.ssh(name, f"{INSTALL} {flags}", input=fleet.download_link("6_12_latest") + "\n")
    return result.returncode, result.stdout + result.stderr


def certificate(address: str, port: int) -> x509.Certificate:
    pem = ssl.get_server_certificate((address, port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode())


def listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_installer_fails_fault_keeps_the_old_version(fleet: Fleet) -> None:
    fleet.server("single-h1").set_fault(installer_fails=True)
    code, output = install(fleet, "single-h1")
    assert code == 1
    assert "simulated fault" in output
    assert fleet.server("single-h1").version == "6.11.0"
    assert [e["event"] for e in fleet.events()][-2:] == ["install_begin", "install_failed"]


def test_start_fails_fault_records_a_start_failure(fleet: Fleet) -> None:
    fleet.reset(faults={"single-h1": {"start_fails": True}})
    assert not fleet.server("single-h1").running
    result = fleet.ssh("single-h1", "sudo service demisto start")
    assert result.returncode == 1
    assert not fleet.server("single-h1").running
    assert fleet.events()[-1]["event"] == "start_failed"


def test_health_answers_503_for_the_configured_seconds_after_start(fleet: Fleet) -> None:
    server = fleet.server("single-h2")
    server.set_fault(health_503_seconds=1.0)
    context = ssl._create_unverified_context()
    import urllib.error
    import urllib.request

    def health() -> int:
        try:
            with urllib.request.urlopen(server.url("/health"), context=context, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code

    assert health() == 503
    deadline = time.monotonic() + 5
    while health() == 503:
        assert time.monotonic() < deadline, "health never turned 200"
        time.sleep(0.05)
    assert health() == 200
    answers = [e["status"] for e in fleet.events() if e["server"] == "single-h2" and e["event"] == "health"]
    turned = answers.index(200)  # each answer is in the event log: 503 while starting, then 200 only
    assert turned > 0 and set(answers[:turned]) == {503} and set(answers[turned:]) == {200}


def test_low_disk_fault_shows_in_df_and_makes_the_installer_fail(fleet: Fleet) -> None:
    fleet.server("single-h1").set_fault(low_disk=True)
    df = fleet.ssh("single-h1", "df -Pk .").stdout.splitlines()
    assert int(df[1].split()[3]) == 100 * 1024
    code, output = install(fleet, "single-h1")
    assert code == 1
    assert "not enough free disk space" in output


def test_tmp_noexec_fails_the_installer_unless_given_a_target(fleet: Fleet) -> None:
    fleet.server("single-h1").set_fault(tmp_noexec=True)
    assert "noexec" in fleet.ssh("single-h1", "findmnt -no OPTIONS --target /tmp").stdout
    code, output = install(fleet, "single-h1")
    assert code == 1
    assert "Permission denied" in output
    code, output = install(fleet, "single-h1", "-target /var/tmp -- -multi-tenant")
    assert code == 0, output
    assert fleet.server("single-h1").version == "6.12.0"


def test_ssh_drop_during_install_kills_sessions_and_the_install_still_finishes(fleet: Fleet) -> None:
    server = fleet.server("single-h2")
    server.set_fault(ssh_drop_seconds=1.0)
    before = server.sshd_pid
    code, _ = install(fleet, "single-h2")
    assert code == 255  # the SSH connection went away mid-install
    assert fleet.ssh("single-h2", "true").returncode == 255  # and sshd is really gone
    server.wait_ssh()
    assert server.sshd_pid != before
    assert fleet.ssh("single-h2", "true").returncode == 0  # back, with the same host key
    deadline = time.monotonic() + 10
    while not server.running:
        assert time.monotonic() < deadline, "the install did not finish"
        time.sleep(0.05)
    assert server.version == "6.12.0"
    names = [e["event"] for e in fleet.events() if e["server"] == "single-h2"]
    assert names.index("ssh_drop") < names.index("install_end") < names.index("start")
    assert "ssh_back" in names


def test_wrong_sudo_password_fault_refuses_the_operators_password(fleet: Fleet) -> None:
    assert fleet.ssh("mixed-main", "sudo -S -p '' true", input="s3cret\n").returncode == 0
    fleet.server("mixed-main").set_fault(wrong_sudo_password=True)
    result = fleet.ssh("mixed-main", "sudo -S -p '' true", input="s3cret\n")
    assert result.returncode == 1
    assert "Sorry, try again." in result.stderr


def test_blocked_ports_leave_nothing_listening_there(fleet: Fleet) -> None:
    host = fleet.server("single-h1")
    acme = host.tenant_ports["acme"]
    host.set_fault(blocked_ports=(host.comm_port, acme))
    assert host.running
    assert not listening(host.address, host.comm_port)
    assert not listening(host.address, acme)
    assert listening(host.address, host.tenant_ports["beta"])


def test_tls10_fault_accepts_a_tls_1_0_client(fleet: Fleet) -> None:
    import warnings

    server = fleet.server("single-h2")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old TLS on purpose
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")

    def handshake() -> str | None:
        with (
            socket.create_connection((server.address, server.comm_port), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            return tls.version()

    with pytest.raises(ssl.SSLError):
        handshake()
    server.set_fault(tls10=True)
    assert handshake() == "TLSv1"


def test_ha_peers_share_a_certificate_unless_own_cert_and_expired_cert_is_expired(
    fleet: Fleet,
) -> None:
    a, b = fleet.server("hahosts-g1a"), fleet.server("hahosts-g1b")
    assert certificate(a.address, a.comm_port) == certificate(b.address, b.comm_port)
    b.set_fault(own_cert=True)
    assert certificate(a.address, a.comm_port) != certificate(b.address, b.comm_port)
    a.set_fault(expired_cert=True)
    expired = certificate(a.address, a.comm_port)
    assert expired.not_valid_after_utc.timestamp() < time.time()


def test_faults_can_come_from_the_spec_and_reset_restores_them(fleet: Fleet) -> None:
    fleet.reset(faults={"single-h1": Faults(low_disk=True)}, versions={"single-h2": "6.10"})
    assert fleet.server("single-h1").faults.low_disk
    assert fleet.server("single-h2").version == "6.10.0"
    baseline = {e["server"]: e for e in fleet.events() if e["event"] == "baseline"}
    assert baseline["single-h2"]["version_after"] == "6.10.0"
    fleet.reset()
    assert not fleet.server("single-h1").faults.low_disk
    assert fleet.server("single-h2").version == "6.11.0"
