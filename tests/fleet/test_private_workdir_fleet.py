"""Another local user of a server attacks xsoar-mt's working directory, on real OpenSSH servers.

The fleet's sessions run as root (its `sudo` passes through), as xsoar-mt does on a real server. The
attacker is a real second, unprivileged user of this machine (made with useradd, removed after), running
its commands with runuser. The working directory sits in `shared-tmp/` of each server's home, made like
/var/tmp (root's, mode 1777), so that user may create entries there as it could in /var/tmp.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.runs import installs, run, start_run, versions, wait_until, xsoar_mt

pytestmark = pytest.mark.fleet

ATTACKER = f"xm-attacker-{os.getpid() % 100000}"
DIRECTORY = "shared-tmp/xsoar-mt"
SERVERS = ("single-main", "single-h1", "single-h2")


@pytest.fixture
def attacker() -> Iterator[int]:
    """A second, unprivileged user of the machine (the servers' machine): its uid."""
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", ATTACKER], check=True)
    try:
        yield pwd.getpwnam(ATTACKER).pw_uid
    finally:
        subprocess.run(["userdel", ATTACKER], check=True)


def as_attacker(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", ATTACKER, "--", "sh", "-c", command], cwd=cwd, capture_output=True,
                          text=True, check=False, timeout=60)  # fmt: skip


@pytest.fixture
def shared_tmp(fleet: Fleet, attacker: int) -> Iterator[dict[str, Path]]:
    """Each server's `shared-tmp` (root's, 1777, like /var/tmp), reachable by the attacker: the folders
    above the fleet are opened for search (o+x) for the test and closed again after."""
    opened: list[tuple[Path, int]] = []
    for folder in [fleet.root, *fleet.root.parents]:
        mode = stat.S_IMODE(folder.stat().st_mode)
        if not mode & 0o001:
            opened.append((folder, mode))
            folder.chmod(mode | 0o001)
    homes = {}
    for name in SERVERS:
        shared = fleet.server(name).home / "shared-tmp"
        shared.mkdir()
        shared.chmod(0o1777)
        homes[name] = fleet.server(name).home
    try:
        yield homes
    finally:
        for folder, mode in opened:
            folder.chmod(mode)


@pytest.fixture
def victim(fleet: Fleet) -> Path:
    """A file of root's that root must never overwrite on the attacker's behalf."""
    path = fleet.root / "victim-root-file"
    path.write_text("root's own content\n")
    path.chmod(0o644)
    return path


def inventory(fleet: Fleet, tmp_path: Path) -> Path:
    return fleet.inventory(
        "single",
        tmp_path / "inventory.yaml",
        installer={"directory": DIRECTORY},
        commands={"backup_dir": f"{DIRECTORY}/backup"},
    )


def test_a_directory_another_user_made_first_is_refused_by_preflight_and_run_and_nothing_is_written(
    fleet: Fleet, tmp_path: Path, attacker: int, shared_tmp: dict[str, Path], victim: Path
) -> None:
    fleet.add_installer("6.12")
    home = shared_tmp["single-main"]
    planted = as_attacker(
        f"mkdir -m 0777 {DIRECTORY} && chmod 0777 {DIRECTORY} && ln -s {victim} {DIRECTORY}/install-6.12.boot && "
        f"printf '#!/bin/sh\\nid > /tmp/owned\\n' > {DIRECTORY}/demisto-6.12.sh && chmod 0777 {DIRECTORY}/demisto-6.12.sh",
        home,
    )  # fmt: skip
    assert planted.returncode == 0, planted.stderr
    inv = inventory(fleet, tmp_path)

    checked = xsoar_mt("preflight", "-i", str(inv), "--to", "6.12", "-o", "json", cwd=tmp_path)
    assert checked.returncode == 7, checked.stdout + checked.stderr
    found = [f for f in json.loads(checked.stdout)["findings"] if f["check"] == "working-directory"]
    refused = {f["server"]: f for f in found if f["verdict"] == "fail"}
    assert set(refused) == {"single-main"}
    where = home / DIRECTORY
    assert refused["single-main"]["detail"] == (
        f"installer.directory {DIRECTORY}: {where} belongs to neither root nor the SSH user "
        f"(owner uid {attacker}, mode 0777)"
    )
    assert "remove it as root" in refused["single-main"]["fix"]
    assert refused["single-main"]["severity"] == "mandatory"
    ignored = xsoar_mt("preflight", "-i", str(inv), "--to", "6.12", "--ignore-preflight-errors",
                       "working-directory", cwd=tmp_path)  # fmt: skip
    assert ignored.returncode == 2 and "working-directory is a mandatory check" in ignored.stderr

    ran = run(inv, "--to", "6.12")
    assert ran.returncode == 7, ran.stdout + ran.stderr
    assert (
        f"error: single-main: {refused['single-main']['detail']} (and 1 more): nothing is written there"
        in ran.stderr
    )
    assert "cannot be ignored" in ran.stderr  # its backup_dir, inside it, is the one more
    assert installs(fleet) == []
    assert set(versions(fleet, "single").values()) == {"6.11.0"}
    assert victim.read_text() == "root's own content\n"
    assert sorted(p.name for p in where.iterdir()) == [
        "demisto-6.12.sh",
        "install-6.12.boot",
    ]  # no lock either


def test_a_working_directory_that_is_a_symlink_is_refused(
    fleet: Fleet, tmp_path: Path, attacker: int, shared_tmp: dict[str, Path], victim: Path
) -> None:
    fleet.add_installer("6.12")
    home = shared_tmp["single-h1"]
    planted = as_attacker(f"mkdir -m 0700 shared-tmp/mine && ln -s mine {DIRECTORY}", home)
    assert planted.returncode == 0, planted.stderr
    ran = run(inventory(fleet, tmp_path), "--to", "6.12")
    assert ran.returncode == 7, ran.stdout + ran.stderr
    assert f"single-h1: installer.directory {DIRECTORY}: {home / DIRECTORY} is a symlink" in ran.stderr
    assert installs(fleet) == []
    assert list((home / "shared-tmp" / "mine").iterdir()) == []


def test_in_the_private_directory_the_other_user_can_neither_plant_nor_swap_nor_read_the_backup(
    fleet: Fleet, tmp_path: Path, attacker: int, shared_tmp: dict[str, Path], victim: Path
) -> None:
    fleet.add_installer("6.12")
    fleet.server("single-main").set_fault(install_seconds=3)
    home = shared_tmp["single-main"]
    where = home / DIRECTORY
    inv = inventory(fleet, tmp_path)
    process = start_run(inv, "--to", "6.12")
    wait_until(process, lambda: (where / "demisto-6.12.sh").exists(), "the installer on single-main")
    attempts = {
        "plant a record": f"ln -s {victim} {DIRECTORY}/install-6.12.boot",
        "swap the installer": f"printf '#!/bin/sh\\nexit 0\\n' > {DIRECTORY}/demisto-6.12.sh",
        "replace the installer": f"mv -f /dev/null {DIRECTORY}/demisto-6.12.sh",
        "list the directory": f"ls {DIRECTORY}",
        "read the backups": f"cat {DIRECTORY}/backup/*",
        "replace the directory": f"mv {DIRECTORY} shared-tmp/moved",
    }
    results = {what: as_attacker(command, home) for what, command in attempts.items()}
    wait_until(process, lambda: bool(installs(fleet)), "the first install")
    results["swap during the install"] = as_attacker(f"cp /bin/true {DIRECTORY}/demisto-6.12.sh", home)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err
    assert {what: r.returncode for what, r in results.items() if r.returncode == 0} == {}
    assert all(
        "Permission denied" in r.stderr or "Operation not permitted" in r.stderr for r in results.values()
    )
    assert set(versions(fleet, "single").values()) == {"6.12.0"}  # the genuine installer ran everywhere
    assert victim.read_text() == "root's own content\n"
    info = where.lstat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode), stat.S_ISDIR(info.st_mode)) == (0, 0o700, True)
    backups = list((where / "backup").iterdir())
    assert backups, "no backup was taken"
    assert stat.S_IMODE((where / "backup").stat().st_mode) == 0o700
    assert {stat.S_IMODE(b.stat().st_mode) for b in backups} == {0o600}
    assert as_attacker(f"cat {backups[0]}", home).returncode != 0


def test_an_installer_changed_between_fetch_and_install_is_refused_before_it_runs(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.add_installer("6.12")
    fleet.server("single-main").set_fault(
        corrupt_uploads=True
    )  # the next session after it arrives changes it
    inv = fleet.inventory("single", tmp_path / "inventory.yaml")
    ran = run(inv, "--to", "6.12")
    assert ran.returncode == 6, ran.stdout + ran.stderr
    assert "refused to run" in ran.stdout + ran.stderr
    assert "install_refused" not in {e["event"] for e in fleet.events()}
    assert installs(fleet) == []  # the changed file never ran
    assert set(versions(fleet, "single").values()) == {"6.11.0"}
