"""The cyclic collector paused around bulk work, and always given back as it was."""

from __future__ import annotations

import gc

import pytest

from xsoar_mt.bulk import gc_paused, without_gc_passes


def test_the_collector_is_paused_inside_and_enabled_again_after_even_on_an_error() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_pause_inside_a_pause_leaves_the_outer_one_paused() -> None:
    @without_gc_passes
    def build() -> bool:
        return gc.isenabled()

    with gc_paused():
        assert build() is False
        assert not gc.isenabled()  # the inner build did not enable it under the outer pause
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_upgrade_plan_runs_with_the_collector_paused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """The whole command, not only each build: the first pass after a build would scan all it made."""
    from pathlib import Path

    from typer.testing import CliRunner

    import xsoar_mt.usecases.plan as use_case
    from xsoar_mt.cli import app

    seen: list[bool] = []
    make_plan = use_case.make_plan

    def watched(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return make_plan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(use_case, "make_plan", watched)
    example = Path(__file__).resolve().parents[2] / "inventory.example.yaml"
    state = Path(str(tmp_path)) / "state"
    result = CliRunner().invoke(
        app, ["upgrade", "plan", "-i", str(example), "--to", "6.12", "--state-dir", str(state)]
    )
    assert result.exit_code == 0, result.output
    assert seen == [False] and gc.isenabled()
