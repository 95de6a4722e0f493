"""Recovery after a failed night, on real OpenSSH servers: what `--resume` checks before it says done."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.runs import REPO, installs, journal, order_violations, run, versions
from tests.recap_check import assert_recap_agrees_with_journal

pytestmark = pytest.mark.fleet


@pytest.fixture(autouse=True)
def installers(fleet: Fleet) -> None:
    fleet.add_installer("6.12")


def since_resume(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start = max(i for i, r in enumerate(records) if r["kind"] == "run-resumed")
    return records[start:]


def test_a_dr_secondary_that_never_got_healthy_is_gated_healthy_before_its_primary_is_installed(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("drhosts-d1s").set_fault(health_503_seconds=10**6)
    inv = fleet.inventory("drhosts", tmp_path / "inventory.yaml", health={"timeout": 3, "interval": 0.2})
    failed = run(inv, "--to", "6.12")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    assert "drhosts-d1p" not in [
        s for s, _ in installs(fleet)
    ]  # never installed while its secondary is unhealthy

    fleet.server("drhosts-d1s").clear_faults()
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    steps = [r["step"] for r in since_resume(journal(inv)) if r["kind"] == "step-finished"]
    assert steps.index("d1@6.12/wait-healthy/drhosts-d1s") < steps.index("d1@6.12/install/drhosts-d1p")
    assert [s for s, _ in installs(fleet)].count("drhosts-d1s") == 1
    assert order_violations(fleet) == []


def test_a_resume_with_nothing_left_to_install_still_gates_every_server_and_validates(
    fleet: Fleet, tmp_path: Path
) -> None:
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    fleet.server("single-main").set_fault(commands=[{"match": "for t in", "action": "fail", "times": 1000}])
    failed = run(inv, "--to", "6.12")
    assert failed.returncode == 9, failed.stdout + failed.stderr  # only validation failed
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    still = run(inv, "--resume", "latest")  # the cause is not fixed: validation runs again and fails again
    assert still.returncode == 9, still.stdout + still.stderr
    assert "validate/tenants/single-main" in still.stdout

    fleet.server("single-main").clear_faults()
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    done = [
        r for r in since_resume(journal(inv)) if r["kind"] == "step-finished" and r["data"]["outcome"] == "ok"
    ]
    gated = {s for r in done if "/wait-healthy/" in r["step"] for s in r["servers"]}
    assert gated == {"single-main", "single-h1", "single-h2"}
    assert "validate/tenants/single-main" in [r["step"] for r in done]
    assert len(installs(fleet)) == 3  # nothing installed again


def test_the_printed_resume_command_repeats_the_runs_flags_and_works_as_printed_without_a_terminal(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h1").set_fault(installer_fails=True)
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    flags = [
        "--yes",
        "--state-dir",
        str(tmp_path / "elsewhere"),
        "--parallel",
        "2",
        "--ignore-preflight-errors",
        "system",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "1000"}
    failed = subprocess.run([sys.executable, "-m", "xsoar_mt", "upgrade", "run", "-i", str(inv), "--to", "6.12", *flags],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env, check=False)  # fmt: skip
    assert failed.returncode == 6, failed.stdout + failed.stderr
    line = next(line for line in failed.stdout.splitlines() if "--resume" in line)
    words = shlex.split(line[line.index("xsoar-mt upgrade run") :])
    for flag in ("--yes", "--state-dir", "--parallel", "--ignore-preflight-errors"):
        assert flag in words, line

    fleet.server("single-h1").clear_faults()
    resumed = subprocess.run([sys.executable, "-m", "xsoar_mt", *words[1:]], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300, stdin=subprocess.DEVNULL, env=env, check=False)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert order_violations(fleet) == []


def test_an_installer_killed_on_the_server_fails_its_step_as_vanished_and_resume_installs_again(
    fleet: Fleet, tmp_path: Path
) -> None:
    import signal

    from tests.fleet.remote import read_pid
    from tests.fleet.runs import completed_installs, start_run, wait_until

    fleet.server("single-h1").set_fault(install_seconds=30)
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    process = start_run(inv, "--to", "6.12")
    began = fleet.server("single-h1").home / "xsoar-mt" / "install-6.12.pid"  # xsoar-mt's own record there

    def kill_installer() -> bool:
        pid = (
            read_pid(began)
            if began.exists() and read_pid(fleet.server("single-h1").dir / "state" / "install.pid")
            else None
        )
        if pid is None:
            return False
        os.killpg(
            pid, signal.SIGKILL
        )  # the whole detached session, as a reboot would: no exit code is written
        return True

    wait_until(process, kill_installer, "the install on single-h1")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 6, out + err
    assert "is gone and left no exit code" in out

    fleet.server("single-h1").clear_faults()
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert completed_installs(fleet).count(("single-h1", "6.12.0")) == 1
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert order_violations(fleet) == []


def test_resume_latest_finds_the_run_from_another_directory_in_the_default_state_directory(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.server("single-h1").set_fault(installer_fails=True)
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k != "XSOAR_MT_STATE_DIR"
    }  # the default, as an operator has it
    env.update(PYTHONPATH=str(REPO), COLUMNS="1000", XDG_STATE_HOME=str(tmp_path / "xdg"))

    def xsoar_mt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xsoar_mt", "upgrade", "run", "-i", str(inv), "--yes", *args],
                              cwd=cwd, capture_output=True, text=True, timeout=300, env=env, check=False)  # fmt: skip

    failed = xsoar_mt("--to", "6.12", cwd=first)
    assert failed.returncode == 6, failed.stdout + failed.stderr
    state = tmp_path / "xdg" / "xsoar-mt"
    assert list((state / "runs").glob("*/journal.jsonl")) and not (first / ".xsoar-mt").exists()
    assert_recap_agrees_with_journal(state, failed.stdout)

    fleet.server("single-h1").clear_faults()
    resumed = xsoar_mt("--resume", "latest", cwd=other)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, "single").values()) == {"6.12.0"}
    assert_recap_agrees_with_journal(state, resumed.stdout)
