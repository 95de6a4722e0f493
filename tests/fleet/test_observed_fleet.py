"""The observed state off the happy path, on real OpenSSH servers, with inventories that give no versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.runs import (
    completed_installs,
    installs,
    journal,
    order_violations,
    recap_versions,
    run,
    run_json,
    versions,
    xsoar_mt,
)

pytestmark = pytest.mark.fleet


@pytest.fixture(autouse=True)
def installers(fleet: Fleet) -> None:
    for release in ("6.11", "6.12"):
        fleet.add_installer(release)


def test_main_tonight_then_each_host_group_tomorrow_reaches_the_target_in_vendor_order(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    main_only = run(inv, "--to", "6.12", "--only", "main")
    assert main_only.returncode == 0, main_only.stdout + main_only.stderr
    assert versions(fleet, "single") == {
        "single-main": "6.12.0",
        "single-h1": "6.11.0",
        "single-h2": "6.11.0",
    }
    assert "2 out of scope, read only" in main_only.stdout  # the hosts were read, not changed
    for group in ("h1", "h2"):
        scoped = run(inv, "--to", "6.12", "--group", group)
        assert scoped.returncode == 0, scoped.stdout + scoped.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert [s for s, _ in installs(fleet)] == ["single-main", "single-h1", "single-h2"]
    assert order_violations(fleet) == []


def test_a_scoped_dry_run_with_probe_refuses_what_the_real_run_refuses(fleet: Fleet, tmp_path: Path) -> None:
    fleet.reset(versions={"single-h1": "6.10.0"})  # 6.12 on main would leave h1 two releases behind
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    dry = run(inv, "--to", "6.12", "--only", "main", "--dry-run", "--probe")
    real = run(inv, "--to", "6.12", "--only", "main")
    assert (dry.returncode, real.returncode) == (4, 4), dry.stderr + real.stderr
    assert "single-h1" in dry.stderr and "single-h1" in real.stderr
    assert installs(fleet) == []


def test_a_start_failure_after_a_good_install_names_the_new_version_and_resume_starts_it_without_reinstalling(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("drhosts-d1s").set_fault(start_fails=True)
    inv = fleet.inventory("drhosts", tmp_path / "inventory.yaml")
    failed, events = run_json(inv, "--to", "6.12")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    assert fleet.server("drhosts-d1s").version == "6.12.0" and not fleet.server("drhosts-d1s").running
    assert recap_versions(events) == versions(fleet, "drhosts")  # the recap says what each server runs
    last = [r for r in journal(inv) if r["kind"] == "server-state" and r["servers"] == ["drhosts-d1s"]][-1]
    assert (last["data"]["version"], last["data"]["service"]) == ("6.12.0", "failed")

    fleet.server("drhosts-d1s").clear_faults()
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, "drhosts").values()) == {"6.12.0"}
    assert all(s.running for s in fleet.servers("drhosts"))
    assert [s for s, _ in installs(fleet)].count("drhosts-d1s") == 1  # never installed again
    assert order_violations(fleet) == []


def test_an_installer_failure_in_an_ha_group_is_unknown_until_fixed_then_resume_finishes(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("hahosts-g1a").set_fault(installer_fails=True)
    inv = fleet.inventory("hahosts", tmp_path / "inventory.yaml")
    failed, events = run_json(inv, "--to", "6.12")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    recap = recap_versions(events)
    assert recap["hahosts-g1a"] is None  # unknown: the installer failed part way, never "still 6.11"
    (finished,) = [e for e in events if e["kind"] == "run-finished"]
    assert finished["data"]["fleet"]["hahosts-g1a"]["unknown"].startswith("installer for 6.12 exited 1")
    assert recap["hahosts-g1b"] == "6.11.0" and recap["hahosts-main"] == "6.12.0"

    fleet.server("hahosts-g1a").clear_faults()
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, "hahosts").values()) == {"6.12.0"}
    assert completed_installs(fleet).count(("hahosts-g1a", "6.12.0")) == 1
    assert order_violations(fleet) == []


def test_a_stale_inventory_version_is_overruled_by_the_server_and_the_difference_reported(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml", versions=True)
    text = inv.read_text()
    at = text.index("name: single-h1")
    inv.write_text(text[:at] + text[at:].replace("version: 6.11.0", "version: 6.10.0", 1))
    planned = xsoar_mt(
        "upgrade", "plan", "-i", str(inv), "--to", "6.12", "--probe", "-o", "json", cwd=tmp_path
    )
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["hops"] == ["6.12"]  # from 6.11, as h1 reports, not 6.10
    result = run(inv, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "inventory says 6.10.0, single-h1 reports 6.11.0" in result.stdout
    assert set(versions(fleet, "single").values()) == {"6.12.0"}


def test_plan_probe_plans_an_inventory_without_versions_and_plan_without_it_names_the_way(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.reset(versions={"drmain-h1": "6.10.0", "drmain-p": "6.10.0", "drmain-s": "6.10.0"})
    inv = fleet.inventory("drmain", tmp_path / "inventory.yaml")
    offline = xsoar_mt("upgrade", "plan", "-i", str(inv), "--to", "6.12", cwd=tmp_path)
    assert offline.returncode == 3
    assert (
        "no version known for drmain-p, drmain-s, drmain-h1" in offline.stderr and "--probe" in offline.stderr
    )
    probed = xsoar_mt(
        "upgrade", "plan", "-i", str(inv), "--to", "6.12", "--probe", "-o", "json", cwd=tmp_path
    )
    assert probed.returncode == 0, probed.stderr
    plan = json.loads(probed.stdout)
    assert plan["hops"] == ["6.11", "6.12"]
    assert plan["basis"]["versions"] == {"drmain-h1": "6.10.0", "drmain-p": "6.10.0", "drmain-s": "6.10.0"}
    assert not [e for e in fleet.events() if e["event"] in ("stop", "install_begin", "start")]
    again = xsoar_mt("upgrade", "plan", "-i", str(inv), "--to", "6.12", "-o", "json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the local record of the probe now plans without SSH
    assert json.loads(again.stdout)["hops"] == ["6.11", "6.12"]


def test_a_resume_reads_a_stopped_servers_version_from_its_marker(fleet: Fleet, tmp_path: Path) -> None:
    fleet.server("single-h1").set_fault(start_fails=True)
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    assert run(inv, "--to", "6.12").returncode == 6
    fleet.server("single-h1").clear_faults()
    (inv.parent / "state" / "deployments").rename(
        inv.parent / "elsewhere"
    )  # no local record: only the marker
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "single-h1: 6.12.0 [marker] (stopped)" in resumed.stdout
    assert [s for s, _ in installs(fleet)].count("single-h1") == 1
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert order_violations(fleet) == []
