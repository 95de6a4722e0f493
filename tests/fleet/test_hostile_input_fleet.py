"""Hostile input on real servers: values that are shell, saved plans that were edited or asked for
something else, a sha256 pin the download contradicts, a bastion whose key is new or unknown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.runs import changes, journal, run, versions, xsoar_mt

pytestmark = pytest.mark.fleet

BACKUP = "xsoar-mt/b$(touch X)"  # relative paths land in each server's home on the fleet
SPACED = "xsoar mt"


@pytest.fixture(autouse=True)
def installers(fleet: Fleet) -> None:
    for release in ("6.11", "6.12"):
        fleet.add_installer(release)


# -- values that are shell --------------------------------------------------------------------------


def test_a_backup_dir_holding_a_command_and_an_installer_dir_with_a_space_are_taken_literally(
    fleet: Fleet, tmp_path: Path
) -> None:
    pins = {r: fleet.installer_sha256(r) for r in ("6.11", "6.12")}
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml",
                                installer={"directory": SPACED, "sha256": pins}, commands={"backup_dir": BACKUP})  # fmt: skip
    result = run(inventory, "--to", "6.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    for server in fleet.servers("single"):
        home = server.home
        assert not [p for p in home.rglob("X")], f"the command substitution ran on {server.name}"
        assert list((home / BACKUP).glob("demisto-*.tar.gz")), (
            f"no backup in the literal directory on {server.name}"
        )
        assert (home / SPACED / "demisto-6.12.sh").stat().st_mode & 0o100  # downloaded, checked, executable


def test_a_download_that_does_not_match_its_sha256_pin_fails_its_step_exit_6(
    fleet: Fleet, tmp_path: Path
) -> None:
    inventory = fleet.inventory(
        "single", tmp_path / "inventory.yaml", installer={"sha256": {"6.12": "0" * 64}}
    )
    result = run(inventory, "--to", "6.12")
    assert result.returncode == 6, result.stdout + result.stderr
    assert "expected 0000000000000000" in result.stdout + result.stderr
    assert changes(fleet) == []  # refused while preparing: nothing was stopped or installed
    for server in fleet.servers("single"):
        installer = server.home / "xsoar-mt" / "demisto-6.12.sh"
        assert not installer.exists() or not installer.stat().st_mode & 0o111  # never made executable


# -- saved plans --------------------------------------------------------------------------------------


def make_plan(inventory: Path, out: Path, *args: str) -> dict[str, Any]:
    made = xsoar_mt(
        "upgrade", "plan", "-i", str(inventory), "--probe", "--out", str(out), *args, cwd=inventory.parent
    )
    assert made.returncode == 0, made.stdout + made.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_a_saved_plan_runs_step_for_step_as_saved(fleet: Fleet, tmp_path: Path) -> None:
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    saved = make_plan(inventory, tmp_path / "plan.json", "--to", "6.12")
    result = run(inventory, "--plan", str(tmp_path / "plan.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    started = [r for r in journal(inventory) if r["kind"] == "step-started"]
    ran = {r["step"]: (r["servers"], r["data"]["command"]) for r in started}
    planned = [s for p in saved["phases"] for s in p["steps"]]
    assert len(started) == len(ran) == len(planned)  # each step once, none added
    for number, step in enumerate(planned, 1):  # one by one: the same servers, the same command
        assert ran.get(step["id"]) == (step["servers"], step["command"]), f"step {number} ({step['id']})"
    # In the saved order, except that prepare steps run side by side (all before anything else).
    order = [r["step"] for r in started]
    prepare = [s["id"] for s in planned if s["phase"] == "prepare"]
    assert sorted(order[: len(prepare)]) == sorted(prepare)
    assert order[len(prepare) :] == [s["id"] for s in planned if s["phase"] != "prepare"]


@pytest.mark.parametrize(
    ("made_with", "run_with", "expected"),
    [
        (("--to", "6.11"), ("--to", "6.12"), "target differs: the plan goes to 6.11, --to asks for 6.12"),
        (
            ("--to", "6.12"),
            ("--only", "main"),
            "scope differs: the plan covers everything, the command line main",
        ),
    ],
)
def test_a_plan_run_with_another_target_or_scope_is_refused_and_changes_nothing(
    fleet: Fleet, tmp_path: Path, made_with: tuple[str, ...], run_with: tuple[str, ...], expected: str
) -> None:
    for server in fleet.servers("single"):
        server.set_version("6.10.0")  # so that a plan to 6.11 has work to do too
    fleet.add_installer("6.10")
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    make_plan(inventory, tmp_path / "plan.json", *made_with)
    result = run(inventory, "--plan", str(tmp_path / "plan.json"), *run_with)
    assert result.returncode == 8, result.stdout + result.stderr
    assert expected in result.stderr
    assert changes(fleet) == []


def test_an_edited_step_in_a_saved_plan_is_refused_and_changes_nothing(fleet: Fleet, tmp_path: Path) -> None:
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml")
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.12")
    stop = next(s for p in data["phases"] for s in p["steps"] if s["action"] == "stop")
    stop["command"] = "touch PWNED && sudo service demisto stop"
    plan.write_text(json.dumps(data))
    result = run(inventory, "--plan", str(plan))
    assert result.returncode == 8, result.stdout + result.stderr
    assert (
        f"({stop['id']}): command differs: plan 'touch PWNED && sudo service demisto stop'" in result.stderr
    )
    assert changes(fleet) == []
    assert not [p for s in fleet.servers("single") for p in s.home.rglob("PWNED")]


# -- a bastion whose key is new or unknown ------------------------------------------------------------


def test_a_new_bastion_key_is_written_once_and_an_unknown_one_is_named_as_the_bastions(
    fleet: Fleet, tmp_path: Path
) -> None:
    jump = fleet.server("drmain-h1")  # another deployment's server stands in for the bastion
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(line for line in fleet.known_hosts.read_text().splitlines(True) if jump.address not in line)
    )
    ssh = {
        "bastion": {"host": jump.address, "port": jump.ssh_port},
        "config_file": None,
        "known_hosts": str(known),
    }
    inventory = fleet.inventory("single", tmp_path / "inventory.yaml", ssh=ssh)

    refused = run(inventory, "--to", "6.12", "--dry-run", "--probe")
    assert refused.returncode == 7, refused.stdout + refused.stderr
    named = (
        jump.address if jump.ssh_port == 22 else f"[{jump.address}]:{jump.ssh_port}"
    )  # as known_hosts names it
    assert f"unknown host key of the bastion {named}" in refused.stderr
    assert "single-main: unknown host key (" not in refused.stderr  # never claimed to be the server's

    accepted = run(inventory, "--to", "6.12", "--dry-run", "--probe", "--accept-new-host-keys")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    written = [line for line in known.read_text().splitlines() if jump.address in line]
    assert len(written) == 1, written  # once, though all three servers went through it at once
