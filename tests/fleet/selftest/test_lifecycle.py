"""Tests of the fleet's life: clean stop, a clear failure without sshd, inventories, a concurrent log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet import fleet as fleet_module
from tests.fleet.fleet import Fleet, FleetError, processes_marked, require_sshd
from tests.fleet.spec import FleetSpec

FLEET_DIR = Path(__file__).resolve().parents[1]  # where remote.py is


@pytest.mark.fleet
def test_no_process_survives_a_fleet_stop(tmp_path: Path) -> None:
    spec = FleetSpec.from_dict(
        {
            "deployments": [
                {
                    "name": "life",
                    "main": {"server": {"name": "life-main", "install_seconds": 60}},
                    "hosts": [
                        {
                            "name": "h1",
                            "server": {
                                "name": "life-h1",
                                "install_seconds": 0.2,
                                "faults": {"ssh_drop_seconds": 60},
                            },
                        }
                    ],
                }
            ]
        }
    )
    fleet = Fleet(spec, tmp_path / "fleet").start()
    held = None
    try:
        fetch = "wget -q -O demisto.sh -i - && chmod +x demisto.sh && sudo service demisto stop"
        link = fleet.download_link() + "\n"
        # an install in flight, a process double-forked out of its session, a held-open session
        fleet.ssh(
            "life-main",
            f"{fetch} && (nohup ./demisto.sh -- -multi-tenant >/dev/null 2>&1 &) && "
            "(setsid sleep 300 </dev/null >/dev/null 2>&1 &)",
            input=link,
        )
        # an install whose SSH drop leaves a helper waiting to bring sshd back
        fleet.ssh("life-h1", f"{fetch} && sudo ./demisto.sh -- -multi-tenant", input=link)
        held = subprocess.Popen([*fleet.ssh_argv("life-main"), "life-main", "sleep 300"])
        deadline = time.monotonic() + 10
        while not (fleet.server("life-main").dir / "state" / "install.pid").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # 2 sshd, 1 service, installer, restarter, sleeper, the held session...: the held session is
        # still connecting when Popen returns, so wait for it rather than race it.
        deadline = time.monotonic() + 10
        before = fleet.pids() | set(processes_marked(fleet.root))
        while len(before) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
            before = fleet.pids() | set(processes_marked(fleet.root))
        assert len(before) >= 8
    finally:
        fleet.stop()
        if held is not None:
            held.wait(timeout=10)
    assert [p for p in before if fleet_module.remote.pid_alive(p)] == []
    assert processes_marked(fleet.root) == []


@pytest.mark.fleet
def test_a_missing_sshd_fails_with_a_message_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fleet_module, "SSHD", "/nonexistent/sshd")
    with pytest.raises(FleetError, match="make sshd"):
        require_sshd()


@pytest.mark.fleet
def test_the_inventory_of_every_deployment_loads_and_points_at_the_fleet(fleet: Fleet) -> None:
    from xsoar_mt.inventory import load_inventory

    for deployment in fleet.spec.deployments:
        inventory = load_inventory(fleet.inventory(deployment.name))
        assert inventory.name == deployment.name
        for server in inventory.servers:
            assert server.address == fleet.server(server.name).address
        assert inventory.ssh.known_hosts == str(fleet.known_hosts)
        assert inventory.installer.directory == "xsoar-mt"
        assert {s.name for s in inventory.servers} == {s.name for s in fleet.servers(deployment.name)}


@pytest.mark.fleet
def test_inventory_overrides_are_deep_merged(fleet: Fleet, tmp_path: Path) -> None:
    path = fleet.inventory(
        "single", tmp_path / "inv.yaml", health={"timeout": 5}, installer={"target_dir": "/var/tmp"}
    )
    import yaml

    data = yaml.safe_load(path.read_text())
    assert data["health"] == {"timeout": 5, "interval": 0.2, "max_interval": 1}
    assert data["installer"]["target_dir"] == "/var/tmp"
    assert data["installer"]["directory"] == "xsoar-mt"


def test_the_event_log_stays_valid_under_concurrent_writers(tmp_path: Path) -> None:
    writer = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); import remote; from pathlib import Path\n"
        "log = Path(sys.argv[2])\n"
        "for i in range(200):\n"
        "    remote.append_json_line(log, {'ts': time.time(), 'writer': sys.argv[3], 'i': i,"
        " 'pad': 'x' * 3000}, seq_file=log.with_suffix('.seq'))\n"
    )
    log = tmp_path / "events.jsonl"
    writers = [
        subprocess.Popen([sys.executable, "-I", "-S", "-c", writer, str(FLEET_DIR), str(log), str(n)])
        for n in range(6)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0] * 6
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 1200
    assert [r["seq"] for r in records] == list(range(1, 1201))
    for n in range(6):
        assert [r["i"] for r in records if r["writer"] == str(n)] == list(range(200))


def make(target: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "-C", str(FLEET_DIR.parents[1]), target, f"FLEET_ROOT={root}"],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


@pytest.mark.fleet
def test_fleet_down_ends_every_fleet_process_before_it_returns_and_spares_the_users_own(
    tmp_path: Path,
) -> None:
    root = tmp_path / ".fleet"
    up = make("fleet-up", root)
    assert up.returncode == 0, up.stdout + up.stderr
    # the user's own process naming the fleet's directory: tailing its log, as docs/fleet.md suggests
    tail = subprocess.Popen(["tail", "-f", str(root / "events.jsonl")], stdout=subprocess.DEVNULL)
    try:
        running = fleet_module.fleet_pids(root)
        assert len(running) >= 8  # 4 sshd, 4 services
        down = make("fleet-down", root)
        assert down.returncode == 0, down.stdout + down.stderr
        assert [p for p in running if fleet_module.remote.pid_alive(p)] == []  # gone when down returned
        assert processes_marked(root) == []
        assert tail.poll() is None, "fleet-down ended a process that only names the fleet's directory"
        again = make("fleet-up", root)  # straight after: same addresses and ports, nothing in the way
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        make("fleet-down", root)
        tail.terminate()
        tail.wait(timeout=10)


def test_a_recorded_pid_now_used_by_another_process_is_not_the_fleets(tmp_path: Path) -> None:
    record = tmp_path / "sshd.pid"
    record.write_text("1\n")
    other = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.1)
        record.write_text(f"{other.pid}\n")
        assert fleet_module._started_by(other.pid, record)  # began before its record: the recorded one
        later = tmp_path / "old.pid"
        later.write_text(f"{other.pid}\n")
        os.utime(later, (time.time() - 60, time.time() - 60))  # a record older than the process
        assert not fleet_module._started_by(other.pid, later)
    finally:
        other.terminate()
        other.wait(timeout=10)


@pytest.mark.fleet
def test_a_reset_ends_a_command_the_last_test_left_running_so_it_writes_nothing_after(fleet: Fleet) -> None:
    server = fleet.server("single-h1")
    late = server.home / "written-after-the-reset"
    client = subprocess.Popen(
        [*fleet.ssh_argv("single-h1"), "single-h1", f"sleep 2; touch {late}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sessions = server.dir / "state" / "sessions"
    deadline = time.monotonic() + 10
    while not [s for s in sessions.iterdir() if fleet_module.remote.descendants(int(s.name))]:
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.02)
    left = [int(s.name) for s in sessions.iterdir()]
    client.kill()  # the client goes, as with a dropped connection or a killed test; the command goes on
    client.wait(timeout=10)

    fleet.reset()

    assert [p for p in left if fleet_module.remote.pid_alive(p)] == []
    time.sleep(3)  # past the moment the command would have written
    assert not late.exists()
