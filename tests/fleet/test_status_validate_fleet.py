"""`xsoar-mt status` and `xsoar-mt validate` against the fleet of real OpenSSH servers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fleet import runs
from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet


def xsoar_mt(*args: str) -> subprocess.CompletedProcess[str]:
    """A read-only command, in the test's own folder (its default state directory is there)."""
    return runs.xsoar_mt(*args, cwd=Path.cwd(), timeout=120)


def test_status_shows_every_server_running_its_version_with_no_skew(fleet: Fleet, tmp_path: Path) -> None:
    inventory = fleet.inventory("mixed", tmp_path / "inventory.yaml")
    result = xsoar_mt("status", "-i", str(inventory), "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {
        s["server"]: (s["role"], s["group"], s["version"], s["running"], s["reachable"], s["skew"])
        for s in data["servers"]
    }
    assert rows == {
        "mixed-main": ("main", "main", "6.11.0", True, True, "ok"),
        "mixed-solo": ("host", "solo", "6.11.0", True, True, "ok"),
        "mixed-ga": ("host (app)", "grp", "6.11.0", True, True, "ok"),
        "mixed-gb": ("host (app)", "grp", "6.11.0", True, True, "ok"),
    }
    assert data["skew"] == "ok" and data["degraded_functions"] == []


def test_status_reports_a_lagging_host_as_degraded_with_the_functions_that_stop(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.reset(versions={"single-main": "6.12.0"})
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    data = json.loads(xsoar_mt("status", "-i", str(inventory), "-o", "json").stdout)
    rows = {s["server"]: s for s in data["servers"]}
    assert rows["single-h1"]["skew"] == "degraded" and rows["single-h1"]["source"] == "api"
    assert data["skew"] == "degraded"
    assert any("content sync" in f for f in data["degraded_functions"])
    assert "degraded" in xsoar_mt("status", "-i", str(inventory)).stdout


def test_status_reads_a_stopped_servers_version_from_the_marker_xsoar_mt_keeps_there(
    fleet: Fleet, tmp_path: Path
) -> None:
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    fleet.add_installer("6.12")
    done = runs.run(inventory, "--to", "6.12", "--only", "main")  # its state directory is not status's
    assert done.returncode == 0, done.stdout + done.stderr
    fleet.server("single-main").stop_service()
    fleet.server("single-h2").stop_service()
    data = json.loads(
        xsoar_mt("status", "-i", str(inventory), "-o", "json").stdout
    )  # another state dir: no record
    rows = {s["server"]: s for s in data["servers"]}
    assert (rows["single-main"]["version"], rows["single-main"]["source"]) == ("6.12.0", "marker")
    assert rows["single-main"]["service"] == "stopped" and rows["single-main"]["skew"] == "ok"
    assert (
        rows["single-h2"]["version"] is None and rows["single-h2"]["skew"] == "unknown"
    )  # nothing records it
    assert data["skew"] == "unknown"


def test_status_says_where_each_version_comes_from_and_reports_a_stale_inventory(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h2").stop_service()
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml", versions=True)
    text = inventory.read_text()
    at = text.index("name: single-h1")
    inventory.write_text(text[:at] + text[at:].replace("version: 6.11.0", "version: 6.10.0", 1))  # stale
    data = json.loads(xsoar_mt("status", "-i", str(inventory), "-o", "json").stdout)
    rows = {s["server"]: s for s in data["servers"]}
    assert (rows["single-h1"]["version"], rows["single-h1"]["source"]) == ("6.11.0", "api")
    assert "inventory says 6.10.0, single-h1 reports 6.11.0" in rows["single-h1"]["detail"]
    assert (rows["single-h2"]["version"], rows["single-h2"]["source"]) == ("6.11.0", "inventory")
    assert rows["single-h2"]["running"] is False
    # The table says the same on a second look: the status above recorded h2's version in the state
    # directory, but only from the inventory, so the record does not count as having seen it.
    text = xsoar_mt("status", "-i", str(inventory)).stdout
    (h2,) = [line for line in text.splitlines() if "single-h2" in line]  # its row: h1's detail names it too
    assert "inventory" in h2 and "stopped" in h2, text


def test_status_marks_a_server_with_a_changed_host_key_unreachable(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(faults={"single-h1": {"host_key_changed": True}})
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    data = json.loads(xsoar_mt("status", "-i", str(inventory), "-o", "json").stdout)
    h1 = next(s for s in data["servers"] if s["server"] == "single-h1")
    assert h1["reachable"] is False and "host key changed" in h1["detail"]


def test_validate_passes_through_the_load_balancer_and_every_tenant_through_main(
    fleet: Fleet, tmp_path: Path
) -> None:
    inventory = fleet.inventory("hamain", tmp_path / "inventory.yaml")
    result = xsoar_mt("validate", "-i", str(inventory), "--to", "6.11", "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    checks = [(r["check"], r["ok"]) for r in data["results"]]
    assert checks == [
        ("main", True),
        ("main", True),
        ("tenants", True),
        ("servers", True),
        ("servers", True),
        ("servers", True),
    ]
    assert "(load balancer)" in data["results"][0]["subject"]


def test_validate_fails_with_9_when_a_tenant_does_not_answer_through_main(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.reset(faults={"single-h1": {"blocked_ports": [18502]}})
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    result = xsoar_mt("validate", "-i", str(inventory), "-o", "json")
    assert result.returncode == 9
    failed = [(r["check"], r["subject"]) for r in json.loads(result.stdout)["results"] if not r["ok"]]
    assert failed == [("tenants", "beta (h1)")]


def test_validate_fails_when_a_server_is_not_on_the_expected_release_or_stopped(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("drhosts-d1s").stop_service()
    inventory = fleet.inventory("drhosts", tmp_path / "inventory.yaml")
    result = xsoar_mt("validate", "-i", str(inventory), "--to", "6.12")
    assert result.returncode == 9
    assert "runs 6.11.0, expected 6.12" in result.stdout
    assert "the service is stopped" in result.stdout
    assert "Validation failed." in result.stdout
