"""Running xsoar-mt against the fleet as an operator does, and reading back what the servers saw."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import operator_shell
from tests.fleet.fleet import Fleet

REPO = Path(__file__).resolve().parents[2]


def xsoar_mt(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return operator_shell.xsoar_mt(*args, cwd=cwd, timeout=timeout, env={"COLUMNS": "200"})


def run(inv: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`upgrade run` with the inventory's folder as working directory and its own state directory; when the
    run reached its recap, the recap is checked against the journal, server by server."""
    before = _journal_marks(inv.parent / "state")
    result = xsoar_mt("upgrade", "run", "-i", str(inv), "--yes", "--state-dir", str(inv.parent / "state"), *args,
                      cwd=inv.parent, timeout=timeout)  # fmt: skip
    check_recap(inv.parent / "state", before, None if "json" in args else result.stdout)
    return result


def _journal_marks(state_dir: Path) -> dict[Path, int]:
    runs = state_dir / "runs"
    return {p: p.stat().st_mtime_ns for p in runs.glob("*/journal.jsonl")} if runs.exists() else {}


def check_recap(state_dir: Path, before: dict[Path, int], printed: str | None) -> None:
    """If a run wrote its journal since `before` and reached its recap (a run-finished record), the recap
    agrees with the journal (tests/recap_check.py). A run stopped before any change writes no journal."""
    from tests.recap_check import assert_recap_agrees_with_journal, latest_run_dir

    latest = latest_run_dir(state_dir)
    if (
        latest is None
        or before.get(latest / "journal.jsonl") == (latest / "journal.jsonl").stat().st_mtime_ns
    ):
        return
    session = (latest / "journal.jsonl").read_text().split('"kind": "run-resumed"')[-1]
    if '"kind": "run-finished"' in session:
        assert_recap_agrees_with_journal(state_dir, printed)


def run_json(
    inv: Path, *args: str, timeout: float = 300
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """`upgrade run -o json`: the process and its events."""
    result = run(inv, *args, "-o", "json", timeout=timeout)
    return result, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def start_run(inv: Path, *args: str) -> subprocess.Popen[str]:
    """`upgrade run -o json` in the background, to interrupt it."""
    argv = [sys.executable, "-m", "xsoar_mt", "upgrade", "run", "-i", str(inv), "--yes",
            "--state-dir", str(inv.parent / "state"), "-o", "json", *args]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=inv.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def wait_until(process: subprocess.Popen[str], ready: Callable[[], bool], what: str,
               timeout: float = 120) -> None:  # fmt: skip
    """Wait while the run goes on until `ready()` holds; fail naming `what` (with the run's output) if the
    run ends first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()  # nothing if it ended already
            out, err = process.communicate(timeout=30)
            raise AssertionError(f"{what} never came (exit {process.returncode})\n{out}\n{err}")
        time.sleep(0.05)


def interrupt_when(process: subprocess.Popen[str], ready: Callable[[], bool], times: int = 1,
                   timeout: float = 120) -> tuple[str, str]:  # fmt: skip
    """Send SIGINT `times` once `ready()` holds, then wait for the run to end; its (stdout, stderr)."""
    argv = [str(a) for a in process.args]  # type: ignore[union-attr]  # start_run passes a list
    state_dir = Path(argv[argv.index("--state-dir") + 1]) if "--state-dir" in argv else None
    before = _journal_marks(state_dir) if state_dir else {}
    wait_until(process, ready, "the moment to interrupt", timeout)
    for _ in range(times):
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
    out, err = process.communicate(timeout=timeout)
    if state_dir is not None:
        check_recap(state_dir, before, None)
    return out, err


def events_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def installs(fleet: Fleet) -> list[tuple[str, str]]:
    """(server, release installed) for every installer that began."""
    return [(e["server"], e["version_after"]) for e in fleet.events() if e["event"] == "install_begin"]


def completed_installs(fleet: Fleet) -> list[tuple[str, str]]:
    return [(e["server"], e["version_after"]) for e in fleet.events() if e["event"] == "install_end"]


def order_violations(fleet: Fleet) -> list[Any]:
    from tests.fleet.order import check_order

    return list(check_order(fleet.events(), fleet.spec))


def versions(fleet: Fleet, deployment: str) -> dict[str, str]:
    return {s.name: s.version for s in fleet.servers(deployment)}


def recap_versions(events: list[dict[str, Any]]) -> dict[str, str | None]:
    """What the run's last report says each server runs (the run-finished event's fleet)."""
    (finished,) = [e for e in events if e["kind"] == "run-finished"]
    return {name: state["version"] for name, state in finished["data"]["fleet"].items()}


def changes(fleet: Fleet) -> list[dict[str, Any]]:
    """Every stop and installer begun that the servers saw."""
    return [e for e in fleet.events() if e["event"] in ("stop", "install_begin")]


def nothing_changed(fleet: Fleet) -> bool:
    """No service was stopped and no installer began."""
    return not changes(fleet)


def journal(inv: Path) -> list[dict[str, Any]]:
    """The records of the one run in the inventory's state directory."""
    (path,) = (inv.parent / "state" / "runs").glob("*/journal.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]
