"""The run lock held on the deployment itself, on real OpenSSH servers: two operators, two machines."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from tests.fleet.fleet import Fleet
from tests.fleet.runs import installs, order_violations, run, start_run, versions, wait_until, xsoar_mt

pytestmark = pytest.mark.fleet


@pytest.fixture(autouse=True)
def installers(fleet: Fleet) -> None:
    fleet.add_installer("6.12")


def lock_dir(fleet: Fleet) -> Path:
    return fleet.server("single-main").home / "xsoar-mt" / "run.lock"


def second_operator(inv: Path, tmp_path: Path) -> Path:
    """A copy of the inventory in another folder: another operator's machine and state directory."""
    other = tmp_path / "other-operator"
    other.mkdir()
    return Path(shutil.copy(inv, other / "inventory.yaml"))


def test_a_second_operator_with_a_copy_of_the_inventory_is_refused_naming_the_first(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-main").set_fault(install_seconds=6)
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    first = start_run(inv, "--to", "6.12")
    wait_until(first, lambda: bool(installs(fleet)), "the first run's first install")
    owner = json.loads((lock_dir(fleet) / "owner.json").read_text())
    second = run(second_operator(inv, tmp_path), "--to", "6.12")
    assert second.returncode == 10, second.stdout + second.stderr
    assert f"run {owner['run_id']} by {owner['operator']} on {owner['machine']}" in second.stderr
    assert f"--force-unlock {owner['run_id']}" in second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert not lock_dir(fleet).exists()  # released by its owner at the end
    assert [s for s, _ in installs(fleet)] == ["single-main", "single-h1", "single-h2"]


def test_a_lock_left_by_a_dead_run_is_broken_only_with_its_id_then_another_operator_runs(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-main").set_fault(install_seconds=3)
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    dead = start_run(inv, "--to", "6.12")
    wait_until(dead, lambda: bool(installs(fleet)), "the run's first install")
    dead.send_signal(signal.SIGKILL)  # the laptop closed: no release, no recap
    dead.communicate(timeout=30)
    run_id = json.loads((lock_dir(fleet) / "owner.json").read_text())["run_id"]
    fleet.server("single-main").clear_faults()

    other = second_operator(inv, tmp_path)
    refused = run(other, "--to", "6.12")
    assert refused.returncode == 10 and run_id in refused.stderr
    wrong = xsoar_mt("upgrade", "run", "-i", str(other), "--force-unlock", "not-that-run", cwd=other.parent)
    assert wrong.returncode == 10 and f"belongs to run {run_id}" in wrong.stderr
    broken = xsoar_mt("upgrade", "run", "-i", str(other), "--state-dir", str(other.parent / "state"),
                      "--force-unlock", run_id, cwd=other.parent)  # fmt: skip
    assert broken.returncode == 0, broken.stderr
    assert f"lock of run {run_id} broken on the deployment (single-main)" in broken.stdout
    finished = run(other, "--to", "6.12")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert order_violations(fleet) == []


def test_a_run_never_releases_a_lock_another_run_took_after_a_force_unlock(
    fleet: Fleet, tmp_path: Path
) -> None:
    from xsoar_mt.lock import DeploymentLock, LockHeld
    from xsoar_mt.usecases.session import Session

    with Session(fleet.inventory("single", tmp_path / "inventory.yaml"), tmp_path / "state") as session:
        inventory, pool = session.inventory, session.shells
        first = DeploymentLock(inventory, pool("single-main"), "run-1")
        first.acquire()
        assert DeploymentLock(inventory, pool("single-main"), "run-2").force_unlock("run-1")
        second = DeploymentLock(inventory, pool("single-main"), "run-2")
        second.acquire()
        first.release()  # run-1 ends after its lock was broken and taken
        assert json.loads((lock_dir(fleet) / "owner.json").read_text())["run_id"] == "run-2"
        with pytest.raises(LockHeld, match="run run-2"):
            DeploymentLock(inventory, pool("single-main"), "run-3").acquire()
        second.release()
        assert not lock_dir(fleet).exists()


def _reordered(inv: Path, tmp_path: Path, change: str) -> Path:
    """Another operator's copy of the inventory: main's HA servers listed the other way round, or the DR
    roles swapped (after a failover)."""
    data = yaml.safe_load(inv.read_text())
    if change == "ha":
        data["main"]["ha"]["servers"].reverse()
    else:
        dr = data["main"]["dr"]
        dr["primary"], dr["secondary"] = dr["secondary"], dr["primary"]
    other = tmp_path / "other-operator"
    other.mkdir()
    (other / "inventory.yaml").write_text(yaml.safe_dump(data))
    return other / "inventory.yaml"


@pytest.mark.parametrize(("deployment", "change"), [("hamain", "ha"), ("drmain", "dr")])
def test_two_copies_of_the_inventory_that_list_main_differently_lock_the_same_server(
    fleet: Fleet, tmp_path: Path, deployment: str, change: str
) -> None:
    from xsoar_mt.lock import DeploymentLock, LockHeld, lock_server
    from xsoar_mt.usecases.session import Session

    first_path = fleet.inventory(deployment, tmp_path / "inventory.yaml")
    second_path = _reordered(first_path, tmp_path, change)
    with Session(first_path, tmp_path / "state") as one, Session(second_path, tmp_path / "state2") as two:
        first_inv, second_inv = one.inventory, two.inventory
        assert lock_server(first_inv) == lock_server(second_inv)
        first = DeploymentLock(first_inv, one.shells(lock_server(first_inv)), "run-1")
        first.acquire()
        with pytest.raises(LockHeld, match="run run-1"):
            DeploymentLock(second_inv, two.shells(lock_server(second_inv)), "run-2").acquire()
        first.release()


def test_a_holder_whose_owner_file_carries_escapes_and_forged_lines_is_named_without_them(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    lock_dir(fleet).mkdir(parents=True)
    lock_dir(fleet).parent.chmod(0o700)
    owner = {"run_id": "r-1 $(x)\x1b]0;owned\x07", "operator": "eve\r\nage=99999\x1b[2J", "machine": "m", "pid": 10**30,
             "started": "2026-01-01T00:00:00Z"}  # fmt: skip
    (lock_dir(fleet) / "owner.json").write_text(json.dumps(owner) + "\n")
    refused = run(inv, "--to", "6.12")
    assert refused.returncode == 10, refused.stdout + refused.stderr
    assert not any(c in refused.stderr for c in "\x1b\x07\r")
    assert "by eveage=99999[2J on m (pid ?)" in refused.stderr
    assert "--force-unlock 'r-1 $(x)]0;owned'" in refused.stderr
    assert installs(fleet) == []
