"""Every test runs in a folder of its own, so xsoar-mt's default state directory (`.xsoar-mt` in the
working directory) is never shared between tests, nor left in the checkout. Property tests have no
deadline: they assert behaviour, not speed, and `make test` runs them beside fleet tests on 2 cores."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("xsoar-mt", deadline=None)
settings.load_profile("xsoar-mt")


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
