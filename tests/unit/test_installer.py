"""Where the installer goes on a server and here, and the vendor link made right for each release."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from xsoar_mt.errors import InvalidInput
from xsoar_mt.installer import file_sha256, installer_path, local_installer, normalise_link
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
