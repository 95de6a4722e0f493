"""Every test runs in a folder of its own, so xsoar-mt's default state directory (`.xsoar-mt` in the
working directory) is never shared between tests, nor left in the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
