"""Fuzzing malformed inventories through the CLI: no traceback, no internal error (exit 1), every exit
code one that docs/reference/exit-codes.md documents, every error one line naming the file.

Fixed seed; 1,000 examples in `make test`, 10,000 in `make fuzz` (XSOAR_MT_FUZZ_EXAMPLES). Nothing here
opens a connection: `inventory validate`, `upgrade plan` and `upgrade run --dry-run` need none.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.fuzz.corpus import SEED, examples, inventory_bytes
from xsoar_mt.cli import app
from xsoar_mt.errors import ExitCode

DOCUMENTED = {int(c) for c in re.findall(r"^\| *(\d+) *\|", (Path(__file__).resolve().parents[2] / "docs" / "reference" / "exit-codes.md").read_text(), re.MULTILINE)}  # fmt: skip
runner = CliRunner()

COMMANDS = [
    ["inventory", "validate", "{inv}"],
    ["inventory", "validate", "{inv}", "-o", "json"],
    ["upgrade", "plan", "-i", "{inv}", "--to", "6.12"],
    ["upgrade", "plan", "-i", "{inv}", "--to", "6.11", "--only", "main"],
    ["upgrade", "run", "-i", "{inv}", "--to", "6.12", "--dry-run", "--state-dir", "{state}"],
]


def check(result_code: int, output: str) -> None:
    assert result_code != ExitCode.INTERNAL, output[-3000:]
    assert result_code in DOCUMENTED, (result_code, output[-3000:])
    assert "Traceback" not in output, output[-3000:]
    for line in output.splitlines():
        if line.startswith("error: "):
            assert len(line) <= 4100, line[:300]


@settings(
    max_examples=examples(),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@seed(SEED)
@given(content=inventory_bytes(), command=st.sampled_from(COMMANDS))
def test_a_malformed_inventory_never_crashes_the_cli(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, command: list[str]
) -> None:
    directory = tmp_path_factory.mktemp("inv")
    inventory = directory / "inventory.yaml"
    inventory.write_bytes(content)
    args = [a.replace("{inv}", str(inventory)).replace("{state}", str(directory / "state")) for a in command]
    result = runner.invoke(
        app, args, env={"XSOAR_DOWNLOAD_LINK": "https://download.demisto.com/x?token=t0ken"}
    )
    check(result.exit_code, result.output)
    if result.exit_code == ExitCode.INVALID_INVENTORY and command[0] == "inventory" and "-o" not in command:
        for line in result.stderr.splitlines():  # each problem names the file, and a line when parsed
            assert line.startswith((f"error: {inventory}", "hint: ")), line[:300]
