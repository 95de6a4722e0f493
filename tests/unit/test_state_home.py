"""Where local state lives by default: never tied to the working directory."""

from __future__ import annotations

from pathlib import Path

from xsoar_mt.state_home import default_state_dir, state_home


def test_the_state_directory_flag_wins_and_is_made_absolute(tmp_path: Path) -> None:
    home = state_home(Path("here"), {"XSOAR_MT_STATE_DIR": "/elsewhere"}, tmp_path)
    assert home.path == Path.cwd() / "here" and home.note is None


def test_the_environment_variable_comes_before_an_old_directory_in_the_working_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / ".xsoar-mt").mkdir()
    home = state_home(None, {"XSOAR_MT_STATE_DIR": str(tmp_path / "env")}, tmp_path)
    assert home.path == tmp_path / "env" and home.note is None


def test_without_either_the_xdg_state_directory_is_used_whatever_the_working_directory(
    tmp_path: Path,
) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    assert state_home(None, env, tmp_path / "a").path == state_home(None, env, tmp_path / "b").path
    assert state_home(None, env, tmp_path).path == tmp_path / "xdg" / "xsoar-mt"
    assert default_state_dir({"HOME": str(tmp_path)}) == Path.home() / ".local" / "state" / "xsoar-mt"


def test_a_relative_xdg_state_home_is_ignored_as_the_xdg_spec_says(tmp_path: Path) -> None:
    assert state_home(None, {"XDG_STATE_HOME": "rel"}, tmp_path).path == Path.home() / ".local/state/xsoar-mt"


def test_an_earlier_release_s_directory_in_the_working_directory_is_still_found_with_a_note(
    tmp_path: Path,
) -> None:
    (tmp_path / ".xsoar-mt").mkdir()
    home = state_home(None, {"XDG_STATE_HOME": str(tmp_path / "xdg")}, tmp_path)
    assert home.path == tmp_path / ".xsoar-mt"
    assert home.note is not None and "\n" not in home.note
    assert str(tmp_path / ".xsoar-mt") in home.note and str(tmp_path / "xdg" / "xsoar-mt") in home.note
