"""Where the installer goes on a server and here, and the vendor link made right for each release."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from xsoar_mt.engine.installer_job import InstallFiles
from xsoar_mt.errors import InvalidInput
from xsoar_mt.installer import (
    digest_path,
    file_sha256,
    installer_path,
    local_installer,
    normalise_link,
    upload_check_command,
    verify_before_run,
)
from xsoar_mt.inventory import InstallerSettings


def test_the_link_is_made_https_on_the_vendors_host_for_the_release_keeping_the_rest() -> None:
    link = "http://download.demisto.works/download-params/?token=t0k&email=ops@example.com&eula=&downloadName=6_9_latest#top"
    assert normalise_link(link, "6.12") == (
        "https://download.demisto.com/download-params/?token=t0k&email=ops@example.com&eula=&downloadName=6_12_latest"
    )
    assert normalise_link("https://mirror.example/x?a=1", "6.11", "4711") == (
        "https://mirror.example/x?a=1&downloadName=6_11_4711"
    )


@pytest.mark.parametrize(
    "link", ["ftp://download.demisto.com/x", "https:///no-host", "download.demisto.com/x"]
)
def test_a_link_that_is_not_an_http_url_is_refused(link: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_link(link, "6.12")
    assert refused.value.message == (
        "the download link is not an http(s) URL (check the variable or file it comes from)"
    )


def test_the_installer_lives_in_the_installer_directory_named_by_release(tmp_path: Path) -> None:
    settings = InstallerSettings(directory="/var/tmp/xsoar-mt/", file="installers/demisto-{release}.sh")
    assert installer_path(settings, "6.12") == "/var/tmp/xsoar-mt/demisto-6.12.sh"
    inventory = tmp_path / "site" / "inventory.yaml"
    assert local_installer(settings, str(inventory), "6.12") == tmp_path / "site/installers/demisto-6.12.sh"
    absolute = InstallerSettings(file=str(tmp_path / "demisto-{release}.sh"))
    assert local_installer(absolute, str(inventory), "6.11") == tmp_path / "demisto-6.11.sh"


def test_a_large_installers_sha256_is_that_of_all_its_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20_000  # about 5 MiB: read in several pieces
    (tmp_path / "big.sh").write_bytes(data)
    assert file_sha256(tmp_path / "big.sh") == hashlib.sha256(data).hexdigest()


# -- verified right before it runs, records never written through a symlink -------------------------


def _sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, cwd=cwd, check=False, timeout=30
    )


def _installed(tmp_path: Path, pinned: str | None = None) -> tuple[InstallerSettings, Path]:
    directory = tmp_path / "xm"
    directory.mkdir(mode=0o700)
    settings = InstallerSettings(directory=str(directory), sha256={"6.12": pinned} if pinned else {})
    installer = Path(installer_path(settings, "6.12"))
    installer.write_text(f"#!/bin/sh\ntouch {tmp_path}/RAN\n")
    return settings, installer


def test_the_installer_runs_when_its_sha256_is_the_one_recorded_on_arrival(tmp_path: Path) -> None:
    settings, installer = _installed(tmp_path)
    assert (
        _sh(upload_check_command(settings, "6.12"), tmp_path).returncode != 0
    )  # no expected sha256 on stdin
    recorded = subprocess.run(["sh", "-c", upload_check_command(settings, "6.12")], input=file_sha256(installer) + "\n",
                              capture_output=True, text=True, check=True)  # fmt: skip
    assert recorded.returncode == 0
    assert Path(digest_path(settings, "6.12")).read_text() == file_sha256(installer) + "\n"
    command = f"sudo {installer} -- -multi-tenant"
    ran = _sh(f"{verify_before_run(settings, '6.12', command)} && sh {installer}", tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (tmp_path / "RAN").exists()


def test_an_installer_swapped_after_it_arrived_is_refused_and_never_run(tmp_path: Path) -> None:
    settings, installer = _installed(tmp_path)
    Path(digest_path(settings, "6.12")).write_text(file_sha256(installer) + "\n")
    installer.write_text(f"#!/bin/sh\ntouch {tmp_path}/RAN\necho evil\n")
    refused = _sh(f"{verify_before_run(settings, '6.12', f'sudo {installer}')} && sh {installer}", tmp_path)
    assert refused.returncode != 0
    assert f"refused to run {installer}: its sha256 is {file_sha256(installer)}" in refused.stdout
    assert not (tmp_path / "RAN").exists()


def test_without_a_recorded_sha256_the_installer_is_not_run(tmp_path: Path) -> None:
    settings, installer = _installed(tmp_path)
    refused = _sh(f"{verify_before_run(settings, '6.12', f'sudo {installer}')} && sh {installer}", tmp_path)
    assert refused.returncode != 0 and "expected none recorded" in refused.stdout
    assert not (tmp_path / "RAN").exists()


def test_a_pinned_sha256_wins_over_a_recorded_one(tmp_path: Path) -> None:
    settings, installer = _installed(tmp_path, pinned="0" * 64)
    Path(digest_path(settings, "6.12")).write_text(file_sha256(installer) + "\n")  # recorded, but not the pin
    refused = _sh(f"{verify_before_run(settings, '6.12', f'sudo {installer}')} && sh {installer}", tmp_path)
    assert refused.returncode != 0 and not (tmp_path / "RAN").exists()


def test_a_custom_install_command_that_does_not_run_the_file_is_not_checked() -> None:
    settings = InstallerSettings(directory="/var/lib/xsoar-mt")
    assert verify_before_run(settings, "6.12", "sudo /opt/vendor/upgrade.sh") == ""


def test_the_launch_removes_planted_records_so_a_symlink_never_redirects_a_write(tmp_path: Path) -> None:
    settings, installer = _installed(tmp_path)
    Path(digest_path(settings, "6.12")).write_text(file_sha256(installer) + "\n")
    victim = tmp_path / "victim"
    victim.write_text("root's own file\n")
    files = InstallFiles(settings.directory, "6.12")
    for ext in ("boot", "pid", "rc", "log"):
        (Path(settings.directory) / f"install-6.12.{ext}").symlink_to(victim)
    (Path(settings.directory) / "state.json.installer").symlink_to(victim)
    command = f"sh {installer}"
    launched = _sh(files.launch(command, '{"version": "6.12.0", "at": ', verify_before_run(settings, "6.12", command)),
                   tmp_path)  # fmt: skip
    assert "STARTED" in launched.stdout
    rc = Path(settings.directory) / "install-6.12.rc"
    deadline = time.monotonic() + 20
    while not (rc.is_file() and rc.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rc.read_text().strip() == "0"
    assert victim.read_text() == "root's own file\n"
    for ext in ("boot", "pid", "rc", "log"):
        assert not (Path(settings.directory) / f"install-6.12.{ext}").is_symlink()
    assert (tmp_path / "RAN").exists()
