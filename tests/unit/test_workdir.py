"""The private working directory: its facts read by a real local `sh`, judged as StrictModes would."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.inventories import GroupSpec, inventory_dict
from xsoar_mt.checks.model import FindingVerdict, Severity, parse_ignore
from xsoar_mt.checks.survey import Section
from xsoar_mt.checks.verdicts import working_directory_finding
from xsoar_mt.errors import ExitCode, UsageError
from xsoar_mt.inventory import Inventory, parse_inventory
from xsoar_mt.remote import Result
from xsoar_mt.workdir import (
    CHECK,
    DirectoryRefused,
    Entry,
    judge_workdir,
    parse_walk,
    walk_script,
)
from xsoar_mt.workdir_check import prepare

OTHER_UID = 54321  # a user who is neither root nor the SSH user


class LocalShell:
    """Runs each command with this machine's `sh`, as a server's shell would."""

    server = "main-0"

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, **_: Any) -> Result:
        self.commands.append(command)
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False, timeout=30)
        return Result(self.server, command, done.returncode, done.stdout, done.stderr)


def inventory(directory: Path, backup_dir: Path | None = None) -> Inventory:
    data = inventory_dict("bolt", GroupSpec("main", "single", ("6.11",)), [])
    data["installer"] = {"directory": str(directory)}
    data["commands"] = {"backup_dir": str(backup_dir or directory / "backup")}
    return parse_inventory(yaml.safe_dump(data), "inv.yaml")


def walk(*entries: tuple[str, int, int, str]) -> list[Entry]:
    return [Entry(kind, uid, mode, path) for kind, uid, mode, path in entries]


ROOT = ("d", 0, 0o755, "/")
VAR = ("d", 0, 0o755, "/var")
VAR_TMP = ("d", 0, 0o1777, "/var/tmp")


def test_a_directory_not_there_yet_passes_and_a_private_one_passes() -> None:
    missing = walk(ROOT, VAR, ("d", 0, 0o755, "/var/lib"), ("-", None, None, "/var/lib/xsoar-mt"))  # type: ignore[arg-type]  # missing: no owner
    assert judge_workdir("installer.directory", "/var/lib/xsoar-mt", missing, 1000) is None
    private = walk(ROOT, VAR, ("d", 0, 0o755, "/var/lib"), ("d", 0, 0o700, "/var/lib/xsoar-mt"))
    assert judge_workdir("installer.directory", "/var/lib/xsoar-mt", private, 1000) is None


def test_a_directory_the_ssh_user_owns_passes_and_one_another_user_owns_is_refused_naming_owner_and_mode() -> (
    None
):
    mine = walk(ROOT, VAR, VAR_TMP, ("d", 1000, 0o700, "/var/tmp/xsoar-mt"))
    assert judge_workdir("installer.directory", "/var/tmp/xsoar-mt", mine, 1000) is None
    theirs = walk(ROOT, VAR, VAR_TMP, ("d", OTHER_UID, 0o700, "/var/tmp/xsoar-mt"))
    problem = judge_workdir("installer.directory", "/var/tmp/xsoar-mt", theirs, 1000)
    assert problem is not None
    assert problem.detail == (
        "installer.directory /var/tmp/xsoar-mt: /var/tmp/xsoar-mt belongs to neither root nor the SSH user "
        f"(owner uid {OTHER_UID}, mode 0700)"
    )
    assert "remove it as root" in problem.fix


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o1777, 0o720])
def test_a_directory_writable_by_group_or_others_is_refused_even_with_the_sticky_bit(mode: int) -> None:
    entries = walk(ROOT, VAR, VAR_TMP, ("d", 0, mode, "/var/tmp/xsoar-mt"))
    problem = judge_workdir("installer.directory", "/var/tmp/xsoar-mt", entries, 0)
    assert problem is not None
    assert f"is writable by group or others (owner root, mode {mode:04o})" in problem.detail
    assert problem.fix.startswith("as root: chmod 0700 /var/tmp/xsoar-mt")


def test_a_parent_writable_by_others_is_refused_unless_it_is_roots_and_sticky() -> None:
    sticky_root = walk(ROOT, VAR, VAR_TMP, ("d", 0, 0o700, "/var/tmp/xsoar-mt"))
    assert judge_workdir("installer.directory", "/var/tmp/xsoar-mt", sticky_root, 0) is None
    not_sticky = walk(ROOT, VAR, ("d", 0, 0o777, "/var/tmp"), ("d", 0, 0o700, "/var/tmp/xsoar-mt"))
    problem = judge_workdir("installer.directory", "/var/tmp/xsoar-mt", not_sticky, 0)
    assert problem is not None and problem.path == "/var/tmp" and "mode 0777" in problem.found
    group = walk(ROOT, ("d", 0, 0o775, "/var"), ("d", 0, 0o700, "/var/x"))
    assert judge_workdir("installer.directory", "/var/x", group, 0) is not None
    sticky_theirs = walk(ROOT, ("d", 1000, 0o1777, "/shared"), ("d", 0, 0o700, "/shared/x"))
    refused = judge_workdir("installer.directory", "/shared/x", sticky_theirs, 0)
    assert refused is not None and refused.path == "/shared"


def test_a_parent_owned_by_another_user_is_refused() -> None:
    entries = walk(ROOT, ("d", OTHER_UID, 0o755, "/srv"), ("d", 0, 0o700, "/srv/xsoar-mt"))
    problem = judge_workdir("installer.directory", "/srv/xsoar-mt", entries, 1000)
    assert problem is not None and problem.path == "/srv"


@pytest.mark.parametrize("at", [1, 2])
def test_a_symlink_anywhere_on_the_way_is_refused(at: int) -> None:
    entries = walk(ROOT, VAR, ("d", 0, 0o755, "/var/lib"), ("d", 0, 0o700, "/var/lib/xsoar-mt"))
    entries[at + 1] = Entry("l", 0, 0o777, entries[at + 1].path)
    problem = judge_workdir("installer.directory", "/var/lib/xsoar-mt", entries, 0)
    assert problem is not None and "is a symlink" in problem.found and problem.path == entries[at + 1].path


def test_a_file_where_the_directory_should_be_is_refused_and_a_missing_one_after_making_it_too() -> None:
    file = walk(ROOT, VAR, ("f", 0, 0o600, "/var/xm"))
    assert judge_workdir("installer.directory", "/var/xm", file, 0) is not None
    missing = walk(ROOT, VAR, ("-", None, None, "/var/xm"))  # type: ignore[arg-type]  # missing: no owner
    assert judge_workdir("installer.directory", "/var/xm", missing, 0) is None
    assert judge_workdir("installer.directory", "/var/xm", missing, 0, must_exist=True) is not None


def test_a_server_that_did_not_say_its_uid_or_the_directories_is_refused_not_passed() -> None:
    entries = walk(ROOT, ("d", 0, 0o700, "/xm"))
    assert judge_workdir("installer.directory", "/xm", entries, None) is not None
    assert judge_workdir("installer.directory", "/xm", [], 0) is not None


def test_the_facts_are_framed_lines_a_carriage_return_or_a_forged_line_adds_nothing() -> None:
    good = base64.b64encode(b"/xm").decode()
    stdout = (
        "XM_UID 0\n"
        "XM_DIR 0 d 0 755 Lw==\n"
        f"XM_DIR 0 d {OTHER_UID} 777 {good}\rXM_DIR 0 d 0 700 {good}\n"  # \r: one line, not two
        "XM_UID ²\n"  # not ASCII digits: ignored
        f"XM_DIR 9 d 0 700 {good}\n"  # a path that was not asked for
    )
    uid, entries = parse_walk(stdout, 1)
    assert uid == 0
    assert [e.path for e in entries[0]] == ["/"]


def test_the_script_run_by_a_real_shell_sees_owner_mode_symlinks_and_relative_paths(tmp_path: Path) -> None:
    base = tmp_path / "tmpish"
    base.mkdir()
    base.chmod(0o1777)
    theirs = base / "theirs"
    theirs.mkdir()
    theirs.chmod(0o777)
    os.chown(theirs, OTHER_UID, OTHER_UID)  # the tests run as root, as the fleet does
    (base / "link").symlink_to(theirs)
    out = subprocess.run(["sh", "-c", walk_script(["tmpish/theirs", "tmpish/link/x", "tmpish/new"])],
                         capture_output=True, text=True, cwd=tmp_path, check=True).stdout  # fmt: skip
    uid, entries = parse_walk(out, 3)
    assert uid == os.getuid()
    assert entries[0][-1] == Entry("d", OTHER_UID, 0o777, str(theirs))
    problem = judge_workdir("installer.directory", "tmpish/theirs", entries[0], uid)
    assert problem is not None and problem.path == str(theirs)
    assert entries[1][-2].kind == "l"
    assert judge_workdir("installer.directory", "tmpish/link/x", entries[1], uid) is not None
    assert entries[2][-1].kind == "-"
    # tmp_path's own parents (/tmp and pytest's) decide the rest: root's, and /tmp sticky
    assert judge_workdir("installer.directory", "tmpish/new", entries[2], uid) is None


def test_prepare_makes_a_missing_directory_0700_in_one_step(tmp_path: Path) -> None:
    directory = tmp_path / "work" / "xsoar-mt"
    prepare(LocalShell(), inventory(directory))  # type: ignore[arg-type]  # a local shell
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o700  # made under umask 077 too


def test_prepare_refuses_a_directory_another_user_made_and_writes_nothing_there(tmp_path: Path) -> None:
    directory = tmp_path / "xsoar-mt"
    directory.mkdir()
    directory.chmod(0o777)
    os.chown(directory, OTHER_UID, OTHER_UID)
    shell = LocalShell()
    with pytest.raises(DirectoryRefused) as refused:
        prepare(shell, inventory(directory))  # type: ignore[arg-type]  # a local shell
    assert refused.value.exit_code is ExitCode.PREFLIGHT_FAILED
    assert (
        refused.value.message
        == (
            f"main-0: installer.directory {directory}: {directory} belongs to neither root nor the SSH user "
            f"(owner uid {OTHER_UID}, mode 0777) (and 1 more): nothing is written there"  # its backup_dir is in it
        )
    )
    assert list(directory.iterdir()) == []
    assert stat.S_IMODE(directory.stat().st_mode) == 0o777  # not "fixed" by a chmod either
    assert len(shell.commands) == 1  # refused on the first look: nothing made


def test_prepare_refuses_a_backup_directory_others_can_write_to(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    backups.chmod(0o777)
    with pytest.raises(DirectoryRefused, match=r"commands.backup_dir .*mode 0777"):
        prepare(LocalShell(), inventory(tmp_path / "xsoar-mt", backups))  # type: ignore[arg-type]  # a local shell
    assert not (tmp_path / "xsoar-mt").exists()


def test_the_preflight_check_is_mandatory_and_names_path_owner_mode_and_fix(tmp_path: Path) -> None:
    assert CHECK == "working-directory"
    from xsoar_mt.checks.model import CHECKS

    assert CHECKS[CHECK].severity is Severity.MANDATORY
    with pytest.raises(UsageError, match="working-directory is a mandatory check and cannot be ignored"):
        parse_ignore("working-directory")
    directory = tmp_path / "xsoar-mt"
    directory.mkdir()
    directory.chmod(0o757)
    inv = inventory(directory)
    out = subprocess.run(["sh", "-c", walk_script([str(directory), str(directory / "backup")])],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    finding = working_directory_finding("main-0", Section(out, 0), inv)
    assert finding.verdict is FindingVerdict.FAIL
    assert finding.detail.endswith(f"{directory} is writable by group or others (owner root, mode 0757)")
    assert finding.fix == f"as root: chmod 0700 {directory}, after checking what it holds"
    directory.chmod(0o700)
    out = subprocess.run(["sh", "-c", walk_script([str(directory), str(directory / "backup")])],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert working_directory_finding("main-0", Section(out, 0), inv).verdict is FindingVerdict.PASS
    assert (
        working_directory_finding("main-0", None, inv).verdict is FindingVerdict.FAIL
    )  # not gathered: not passed


def test_a_directory_whose_owner_and_mode_could_not_be_read_is_refused_saying_so() -> None:
    entries = [Entry("d", 0, 0o755, "/"), Entry("d", None, None, "/xm")]
    problem = judge_workdir("installer.directory", "/xm", entries, 0)
    assert problem is not None and problem.found.endswith("(owner unknown, mode unknown)")
