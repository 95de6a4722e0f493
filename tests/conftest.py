"""Every test runs in a folder of its own, with xsoar-mt's default state directory ($XSOAR_MT_STATE_DIR)
in a folder of its own too: no test shares one with another, writes into the operator's
~/.local/state, or leaves anything in the checkout. Property tests have no
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
    monkeypatch.setenv("XSOAR_MT_STATE_DIR", str(tmp_path / "state-home"))
