"""The rollback preflight's fetch check (checks/preflight.py `fetch_findings`): each old release's installer
asked for the way the run will fetch it, before anything is stopped. The servers are scripted (what the
link check prints); the link from this machine is asked of the HTTPS stand-in on 127.0.0.1."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.download_stub import DownloadServer, download_server
from tests.unit.recorded_survey import framed
from xsoar_mt.checks.model import FindingVerdict
from xsoar_mt.checks.preflight import FetchAsked, fetch_findings
from xsoar_mt.checks.survey import link_check_script
from xsoar_mt.download import from_link, simulated
from xsoar_mt.inventory import Inventory, parse_inventory
from xsoar_mt.remote import ConnectionLost, Result
from xsoar_mt.secrets import RunSecrets

LINK = "https://download.demisto.com/download-params/?token=tok-9f2c11&email=a%40b.invalid&eula=accept"


def inventory(installer: str, folder: Path | None = None) -> Inventory:
    text = f"""
inventory_version: 1
deployment: {{name: t}}
installer: {installer}
main:
  server: {{name: m1, address: 127.0.0.1}}
hosts:
  - name: g1
    server: {{name: h1, address: 127.0.1.1}}
"""
    return parse_inventory(text, str((folder or Path("/nonexistent")) / "inventory.yaml"))


class LinkAnswering:
    """A server that answers the link check: wget's exit code per downloadName it is asked for."""

    def __init__(self, server: str, codes: dict[str, int], drop: bool = False) -> None:
        self.server, self.codes, self.drop = server, codes, drop
        self.asked: list[tuple[str, str | None]] = []

    def run(self, command: str, *, stdin: str | None = None, timeout: float | None = None) -> Result:
        self.asked.append((command, stdin))
        if self.drop:
            raise ConnectionLost(self.server, "connection reset")
        name = (stdin or "").rsplit("downloadName=", 1)[-1].strip()
        rc = self.codes.get(name, 0)
        return Result(
            self.server, command, 0, framed(f"==xsoar-mt== installer-link\ntool=wget\n==rc== {rc}\n")
        )


def shells(*servers: LinkAnswering) -> dict[str, LinkAnswering]:
    return {s.server: s for s in servers}


def test_each_server_going_back_is_asked_for_the_old_releases_build_with_the_link_on_stdin_only() -> None:
    inv = inventory("{link: {env: XSOAR_TEST_LINK}}")
    servers = shells(LinkAnswering("m1", {}), LinkAnswering("h1", {}))
    found = fetch_findings(
        inv, servers.__getitem__, RunSecrets(link=LINK), [FetchAsked("6.11", "187344", ("h1", "m1"))]
    )
    assert [(f.server, f.verdict) for f in found] == [
        ("h1", FindingVerdict.PASS),
        ("m1", FindingVerdict.PASS),
    ]
    for server in servers.values():
        ((command, stdin),) = server.asked
        assert command == link_check_script()
        assert stdin is not None and stdin.endswith("downloadName=6_11_187344\n")
        assert "tok-9f2c11" not in command and "tok-9f2c11" in stdin


def test_a_link_that_does_not_answer_for_the_old_release_fails_on_that_server_naming_release_and_build() -> (
    None
):
    inv = inventory("{link: {env: XSOAR_TEST_LINK}}")
    servers = shells(LinkAnswering("m1", {}), LinkAnswering("h1", {"6_11_latest": 8}))
    found = fetch_findings(
        inv, servers.__getitem__, RunSecrets(link=LINK), [FetchAsked("6.11", None, ("h1", "m1"))]
    )
    failed = [f for f in found if f.verdict is FindingVerdict.FAIL]
    assert [f.server for f in failed] == ["h1"]
    assert "the download link does not answer (wget exit 8" in failed[0].detail
    assert failed[0].detail.endswith("for 6.11 (downloadName 6_11_latest)")
    assert "still serves 6.11" in failed[0].fix
    assert all("tok-9f2c11" not in f.detail + f.fix for f in found)


def test_a_server_that_cannot_be_asked_fails_its_fetch_check_and_no_link_fails_before_any_server_is_asked() -> (
    None
):
    inv = inventory("{link: {env: XSOAR_TEST_LINK}}")
    dropped = LinkAnswering("h1", {}, drop=True)
    (finding,) = fetch_findings(
        inv, shells(dropped).__getitem__, RunSecrets(link=LINK), [FetchAsked("6.11", None, ("h1",))]
    )
    assert (
        finding.verdict is FindingVerdict.FAIL
        and "the link check could not run (connection reset)" in finding.detail
    )
    unasked = LinkAnswering("h1", {})
    (missing,) = fetch_findings(
        inv, shells(unasked).__getitem__, RunSecrets(), [FetchAsked("6.11", None, ("h1",))]
    )
    assert missing.verdict is FindingVerdict.FAIL and "no download link" in missing.detail
    assert unasked.asked == []


def test_without_links_a_dry_run_asks_no_server() -> None:
    inv = inventory("{link: {env: XSOAR_TEST_LINK}}")
    server = LinkAnswering("h1", {})
    found = fetch_findings(
        inv, shells(server).__getitem__, RunSecrets(), [FetchAsked("6.11", None, ("h1",))], links=False
    )
    assert found == [] and server.asked == []


def test_upload_of_the_operators_files_needs_the_old_releases_own_file(tmp_path: Path) -> None:
    inv = inventory("{delivery: upload, file: 'installers/demisto-{release}.sh'}", tmp_path)
    asked = [FetchAsked("6.11", None, ("h1", "m1"))]
    (missing,) = fetch_findings(inv, {}.__getitem__, RunSecrets(), asked, links=False)
    assert missing.verdict is FindingVerdict.FAIL
    assert missing.detail == f"installer file {tmp_path / 'installers' / 'demisto-6.11.sh'} does not exist"
    (tmp_path / "installers").mkdir()
    (tmp_path / "installers" / "demisto-6.11.sh").write_bytes(b"#!/bin/sh\n# 6.11\n")
    (there,) = fetch_findings(inv, {}.__getitem__, RunSecrets(), asked)
    assert there.verdict is FindingVerdict.PASS


def test_an_installer_file_that_names_no_release_is_the_old_releases_only_when_its_sha256_is_pinned(
    tmp_path: Path,
) -> None:
    installer = tmp_path / "demisto.sh"
    installer.write_bytes(b"#!/bin/sh\n# 6.11\n")
    asked = [FetchAsked("6.11", None, ("h1",))]
    inv = inventory("{delivery: upload, file: demisto.sh}", tmp_path)
    (refused,) = fetch_findings(inv, {}.__getitem__, RunSecrets(), asked)
    assert (
        refused.verdict is FindingVerdict.FAIL
        and "does not name {release}: no file of its own for 6.11" in refused.detail
    )
    digest = hashlib.sha256(installer.read_bytes()).hexdigest()
    pinned = inventory(f"{{delivery: upload, file: demisto.sh, sha256: {{'6.11': '{digest}'}}}}", tmp_path)
    (passed,) = fetch_findings(pinned, {}.__getitem__, RunSecrets(), asked)
    assert passed.verdict is FindingVerdict.PASS
    wrong = inventory(f"{{delivery: upload, file: demisto.sh, sha256: {{'6.11': '{'0' * 64}'}}}}", tmp_path)
    (mismatch,) = fetch_findings(wrong, {}.__getitem__, RunSecrets(), asked)
    assert mismatch.verdict is FindingVerdict.FAIL and "the inventory expects 0000" in mismatch.detail


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DownloadServer]:
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "demisto-6.11-187344.sh").write_bytes(b"#!/bin/sh\n# 6.11 build 187344\n")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with download_server(folder, "tok-stub", tmp_path / "stub") as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server


def test_upload_from_a_link_asks_it_from_this_machine_for_the_old_release_and_build(
    stub: DownloadServer,
) -> None:
    inv = inventory("{delivery: upload, link: {env: XSOAR_TEST_LINK}}")
    secrets = RunSecrets(link=stub.link())
    (answers,) = fetch_findings(inv, {}.__getitem__, secrets, [FetchAsked("6.11", "187344", ("h1",))])
    assert answers.verdict is FindingVerdict.PASS and answers.server == "local"
    (gone,) = fetch_findings(inv, {}.__getitem__, secrets, [FetchAsked("6.11", "200000", ("h1",))])
    assert gone.verdict is FindingVerdict.FAIL and "HTTP 404" in gone.detail
    assert [(r["method"], r["download_name"]) for r in stub.requests] == [
        ("HEAD", "6_11_187344"),
        ("HEAD", "6_11_200000"),
    ]
    assert all("tok-stub" not in f.detail + f.fix for f in (answers, gone))


def test_a_rollbacks_downloads_fetch_each_old_release_for_the_build_its_servers_ran(
    stub: DownloadServer, tmp_path: Path
) -> None:
    (stub.folder / "demisto-6.12.sh").write_bytes(b"#!/bin/sh\n# 6.12\n")
    downloads = from_link(stub.link(), None, tmp_path / "cache", {}, {"6.11": "187344"})
    old = downloads.get("6.11")
    assert old.path == tmp_path / "cache" / "demisto-6_11_187344.sh"
    assert old.path.read_bytes() == b"#!/bin/sh\n# 6.11 build 187344\n"
    downloads.get("6.12")  # a release without a build of its own: installer.build (here latest)
    assert stub.downloads() == ["6_11_187344", "6_12_latest"]
    dry = simulated("999", {"6.11": "187344"})
    assert (dry.get("6.11").path.name, dry.get("6.12").path.name) == (
        "demisto-6_11_187344.sh",
        "demisto-6_12_999.sh",
    )


def test_each_backup_is_checked_on_its_server_side_by_side_and_a_bad_answer_names_only_that_server() -> None:
    import threading
    from types import SimpleNamespace

    from xsoar_mt.remote import CommandKind
    from xsoar_mt.rollback.backups import BackupRecord, NoBackup
    from xsoar_mt.usecases.rollback_fetch import unusable_backups

    sha = "ab" * 32
    backups = {
        name: BackupRecord(name, "6.11", None, f"/var/tmp/xsoar-mt/backup/{name}.tgz", 1024, sha, "r1", 5.0)
        for name in ("m1", "h1")
    }
    both_asking = threading.Barrier(2, timeout=10)  # one check waiting for the other: never in turn

    class Checked:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, command: object, *, stdin: str | None = None, timeout: float | None = None) -> Result:
            assert getattr(command, "kind", None) is CommandKind.BACKUP_CHECK
            both_asking.wait()
            size = "1024" if self.name == "m1" else "10²4"
            return Result(self.name, str(command), 0, f"xsoar-mt-backup: {size} {sha}\n")

    session = SimpleNamespace(inventory=inventory("{link: {env: X}}"), shells=Checked)
    found = unusable_backups(session, {**backups, "h2": NoBackup("h2", "none")})  # type: ignore[arg-type]
    assert found == {"h1": "the server's answer about the backup could not be read"}
