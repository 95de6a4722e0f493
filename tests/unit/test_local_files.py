"""Files on the operator's machine: the state directory and the folders xsoar-mt creates under it are
0700 whatever the umask, a state directory another user could change is refused, and an input file that
is not a regular file, or is larger than the cap, is refused without being read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from xsoar_mt.errors import UsageError
from xsoar_mt.inventory import load_inventory
from xsoar_mt.journal import RunDir
from xsoar_mt.known import KnownState
from xsoar_mt.localfiles import INPUT_CAP, InputFileError, check_state_dir, private_dirs, read_input

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.example.yaml"


@pytest.fixture()
def loose_umask() -> Iterator[None]:
    old = os.umask(0o002)  # group-writable by default, as on many desktops
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("loose_umask")
def test_every_folder_xsoar_mt_creates_for_the_state_directory_is_0700(tmp_path: Path) -> None:
    state = tmp_path / "a" / "b" / "state"
    KnownState(state, load_inventory(EXAMPLE)).record_durations({"main-a": {"stop": 1.0}}, "r-1")
    for folder in (tmp_path / "a", tmp_path / "a" / "b", state, state / "deployments"):
        assert mode(folder) == 0o700, folder
    assert all(mode(p) == 0o700 for p in (state / "deployments").iterdir())
    run = RunDir.create(tmp_path / "other" / "state", "r-2")
    for folder in (tmp_path / "other", tmp_path / "other" / "state", run.path.parent, run.path):
        assert mode(folder) == 0o700, folder


def test_private_dirs_leaves_an_existing_folder_as_it_is(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    private_dirs(tmp_path / "new")
    assert mode(tmp_path) == 0o755 and mode(tmp_path / "new") == 0o700


@pytest.mark.parametrize("bits", [0o770, 0o702, 0o722])
def test_a_state_directory_writable_by_group_or_others_is_refused_with_the_fix(
    tmp_path: Path, bits: int
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(bits)
    with pytest.raises(UsageError) as caught:
        check_state_dir(state)
    assert f"writable by group or others (mode {bits:04o})" in caught.value.message
    assert caught.value.hint == f"chmod 700 {state}"
    with pytest.raises(UsageError):
        KnownState(state, load_inventory(EXAMPLE))


def test_a_private_or_missing_state_directory_is_accepted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    check_state_dir(state)
    state.mkdir(mode=0o700)
    check_state_dir(state)
    state.chmod(0o755)  # readable by others is their business; writable is not
    check_state_dir(state)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a directory to another user")
def test_a_state_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    with pytest.raises(UsageError, match="owned by uid 65534, not by you"):
        check_state_dir(state)


def test_a_fifo_a_device_and_a_directory_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(InputFileError, match="not a regular file"):
            read_input(path)
    with pytest.raises(InputFileError, match="Is a directory"):
        read_input(tmp_path)


def test_a_file_above_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 10)
    assert read_input(path, cap=10) == b"x" * 10
    with pytest.raises(InputFileError, match="larger than"):
        read_input(path, cap=9)
    assert INPUT_CAP == 16 * 1024 * 1024
