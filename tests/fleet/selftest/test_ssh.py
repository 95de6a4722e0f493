"""Tests of the fleet's SSH side: key auth, host keys, the session wrapper, SFTP, the command log."""

from __future__ import annotations

import paramiko
import pytest

from tests.fleet.fleet import Fleet, Server

pytestmark = pytest.mark.fleet


def strict_client(fleet: Fleet) -> paramiko.SSHClient:
    """A Paramiko client that knows only the fleet's host keys and refuses any other."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(fleet.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def connect(client: paramiko.SSHClient, fleet: Fleet, server: Server) -> None:
    """Log in to `server` with the fleet's key alone (no agent, no ~/.ssh keys)."""
    client.connect(server.address, port=server.ssh_port, username=fleet.user,
                   key_filename=str(fleet.identity_file), look_for_keys=False, allow_agent=False)  # fmt: skip


def test_ssh_by_name_with_the_fleet_key_works(fleet: Fleet) -> None:
    result = fleet.ssh("single-main", "echo ok")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_a_key_that_is_not_authorised_is_refused(fleet: Fleet) -> None:
    result = fleet.ssh("single-main", "echo ok", identity=fleet.wrong_identity_file)
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_a_changed_host_key_is_detected_by_ssh_with_the_fleets_known_hosts(fleet: Fleet) -> None:
    assert fleet.ssh("single-h1", "true").returncode == 0
    fleet.server("single-h1").set_fault(host_key_changed=True)
    result = fleet.ssh("single-h1", "true")
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    fleet.server("single-h1").set_fault(host_key_changed=False)
    assert fleet.ssh("single-h1", "true").returncode == 0


def test_a_session_runs_in_the_servers_home_with_stand_ins_first_on_path(fleet: Fleet) -> None:
    result = fleet.ssh("single-h2", 'pwd; echo "$HOME"; command -v sudo service wget curl df')
    lines = result.stdout.splitlines()
    home = str(fleet.server("single-h2").home)
    assert lines[:2] == [home, home]
    assert all(line.startswith(str(fleet.root / "bin")) for line in lines[2:]), lines


def test_every_command_line_is_recorded_with_its_server(fleet: Fleet) -> None:
    fleet.ssh("single-main", "echo one")
    fleet.ssh("single-h1", "echo two && true")
    recorded = [(c["server"], c["command"]) for c in fleet.commands()]
    assert recorded == [("single-main", "echo one"), ("single-h1", "echo two && true")]


def test_sftp_upload_with_a_relative_path_lands_in_the_servers_home(fleet: Fleet) -> None:
    server = fleet.server("single-h1")
    client = strict_client(fleet)
    connect(client, fleet, server)
    try:
        sftp = client.open_sftp()
        sftp.mkdir("xsoar-mt")
        installer = fleet.downloads / "demisto-6.12.sh"
        sftp.put(str(installer), "xsoar-mt/demisto.sh")
        sftp.close()
    finally:
        client.close()
    uploaded = server.home / "xsoar-mt" / "demisto.sh"
    assert uploaded.read_bytes() == installer.read_bytes()
    assert ("single-h1", "<sftp>") in [(c["server"], c["command"]) for c in fleet.commands()]


def test_paramiko_refuses_a_changed_host_key_with_the_fleets_known_hosts(fleet: Fleet) -> None:
    server = fleet.server("single-h2")
    server.set_fault(host_key_changed=True)
    client = strict_client(fleet)
    with pytest.raises(paramiko.BadHostKeyException):
        connect(client, fleet, server)
    client.close()
