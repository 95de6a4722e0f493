"""Fixtures of the CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.example.yaml"


@pytest.fixture()
def inventory(tmp_path: Path) -> Path:
    """A copy of inventory.example.yaml that a test may edit."""
    path = tmp_path / "inventory.yaml"
    shutil.copy(EXAMPLE, path)
    return path
