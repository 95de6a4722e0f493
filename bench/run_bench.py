"""Benchmark of `upgrade run` on a 20-server fleet: wall time against the critical path, SSH use per server.

The critical path is the sum of the install times that must happen one after another: main's install
stages, then each host group's (all groups in turn without --parallel; the longest group with it). An HA
group has two install stages (one server, then the rest); a DR pair two; a single server one.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fleet.fleet import Fleet  # noqa: E402  # the repo root must be importable first
from tests.fleet.spec import FleetSpec  # noqa: E402

INSTALL_SECONDS = 3.0
HA_GROUPS = 6  # 12 servers
SINGLE_HOSTS = 7  # + main = 20 servers


def bench_spec() -> FleetSpec:
    server = {"install_seconds": INSTALL_SECONDS}
    hosts: list[dict[str, Any]] = [
        {"name": f"ha{i}", "ha": {"servers": [{"name": f"b-ha{i}a", **server}, {"name": f"b-ha{i}b", **server}]},
         "tenants": [f"t{i}"]}
        for i in range(HA_GROUPS)
    ]  # fmt: skip
    hosts += [
        {"name": f"s{i}", "server": {"name": f"b-s{i}", **server}, "tenants": [f"u{i}"]}
        for i in range(SINGLE_HOSTS)
    ]
    return FleetSpec.from_dict(
        {
            "deployments": [
                {
                    "name": "bench",
                    "database": "elasticsearch",
                    "version": "6.11.0",
                    "main": {"server": {"name": "b-main", **server}},
                    "hosts": hosts,
                }
            ]
        }
    )


def critical_path(parallel: bool) -> float:
    main = INSTALL_SECONDS
    groups = [2 * INSTALL_SECONDS] * HA_GROUPS + [INSTALL_SECONDS] * SINGLE_HOSTS
    return main + (max(groups) if parallel else sum(groups))


def one_run(fleet: Fleet, work: Path, parallel: int) -> dict[str, Any]:
    fleet.reset()
    inv = fleet.inventory("bench", work / "inventory.yaml")
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xsoar_mt",
            "upgrade",
            "run",
            "-i",
            str(inv),
            "--to",
            "6.12",
            "--yes",
            "-o",
            "json",
            "--parallel",
            str(parallel),
            "--state-dir",
            str(work / f"state-{parallel}"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"bench run failed ({result.returncode}): {result.stderr[-2000:]}")
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    (stats,) = [e["data"] for e in events if e["kind"] == "ssh-stats"]
    critical = critical_path(parallel > 1)
    commands = sum(s["commands"] for s in stats.values())
    return {
        "parallel": parallel,
        "wall_seconds": round(wall, 2),
        "critical_path_seconds": critical,
        "overhead_percent": round(100 * (wall - critical) / critical, 1),
        "ssh_connections_per_server": sorted({s["connections"] for s in stats.values()}),
        "ssh_commands_per_server_median": statistics.median(s["commands"] for s in stats.values()),
        "ssh_commands_per_server_max": max(s["commands"] for s in stats.values()),
        "ssh_commands_total": commands,
    }


def command_latency(fleet: Fleet, work: Path) -> float:
    """Median seconds for `true` on an open connection: the fleet's fixed cost per command (its session
    wrapper and stand-ins are Python), which a real server does not have."""
    from xsoar_mt.inventory import load_inventory
    from xsoar_mt.ssh import SshShell

    inventory = load_inventory(fleet.inventory("bench", work / "latency.yaml"))
    shell = SshShell(inventory.server("b-s0"), sudo_password=None)
    shell.run("true")
    samples = []
    for _ in range(10):
        started = time.monotonic()
        shell.run("true")
        samples.append(time.monotonic() - started)
    shell.close()
    return round(statistics.median(samples), 3)


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="xsoar-mt-bench-") as tmp:
        work = Path(tmp)
        fleet = Fleet(bench_spec(), work / "fleet")
        started = time.monotonic()
        fleet.start()
        try:
            for release in ("6.12",):
                fleet.add_installer(release)
            figures: dict[str, Any] = {
                "servers": 1 + 2 * HA_GROUPS + SINGLE_HOSTS,
                "install_seconds": INSTALL_SECONDS,
                "fleet_start_seconds": round(time.monotonic() - started, 2),
                "fleet_seconds_per_command": command_latency(fleet, work),
                "runs": [one_run(fleet, work, 1), one_run(fleet, work, HA_GROUPS + SINGLE_HOSTS)],
            }
        finally:
            fleet.stop()
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
