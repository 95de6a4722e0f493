"""Every exit code of docs/reference/exit-codes.md, produced through the command line, and the table
itself held to the code: a documented code without a case here, or a code `ExitCode` and the table
disagree on, fails. Codes that need real servers run on the fleet (marked `fleet`)."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli.loopback import silent_listener, write_inventory
from xsoar_mt.cli import app
from xsoar_mt.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"
TABLE = ROOT / "docs" / "reference" / "exit-codes.md"
LINK = "https://download.demisto.com/download-params/?token=t0ken&email=a@b.c&eula=accept"
runner = CliRunner()

Produce = Callable[[Path, pytest.FixtureRequest], tuple[int, str]]


@dataclass(frozen=True)
class Case:
    code: ExitCode
    what: str
    produce: Produce | None = None
    on_the_fleet: str = ""  # instead of `produce`: the fleet test (path::name) that produces the code


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def example(tmp_path: Path, old: str = "", new: str = "") -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(EXAMPLE.read_text().replace(old, new) if old else EXAMPLE.read_text())
    return path


def internal(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[int, str]:
    monkeypatch = request.getfixturevalue("monkeypatch")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("xsoar_mt.usecases.plan.make_plan", broken)
    code, output = cli("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12")
    assert "error: internal error (RuntimeError): a bug" in output
    assert "hint: run again with --debug and report the traceback" in output
    return code, output


def stale(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[int, str]:
    inventory, plan = example(tmp_path), tmp_path / "plan.json"
    assert cli("upgrade", "plan", "-i", str(inventory), "--to", "6.11", "--out", str(plan))[0] == 0
    inventory.write_text(inventory.read_text().replace("# An example", "# Edited: an example"))
    return cli("upgrade", "run", "-i", str(inventory), "--plan", str(plan), "--dry-run")


def locked(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[int, str]:
    from xsoar_mt.inventory import load_inventory
    from xsoar_mt.known import deployment_key
    from xsoar_mt.lock import RunLock

    inventory = example(tmp_path)
    RunLock(tmp_path / "state", deployment_key(load_inventory(inventory))).acquire("20260101-000000-aaaa")
    env = {"XSOAR_DOWNLOAD_LINK": LINK, "XSOAR_SUDO_PASSWORD": "not-used-here"}
    return cli("upgrade", "run", "-i", str(inventory), "--to", "6.11", "--yes",
               "--state-dir", str(tmp_path / "state"), env=env)  # fmt: skip


def interrupted(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[int, str]:
    """Ctrl-C while preflight waits for a server that accepted the connection and says nothing."""
    with silent_listener() as (port, accepted):
        inventory = write_inventory(tmp_path, ssh_port=port)
        process = subprocess.Popen(
            [sys.executable, "-m", "xsoar_mt", "preflight", "-i", str(inventory), "--to", "6.11"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert accepted.wait(30), "the preflight never connected"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    return process.returncode, output


def closed_pipe(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[int, str]:
    """`upgrade plan --detail | head -1`: the reader goes away after one line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "xsoar_mt", "upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "--detail"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read().decode()
    process.wait(timeout=60)
    assert first.startswith(b"Upgrade plan for acme-mssp")
    assert errors == "", errors  # no traceback, no message
    return process.returncode, errors


def nothing_to_resume(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[int, str]:
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.chdir(tmp_path)
    code, output = cli(
        "upgrade", "run", "-i", str(EXAMPLE), "--resume", "latest", "--yes", "--state-dir", "empty"
    )
    assert f"nothing to resume: no run of this deployment under {tmp_path / 'empty' / 'runs'}" in output
    assert "--state-dir" in output and "$XSOAR_MT_STATE_DIR" in output
    return code, output


def on_loopback(*args: str) -> Produce:
    """A command against servers on loopback ports where nothing listens."""

    def produce(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[int, str]:
        inventory = write_inventory(tmp_path)
        return cli(args[0], "-i", str(inventory), *args[1:])

    return produce


CASES = [
    Case(ExitCode.OK, "a plan with work to do", lambda t, r: cli("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12")),
    Case(ExitCode.OK, "a closed pipe (upgrade plan --detail | head)", closed_pipe),
    Case(ExitCode.INTERNAL, "a bug (a command function that raises)", internal),
    Case(ExitCode.USAGE, "nothing to resume in the state directory", nothing_to_resume),
    Case(ExitCode.USAGE, "an unknown --output", lambda t, r: cli("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "-o", "xml")),
    Case(ExitCode.USAGE, "upgrade run with neither --to, --plan nor --resume",
         lambda t, r: cli("upgrade", "run", "-i", str(EXAMPLE), "--dry-run")),
    Case(ExitCode.INVALID_INVENTORY, "an invalid inventory",
         lambda t, r: cli("inventory", "validate", str(example(t, "database: bolt", "databse: bolt")))),
    Case(ExitCode.INVALID_INVENTORY, "a missing inventory", lambda t, r: cli("inventory", "validate", str(t / "none.yaml"))),
    Case(ExitCode.PLAN_REFUSED, "an 8.x target", lambda t, r: cli("upgrade", "plan", "-i", str(EXAMPLE), "--to", "8.0")),
    Case(ExitCode.PLAN_REFUSED, "a target before 6.x", lambda t, r: cli("upgrade", "plan", "-i", str(EXAMPLE), "--to", "5.5")),
    Case(ExitCode.NOTHING_TO_DO, "every server already on the target",
         lambda t, r: cli("upgrade", "plan", "-i", str(example(t, "version: 6.10.0", "version: 6.12.0")), "--to", "6.12")),
    Case(ExitCode.STEP_FAILED, "a download that does not match its sha256 pin",
         on_the_fleet="tests/fleet/test_hostile_input_fleet.py::test_a_download_that_does_not_match_its_sha256_pin_fails_its_step_exit_6"),
    Case(ExitCode.PREFLIGHT_FAILED, "servers that cannot be reached", on_loopback("preflight", "--to", "6.11")),
    Case(ExitCode.STALE_PLAN, "a saved plan whose inventory changed", stale),
    Case(ExitCode.VALIDATION_FAILED, "servers that do not answer", on_loopback("validate", "--to", "6.11")),
    Case(ExitCode.LOCKED, "a run while another holds the lock", locked),
    Case(ExitCode.WINDOW_CLOSED, "a dry run whose maintenance window closes before the first group",
         lambda t, r: cli("upgrade", "run", "-i", str(EXAMPLE), "--to", "6.12", "--dry-run", "--window-end", "+1m")),
    Case(ExitCode.DECLINED, "the operator answers no at the confirmation prompt",
         on_the_fleet="tests/fleet/test_run_fleet.py::test_a_declined_prompt_shows_the_plan_changes_nothing_and_exits_12"),
    Case(ExitCode.INTERRUPTED, "Ctrl-C while preflight waits on a server", interrupted),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.code.value}-{c.what}") for c in CASES if c.produce])
def test_each_exit_code_is_produced_through_the_cli(
    case: Case, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert case.produce is not None
    code, output = case.produce(tmp_path, request)
    assert code == case.code, output
    assert "Traceback" not in output


def documented() -> dict[int, str]:
    rows = re.findall(r"^\| *(\d+) *\| *`(\w+)` *\|", TABLE.read_text(), re.MULTILINE)
    return {int(code): name for code, name in rows}


def test_every_documented_exit_code_has_a_case_that_produces_it() -> None:
    table = documented()
    assert table == {c.value: c.name for c in ExitCode}, "exit-codes.md and ExitCode disagree"
    missing = sorted(set(table) - {c.code.value for c in CASES})
    assert missing == [], f"documented exit codes no case produces: {missing}"


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.code.value}") for c in CASES if c.on_the_fleet])
def test_a_code_produced_on_the_fleet_names_a_fleet_test_that_exists(case: Case) -> None:
    path, name = case.on_the_fleet.split("::")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    test = getattr(module, name)
    marks = [getattr(module, "pytestmark", []), getattr(test, "pytestmark", [])]
    names = {m.name for found in marks for m in (found if isinstance(found, list) else [found])}
    assert "fleet" in names
    assert re.search(rf"== {case.code.value}\b", inspect.getsource(test))  # it checks this very code


def test_the_table_is_read_from_the_document_and_would_notice_a_new_code() -> None:
    # The check above is only as good as its reading of the table: a row added to the document shows up.
    text = TABLE.read_text().replace("| 130 |", "| 131 | `NEW` | meaning | cause |\n| 130 |")
    rows = re.findall(r"^\| *(\d+) *\| *`(\w+)` *\|", text, re.MULTILINE)
    assert ("131", "NEW") in rows and len(rows) == len(documented()) + 1
