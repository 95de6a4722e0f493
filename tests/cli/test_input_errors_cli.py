"""Broken input through the CLI: one `error:` line naming the file or flag and a documented exit code,
never an internal error (exit 1), never a traceback, never a leftover file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests import operator_shell
from tests.cli.loopback import hang_up_before_banner, write_inventory
from xsoar_mt.cli import app
from xsoar_mt.inventory import load_inventory
from xsoar_mt.known import deployment_key
from xsoar_mt.lock import RunLock

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"
runner = CliRunner()


def xsoar_mt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return operator_shell.xsoar_mt(
        *args, cwd=cwd, env={"XSOAR_MT_TEST_LINK": "https://download.demisto.com/x?token=t0ken"}
    )


def read_only_directory(tmp_path: Path) -> Path:
    """A directory this process cannot create files in. Root ignores modes, so as root it is /sys (sysfs
    refuses new files to everyone); otherwise a directory of mode 0500."""
    if os.geteuid() == 0:
        return Path("/sys")
    path = tmp_path / "read-only"
    path.mkdir(mode=0o500)
    return path


# -- the inventory ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe", ":1: the inventory is not UTF-8 text (byte 0xff)"),
        (
            EXAMPLE.read_text().replace("acme-mssp", "acm\u00e9").encode("latin-1"),
            ":6: the inventory is not UTF-8 text (byte 0xe9)",
        ),
        (None, ": cannot read the inventory: No such file or directory"),
        ("dir", ": cannot read the inventory: Is a directory"),
    ],
)
@pytest.mark.parametrize(
    "command", [["inventory", "validate", "{}"], ["upgrade", "plan", "-i", "{}", "--to", "6.12"]]
)
def test_an_inventory_that_cannot_be_read_as_text_exits_3_naming_it(
    tmp_path: Path, content: bytes | str | None, expected: str, command: list[str]
) -> None:
    path = tmp_path / "inventory.yaml"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    result = runner.invoke(app, [a.replace("{}", str(path)) for a in command])
    assert result.exit_code == 3, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}{expected}"), line


def test_an_inventory_the_system_cannot_read_exits_3_naming_it() -> None:
    result = runner.invoke(app, ["inventory", "validate", "/proc/self/mem"])  # reading it fails: EIO
    assert result.exit_code == 3, result.output
    assert result.stderr == "error: /proc/self/mem: cannot read the inventory: Input/output error\n"


def test_a_5_mb_value_is_cut_in_the_message(inventory: Path) -> None:
    huge = "x" * 5_000_000
    inventory.write_text(inventory.read_text().replace("profile: production ", f"profile: {huge} "))
    result = runner.invoke(app, ["inventory", "validate", str(inventory)])
    assert result.exit_code == 3
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {inventory}:10: deployment.profile: 'xxxx")
    assert "... (5000000 characters) is not one of production, dev" in line and len(line) < 400


def test_an_argument_too_long_for_any_option_is_refused_in_one_line(tmp_path: Path) -> None:
    result = xsoar_mt(
        "upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "--output", "x" * 100_000, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: an argument of 100,000 characters ('xxxx")
    assert len(result.stderr) < 300 and result.stdout == ""


# -- --out --------------------------------------------------------------------------------------------


def plan_out(out: Path | str) -> object:
    return runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "--out", str(out)])


def test_out_into_a_missing_directory_exits_2_naming_the_flag(tmp_path: Path) -> None:
    result = plan_out(tmp_path / "nowhere" / "plan.json")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.stderr == (  # type: ignore[attr-defined]
        f"error: --out '{tmp_path}/nowhere/plan.json': the directory '{tmp_path}/nowhere' does not exist\n"
    )


def temporary_files(directory: Path | str) -> set[str]:
    """The files an atomic write leaves when it fails: hidden, ending in .tmp (`/.tmp.tmp` once). Other
    processes (other test workers) come and go in /tmp and /, so only these are compared there."""
    return {name for name in os.listdir(directory) if name.startswith(".") and name.endswith(".tmp")}


def test_out_onto_a_directory_exits_2_and_leaves_nothing_anywhere(tmp_path: Path) -> None:
    before_root = temporary_files("/")
    before_tmp = temporary_files("/tmp")
    before = set(os.listdir(tmp_path))
    for target in (tmp_path, Path("/tmp")):
        result = plan_out(target)
        assert result.exit_code == 2  # type: ignore[attr-defined]
        assert result.stderr == f"error: --out '{target}': is a directory; give a file name\n"  # type: ignore[attr-defined]
    assert set(os.listdir(tmp_path)) == before
    assert temporary_files("/tmp") <= before_tmp
    assert temporary_files("/") <= before_root  # no temporary file at the root (it was /.tmp.tmp)


def test_out_into_a_read_only_place_exits_2_and_leaves_nothing(tmp_path: Path) -> None:
    directory = read_only_directory(tmp_path)
    before = set(os.listdir(directory))
    result = plan_out(directory / "plan.json")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.stderr.startswith(f"error: --out '{directory}/plan.json': cannot write it: ")  # type: ignore[attr-defined]
    assert set(os.listdir(directory)) == before


def test_a_failed_rename_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    result = plan_out(tmp_path / "plan.json")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "cannot write it: No space left on device" in result.stderr  # type: ignore[attr-defined]
    assert os.listdir(tmp_path) == []


def test_out_writes_the_plan_privately_in_its_own_directory(tmp_path: Path) -> None:
    assert plan_out(tmp_path / "plan.json").exit_code == 0  # type: ignore[attr-defined]
    assert os.listdir(tmp_path) == ["plan.json"]
    assert (tmp_path / "plan.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "plan.json").read_text())["target"] == "6.12"


# -- --state-dir --------------------------------------------------------------------------------------


def real_run(inventory: Path, state_dir: Path) -> object:
    return runner.invoke(
        app,
        ["upgrade", "run", "-i", str(inventory), "--to", "6.11", "--yes", "--state-dir", str(state_dir)],
        env={"XSOAR_DOWNLOAD_LINK": "https://download.demisto.com/x?token=t0ken"},
    )


def test_a_state_dir_that_is_a_file_exits_2_before_anything_runs(inventory: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("")
    result = real_run(inventory, state)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert result.stderr == f"error: --state-dir '{state}': is a file, not a directory\n"  # type: ignore[attr-defined]
    inside = real_run(inventory, state / "runs")
    assert inside.exit_code == 2  # type: ignore[attr-defined]
    assert f"is inside '{state}', which is a file" in inside.stderr  # type: ignore[attr-defined]


def test_a_state_dir_that_cannot_be_written_exits_2(inventory: Path, tmp_path: Path) -> None:
    state = read_only_directory(tmp_path) / "xsoar-mt-state"
    result = real_run(inventory, state)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert result.stderr.startswith(f"error: --state-dir '{state}': cannot write in ")  # type: ignore[attr-defined]
    assert not state.exists()


# -- upgrade run flags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "error: give --to RELEASE, --plan FILE or --resume RUN"),
        (["--plan", "p.json", "--resume", "latest"], "error: --plan and --resume cannot be given together"),
        (
            ["--to", "6.11", "--plan", "p.json", "--resume", "latest"],
            "error: --to, --plan and --resume cannot be given together",
        ),
        (
            ["--to", "6.11", "--ignore-preflight-errors", "bogus"],
            "error: --ignore-preflight-errors: no check named bogus",
        ),
        (
            ["--to", "6.11", "--ignore-preflight-errors", "ssh"],
            "error: --ignore-preflight-errors: ssh is a mandatory check",
        ),
        (["--to", "7.0"], "error: --to: 7.0 is not a Cortex XSOAR release xsoar-mt knows: there is no 7.x"),
    ],
)
def test_a_dry_run_refuses_the_command_lines_a_real_run_refuses_with_exit_2(
    inventory: Path, args: list[str], expected: str
) -> None:
    for mode in (["--dry-run"], ["--yes"]):
        result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), *args, *mode])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(expected), result.stderr
        assert "hint: a release newer than the list" not in result.stderr


def test_a_target_older_than_6_is_refused_as_a_downgrade_exit_4(inventory: Path) -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "5.5"])
    assert result.exit_code == 4, result.output
    assert (
        result.stderr
        == "error: target 5.5 is older than every 6.x release: xsoar-mt upgrades within 6.x and never downgrades\n"
    )


def local_lock(inventory: Path, state: Path) -> RunLock:
    return RunLock(state, deployment_key(load_inventory(inventory)))


def test_force_unlock_with_another_runs_id_exits_10_and_keeps_the_lock(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)  # loopback, nothing listening: main cannot be asked
    lock = local_lock(inventory, tmp_path / "state")
    lock.acquire("20260101-000000-aaaa")
    args = ["upgrade", "run", "-i", str(inventory), "--state-dir", str(tmp_path / "state"), "--force-unlock"]
    wrong = runner.invoke(app, [*args, "20260101-000000-bbbb"])
    assert wrong.exit_code == 10, wrong.output
    assert (
        "belongs to run 20260101-000000-aaaa" in wrong.stderr
        and "not to run 20260101-000000-bbbb" in wrong.stderr
    )
    assert lock.path.exists()
    right = runner.invoke(app, [*args, "20260101-000000-aaaa"])
    assert right.exit_code == 7, right.output  # broken here; main did not answer, and the error says so
    assert "the lock on this machine was broken" in right.stderr and "could not be checked" in right.stderr
    assert not lock.path.exists()


def test_an_empty_lock_file_can_be_broken_with_any_id(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    lock = local_lock(inventory, tmp_path / "state")
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text("")
    result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), "--state-dir", str(tmp_path / "state"),
                                 "--force-unlock", "whatever"])  # fmt: skip
    assert "the lock on this machine was broken" in result.stderr, result.output
    assert not lock.path.exists()


# -- SSH ----------------------------------------------------------------------------------------------


def test_a_server_that_hangs_up_before_the_banner_is_one_finding_and_no_library_traceback(
    tmp_path: Path,
) -> None:
    with hang_up_before_banner() as port:
        inventory = write_inventory(tmp_path, ssh_port=port)
        result = xsoar_mt("preflight", "-i", str(inventory), "--to", "6.11", cwd=tmp_path)
        debug = xsoar_mt("--debug", "preflight", "-i", str(inventory), "--to", "6.11", cwd=tmp_path)
    assert result.returncode == 7, result.stdout + result.stderr
    assert result.stderr == ""  # the library's log never reaches the terminal without --debug
    assert "main-1" in result.stdout and "cannot connect over SSH" in result.stdout
    assert debug.returncode == 7
    assert "debug: paramiko.transport" in debug.stderr  # with --debug it does


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        (["upgrade", "run", "--to", "6.11", "--yes", "--group", "emea-1"],
         "hint: emea-1 is a server of group emea: use --group emea"),
        (["upgrade", "run", "--to", "6.11", "--yes", "--group", "emae"], "hint: did you mean --group emea?"),
        (["upgrade", "plan", "--to", "6.11", "--probe", "--group", "emea-1"],
         "hint: emea-1 is a server of group emea: use --group emea"),
        (["validate", "--to", "6.11", "--only", "main", "--group", "main-1"],
         "hint: main-1 is a server of main: use --only main"),
    ],
)  # fmt: skip
def test_a_wrong_group_name_is_a_usage_error_before_any_server_is_contacted(
    tmp_path: Path, command: list[str], hint: str
) -> None:
    from tests.cli.loopback import silent_listener, write_inventory

    with silent_listener() as (port, accepted):
        inventory = write_inventory(tmp_path, ssh_port=port)
        result = CliRunner().invoke(
            app, [*command, "-i", str(inventory)], env={"XSOAR_MT_TEST_LINK": "https://example.invalid/x"}
        )
        assert result.exit_code == 2, result.output
        assert "no such host group (known: emea)" in result.output and hint in result.output
        assert not accepted.is_set()  # no connection was even opened


@pytest.mark.parametrize("kind", ["fifo", "device", "large"])
def test_an_inventory_that_is_not_a_regular_file_or_too_large_exits_3_in_one_line(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "inventory.yaml"
    if kind == "fifo":
        os.mkfifo(path)  # read as before, this hung
    elif kind == "device":
        path = Path("/dev/zero")  # read as before, this ended in a MemoryError
    else:
        with path.open("wb") as handle:
            handle.truncate(16 * 1024 * 1024 + 1)
    result = runner.invoke(app, ["inventory", "validate", str(path)])
    assert result.exit_code == 3, result.output
    (line,) = result.stderr.splitlines()
    expected = "larger than the 16 MiB" if kind == "large" else "not a regular file"
    assert line.startswith(f"error: {path}: cannot read the inventory: ") and expected in line


def test_a_state_dir_writable_by_others_exits_2_with_the_fix(inventory: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    result = real_run(inventory, state)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert result.stderr == (  # type: ignore[attr-defined]
        f"error: --state-dir '{state}': writable by group or others (mode 0777); refusing it\n"
        f"hint: chmod 700 {state}\n"
    )
    assert not (state / "runs").exists()
