"""Tests of the simulated XSOAR service: LSB status codes, HTTPS endpoints, accounts and tenants."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet


def insecure_context(*, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # old TLS on purpose
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = maximum
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def get(url: str, key: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", key)
    try:
        with urllib.request.urlopen(request, context=insecure_context(), timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """True as soon as `condition` holds, False if it still does not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_service_status_uses_lsb_exit_codes(fleet: Fleet) -> None:
    script = (
        "service demisto status >/dev/null; echo status=$?; "
        "sudo service demisto stop >/dev/null; service demisto status >/dev/null; echo status=$?; "
        "systemctl is-active demisto; echo active=$?; "
        "sudo systemctl start demisto >/dev/null; systemctl status demisto >/dev/null; echo status=$?"
    )
    result = fleet.ssh("single-h1", script)
    assert result.stdout.split() == ["status=0", "status=3", "inactive", "active=3", "status=0"]
    events = [e["event"] for e in fleet.events() if e["server"] == "single-h1"]
    assert events == ["baseline", "stop", "start"]


def test_about_reports_the_installed_version_over_tls_1_2_or_later(fleet: Fleet) -> None:
    server = fleet.server("single-h2")
    status, about = get(server.url("/about"))
    assert (status, about["demistoVersion"]) == (200, "6.11.0")
    with (
        socket.create_connection((server.address, server.comm_port), timeout=5) as raw,
        insecure_context().wrap_socket(raw) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    context = insecure_context(maximum=ssl.TLSVersion.TLSv1_1)
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection((server.address, server.comm_port), timeout=5) as raw,
        context.wrap_socket(raw),
    ):
        pass


def test_health_answers_without_a_key_and_about_demands_the_api_key(fleet: Fleet) -> None:
    server = fleet.server("mixed-solo")
    assert get(server.url("/health"))[0] == 200
    assert get(server.url("/about"))[0] == 401
    assert get(server.url("/about"), "wrong")[0] == 401
    assert get(server.url("/about"), "fleet-api-key")[0] == 200


def test_main_lists_its_tenants_and_forwards_to_them(fleet: Fleet) -> None:
    main = fleet.server("single-main")
    status, accounts = get(main.url("/accounts"))
    assert status == 200
    assert {(a["name"], a["host"], a["status"]) for a in accounts} == {
        ("acc_ops", "main", "active"),
        ("acc_acme", "h1", "active"),
        ("acc_beta", "h1", "active"),
        ("acc_gamma", "h2", "active"),
    }
    fleet.server("single-h1").set_version("6.10.0")
    status, about = get(main.url("/acc_acme/about"))
    assert (status, about["demistoVersion"], about["tenant"]) == (200, "6.10.0", "acc_acme")
    assert get(main.url("/acc_nobody/about"))[0] == 404


def test_tenant_ports_listen_only_while_the_hosts_service_runs(fleet: Fleet) -> None:
    host = fleet.server("single-h1")
    ports = host.tenant_ports
    assert ports == {"acme": 18501, "beta": 18502}
    # The service opens and closes its tenant listeners just after its own start and stop: wait for them.
    assert eventually(lambda: all(listening(host.address, p) for p in ports.values()))
    host.stop_service()
    assert eventually(lambda: not any(listening(host.address, p) for p in ports.values()))
    _, accounts = get(fleet.server("single-main").url("/accounts"))
    assert {a["name"]: a["status"] for a in accounts}["acc_acme"] == "unreachable"
    assert get(fleet.server("single-main").url("/acc_acme/about"))[0] == 502


def test_curl_on_a_server_reaches_its_own_service_at_127_0_0_1(fleet: Fleet) -> None:
    result = fleet.ssh(
        "mixed-main",
        f"curl -sk --max-time 10 -H @- https://127.0.0.1:{fleet.ports.communication}/about",
        input="Authorization: fleet-api-key\n",
    )
    assert json.loads(result.stdout)["server"] == "mixed-main"
