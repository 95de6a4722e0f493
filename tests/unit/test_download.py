"""Upload delivery from a link: the one local download, against a real HTTPS endpoint on 127.0.0.1."""

from __future__ import annotations

import hashlib
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.download_stub import DownloadServer, download_server
from xsoar_mt.download import DownloadFailed, Downloads, check_link, download_installer, from_link

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "stub-token-5c1d9e"
INSTALLER = b"#!/bin/sh\n# installer stand-in\n" + bytes(range(256)) * 12_000  # about 3 MiB


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DownloadServer]:
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "demisto-6.12.sh").write_bytes(INSTALLER)
    (folder / "demisto-6.11.sh").write_bytes(b"#!/bin/sh\n# 6.11\n")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with download_server(folder, TOKEN, tmp_path / "stub") as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server


def test_the_installer_is_downloaded_into_a_private_cache_with_its_sha256(
    stub: DownloadServer, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    cache = tmp_path / "cache"
    got = download_installer(stub.link(), "6.12", None, cache, progress=lambda r, t: seen.append((r, t)))
    assert got.path == cache / "demisto-6_12_latest.sh"
    assert got.path.read_bytes() == INSTALLER
    assert got.sha256 == hashlib.sha256(INSTALLER).hexdigest()
    assert stat.S_IMODE(got.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stub.downloads() == ["6_12_latest"]
    assert seen[-1] == (len(INSTALLER), len(INSTALLER)) and len(seen) > 1
    assert [p.name for p in cache.iterdir()] == ["demisto-6_12_latest.sh"]  # no .part left behind


def test_the_version_selector_follows_the_release_and_build(stub: DownloadServer, tmp_path: Path) -> None:
    (stub.folder / "demisto-6.12-1234567.sh").write_bytes(b"#!/bin/sh\n# build 1234567\n")
    download_installer(stub.link(), "6.11", None, tmp_path / "c")
    pinned = download_installer(stub.link(), "6.12", "1234567", tmp_path / "c")
    assert stub.downloads() == ["6_11_latest", "6_12_1234567"]
    assert pinned.path.read_bytes() == b"#!/bin/sh\n# build 1234567\n"


def test_an_untrusted_certificate_is_refused(
    stub: DownloadServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    with pytest.raises(DownloadFailed) as caught:
        download_installer(stub.link(), "6.12", None, tmp_path / "cache")
    assert "certificate" in caught.value.message.lower()
    assert "SSL_CERT_FILE" in (caught.value.hint or "")
    assert stub.downloads() == []
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_refused_token_is_reported_without_the_token(stub: DownloadServer, tmp_path: Path) -> None:
    wrong = "wrong-token-77aa01"
    with pytest.raises(DownloadFailed) as caught:
        download_installer(stub.link(wrong), "6.12", None, tmp_path / "cache")
    assert "HTTP 403" in caught.value.message
    assert wrong not in caught.value.message and wrong not in (caught.value.hint or "")
    assert "token" in (caught.value.hint or "")


def test_a_download_whose_sha256_differs_from_the_pinned_one_is_refused_and_removed(
    stub: DownloadServer, tmp_path: Path
) -> None:
    stub.corrupt = True
    with pytest.raises(DownloadFailed) as caught:
        download_installer(stub.link(), "6.12", None, tmp_path / "cache",
                           known_sha256=hashlib.sha256(INSTALLER).hexdigest())  # fmt: skip
    assert "expected " + hashlib.sha256(INSTALLER).hexdigest() in caught.value.message
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_web_page_instead_of_an_installer_is_refused(stub: DownloadServer, tmp_path: Path) -> None:
    stub.html = True
    with pytest.raises(DownloadFailed) as caught:
        download_installer(stub.link(), "6.12", None, tmp_path / "cache")
    assert "web page" in caught.value.message


def test_a_cached_installer_is_reused_only_when_its_sha256_is_known(
    stub: DownloadServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = download_installer(stub.link(), "6.12", None, cache)
    again = download_installer(stub.link(), "6.12", None, cache, known_sha256=first.sha256)
    assert again.reused and again.sha256 == first.sha256
    assert stub.downloads() == ["6_12_latest"]
    unpinned = download_installer(stub.link(), "6.12", None, cache)  # `latest` moves: fetched again
    assert not unpinned.reused
    assert stub.downloads() == ["6_12_latest", "6_12_latest"]


def test_many_servers_waiting_for_one_release_cause_one_download(
    stub: DownloadServer, tmp_path: Path
) -> None:
    downloads: Downloads = from_link(stub.link(), None, tmp_path / "cache", {})
    results = []
    threads = [threading.Thread(target=lambda: results.append(downloads.get("6.12"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len({r.sha256 for r in results}) == 1
    assert stub.downloads() == ["6_12_latest"]


def test_a_failed_download_is_not_retried_by_every_waiting_server(
    stub: DownloadServer, tmp_path: Path
) -> None:
    downloads = from_link(stub.link("wrong-token-1"), None, tmp_path / "cache", {})
    for _ in range(3):
        with pytest.raises(DownloadFailed):
            downloads.get("6.12")
    assert len(stub.requests) == 1


def test_the_link_check_says_whether_the_link_answers(stub: DownloadServer) -> None:
    said = check_link(stub.link(), "6.12", None)
    assert "answers from here (127.0.0.1" in said
    with pytest.raises(DownloadFailed, match="HTTP 404"):
        check_link(stub.link(), "6.9", None)


def test_a_redirect_to_plain_http_is_refused(stub: DownloadServer, tmp_path: Path) -> None:
    stub.redirect = "http://127.0.0.1:9/demisto.sh"
    with pytest.raises(DownloadFailed, match="redirected to a plain-http address, refused"):
        download_installer(stub.link(), "6.12", None, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_redirect_to_the_vendors_cdn_over_https_is_followed(stub: DownloadServer, tmp_path: Path) -> None:
    stub.redirect = f"{stub.url}/cdn/demisto-6.12.sh"
    got = download_installer(stub.link(), "6.12", None, tmp_path / "cache")
    assert got.path.read_bytes() == INSTALLER
    assert [r["status"] for r in stub.requests] == [302, 200]


def test_a_resumed_run_reuses_the_installer_the_failed_runs_journal_says_it_downloaded(
    stub: DownloadServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the executor journals of its download (installer-downloaded, with the sha256) is what
    # --resume reads back: a run fails against scripted servers, then is resumed, through the CLI.
    from typer.testing import CliRunner

    from tests import inventories as make
    from tests.unit.scripted_servers import ScriptedFleet
    from xsoar_mt.cli import app

    inventory = tmp_path / "inventory.yaml"
    make.write(
        inventory,
        make.inventory(
            make.main(make.single(make.server("m1", "127.0.0.1", "6.11.0"))),
            [make.host("h1", make.single(make.server("h1", "127.0.0.2", "6.11.0")))],
            name="t",
            deployment={"communication_port": 1},
            installer={"delivery": "upload", "link": {"env": "XSOAR_TEST_LINK"}},
        ),
    )
    monkeypatch.setenv("XSOAR_TEST_LINK", stub.link())
    fleet = ScriptedFleet({"m1": "6.11.0", "h1": "6.11.0"})
    fleet.servers["h1"].install_fails = True
    args = ["upgrade", "run", "-i", str(inventory), "--yes", "--state-dir", str(tmp_path / "state"),
            "--ignore-preflight-errors=all"]  # fmt: skip
    failed = CliRunner().invoke(app, [*args, "--to", "6.12"], obj=fleet.shell)
    assert failed.exit_code == 6, failed.output
    assert stub.downloads() == ["6_12_latest"]
    fleet.servers["h1"].install_fails = False
    resumed = CliRunner().invoke(app, [*args, "--resume", "latest"], obj=fleet.shell)
    assert resumed.exit_code == 0, resumed.output
    assert stub.downloads() == ["6_12_latest"]  # the cached installer was trusted: its sha256 was journaled
    assert {str(fleet.version(name)) for name in fleet.servers} == {"6.12.0"}
