"""The real entry point as a shell pipe runs it: `python -m xsoar_mt ARGS | cat`, for the CLI tests and
the benchmark that read what an operator reads off a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_TERMINAL = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR")


def piped(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Standard output a pipe; no COLUMNS, colour or width settings unless given in `env`."""
    environ = {k: v for k, v in os.environ.items() if k not in _TERMINAL}
    return subprocess.run(
        [sys.executable, "-m", "xsoar_mt", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**environ, "PYTHONPATH": str(REPO), **env},
    )


# Run with `python -c SSH_IMPORTS ARGS`: the CLI runs ARGS in-process, then the script prints the SSH libraries
# (fabric, paramiko, invoke) that the command imported, comma-separated: nothing for a light start.
SSH_IMPORTS = """
import sys
from typer.testing import CliRunner
from xsoar_mt.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
print(",".join(sorted({m.split(".")[0] for m in sys.modules} & {"fabric", "paramiko", "invoke"})))
"""
