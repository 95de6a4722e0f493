"""Running xsoar-mt the way an operator's shell does: `python -m xsoar_mt` in its own process, with this
checkout on its path (real argv, real stdout and stderr, real exit code, real logging set-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def xsoar_mt(*args: str, cwd: Path, timeout: float = 180, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "xsoar_mt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        check=False,
    )
