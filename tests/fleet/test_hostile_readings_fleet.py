"""A server whose marker and installer records were written to mislead: section markers, `\\r`, non-ASCII
digits, huge numbers and escape sequences. On real OpenSSH servers, `status`, `upgrade plan --probe` and
`upgrade run` read its true version from its service, or report it unknown with the reason; nothing
crashes (no exit 1, no traceback), nothing from it reaches the terminal raw, and the other servers go on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.runs import order_violations, run, versions, xsoar_mt

pytestmark = pytest.mark.fleet

HOSTILE = "single-h1"
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m"


@pytest.fixture(autouse=True)
def installers(fleet: Fleet) -> None:
    for release in ("6.11", "6.12"):
        fleet.add_installer(release)


def plant(fleet: Fleet) -> None:
    """Records on `HOSTILE` that each once forged a field or crashed the reader."""
    directory = fleet.server(HOSTILE).home / "xsoar-mt"  # the fleet inventory's installer.directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "state.json").write_text(
        '{"release": "6.14", "version": "6.14.0", "at": 1}\n'
        '__xsoar_mt_version-begin\n{"demistoVersion": "6.14.0"}\n__xsoar_mt_version-rc=0\n'
        "__xsoar_mt_version=eyJkZW1pc3RvVmVyc2lvbiI6ICI2LjE0LjAifQ==\r__xsoar_mt_version-rc=0\n" + ESCAPES
    )
    (directory / "install-6.13.pid").write_text("\u00b2\r__xsoar_mt_installer=6.14 1 1 0 - 1 2\n" + ESCAPES)
    (directory / "install-6.13.rc").write_text("9" * 400 + "\n")
    (directory / "install-6.13.boot").write_text(ESCAPES)
    (directory / "install-old.pid").write_text("1\n")
    (directory / "install-old.rc").write_text("0\n")


def no_crash(result: object) -> None:
    out = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.returncode != 1, out  # type: ignore[attr-defined]
    assert "Traceback" not in out and "internal error" not in out.lower(), out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out, repr(out)


def test_status_and_plan_read_the_true_version_of_a_running_server_whose_records_lie(
    fleet: Fleet, tmp_path: Path
) -> None:
    plant(fleet)
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    status = xsoar_mt("status", "-i", str(inventory), "-o", "json", cwd=tmp_path)
    no_crash(status)
    rows = {s["server"]: s for s in json.loads(status.stdout)["servers"]}
    assert (rows[HOSTILE]["version"], rows[HOSTILE]["source"]) == ("6.11.0", "api")  # not the forged 6.14.0
    assert {rows[s]["version"] for s in ("single-main", "single-h2")} == {"6.11.0"}
    plan = xsoar_mt(
        "upgrade", "plan", "-i", str(inventory), "--to", "6.12", "--probe", "-o", "json", cwd=tmp_path
    )
    no_crash(plan)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["basis"]["versions"][HOSTILE] == "6.11.0"


def test_a_run_upgrades_every_server_though_one_holds_hostile_records(fleet: Fleet, tmp_path: Path) -> None:
    plant(fleet)
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    result = run(inventory, "--to", "6.12")
    no_crash(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert order_violations(fleet) == []


def test_a_stopped_server_whose_records_lie_is_unknown_with_the_reason_and_the_others_are_read(
    fleet: Fleet, tmp_path: Path
) -> None:
    plant(fleet)
    fleet.server(HOSTILE).stop_service()
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    status = xsoar_mt("status", "-i", str(inventory), "-o", "json", cwd=tmp_path)
    no_crash(status)
    rows = {s["server"]: s for s in json.loads(status.stdout)["servers"]}
    assert rows[HOSTILE]["version"] is None, rows[HOSTILE]
    assert "cannot be read" in json.dumps(rows[HOSTILE])
    assert {rows[s]["version"] for s in ("single-main", "single-h2")} == {"6.11.0"}
    plan = xsoar_mt("upgrade", "plan", "-i", str(inventory), "--to", "6.12", "--probe", cwd=tmp_path)
    no_crash(plan)
    assert plan.returncode == 7, plan.stdout + plan.stderr
    assert f"{HOSTILE}: version unknown (its installer records cannot be read" in plan.stderr
    assert "single-h2: version unknown" not in plan.stderr
