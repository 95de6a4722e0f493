"""Golden files: compared by the tests, rewritten only by `make golden`, never under CI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest


def update_requested(environ: Mapping[str, str]) -> bool:
    """Whether to rewrite the golden files: only XSOAR_MT_UPDATE_GOLDEN=1, and never under CI."""
    asked = environ.get("XSOAR_MT_UPDATE_GOLDEN", "")
    if asked and environ.get("CI", "").lower() not in ("", "0", "false"):
        raise pytest.UsageError(
            f"XSOAR_MT_UPDATE_GOLDEN={asked} under CI: CI checks the golden files and never rewrites them"
        )
    return asked == "1"


def assert_matches(text: str, golden: Path) -> None:
    """`text` is what `golden` holds (after `make golden` rewrote it, when asked)."""
    if update_requested(os.environ):
        golden.write_text(text)
    assert text == golden.read_text(), f"differs from {golden.name}; after an intended change: make golden"
