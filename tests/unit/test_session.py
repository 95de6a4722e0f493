"""The Session every command shares, and the state directory's one layout and one private write."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from xsoar_mt.errors import InvalidInput
from xsoar_mt.journal import RunDir
from xsoar_mt.remote import Recorder, RecordingShell, RemoteShell, Result
from xsoar_mt.state_dir import StateDir, write_private
from xsoar_mt.usecases.session import LinkNeed, Session

INVENTORY = """\
inventory_version: 1
deployment: {name: s, communication_port: 1}
ssh: {user: ops, sudo_password: {env: XSOAR_TEST_SUDO}}
installer: {delivery: server-download, link: {env: XSOAR_TEST_LINK}}
main: {server: {name: m1, address: 127.0.0.1, version: 6.11.0}}
hosts: [{name: h1, server: {name: h1, address: 127.0.0.2, version: 6.11.0}}]
"""


class Counted(RecordingShell):
    closed = 0

    def close(self) -> None:
        Counted.closed += 1


@pytest.fixture
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XSOAR_TEST_SUDO", "sudo-secret")
    monkeypatch.setenv("XSOAR_TEST_LINK", "https://download.demisto.works/download-params/?token=t")
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def test_a_session_makes_one_shell_per_server_from_its_factory_and_closes_each_once(
    inventory: Path, tmp_path: Path
) -> None:
    made: list[str] = []
    Counted.closed = 0

    def factory(name: str) -> RemoteShell:
        made.append(name)
        return Counted(name, Recorder(), lambda server, command: Result(server, command, 0))

    with Session(inventory, tmp_path / "state", shells=factory) as session:
        assert session.shells("m1") is session.shells("m1")
        session.shells("h1")
        session.close()  # a use case may close early; leaving the block must not close twice
    assert made == ["m1", "h1"]
    assert Counted.closed == 2


def test_a_session_asks_for_no_shell_until_one_is_used(inventory: Path, tmp_path: Path) -> None:
    def refuse(name: str) -> RemoteShell:
        raise AssertionError("no server may be contacted")

    with Session(inventory, tmp_path / "state", shells=refuse) as session:
        assert session.inventory.name == "s"
        assert session.shell_stats() is None


def test_a_run_refuses_server_download_without_a_link_while_preflight_only_reads_one_if_set(
    inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XSOAR_TEST_LINK")
    with Session(inventory, tmp_path / "state") as session:
        assert session.read_secrets(link=LinkNeed.IF_SET).link is None
        with pytest.raises(InvalidInput, match="XSOAR_TEST_LINK"):
            session.read_secrets(link=LinkNeed.REQUIRED)


def test_the_state_directory_keeps_todays_file_names(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert state.record("d-1") == tmp_path / "deployments" / "d-1" / "servers.json"
    assert state.lock("d-1") == tmp_path / "locks" / "d-1.lock"
    assert state.run("r1") == tmp_path / "runs" / "r1"
    assert state.installers == tmp_path / "installers"


def test_a_private_write_is_owner_only_and_a_failed_one_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "file.json"
    write_private(path, "{}\n")
    assert path.read_text() == "{}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    (tmp_path / "deep" / "taken").mkdir()
    with pytest.raises(OSError):
        write_private(tmp_path / "deep" / "taken", "x")  # a directory cannot be replaced by a file
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["file.json", "taken"]


def test_a_runs_plan_file_is_written_whole_and_owner_only(tmp_path: Path) -> None:
    run_dir = RunDir.create(tmp_path, "r1")
    written = run_dir.write_private("plan-1.json", "{}")
    assert written == tmp_path / "runs" / "r1" / "plan-1.json"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert [p.name for p in run_dir.path.iterdir() if p.name.endswith(".tmp")] == []
