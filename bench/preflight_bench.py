"""Benchmark: preflight of a 20-server fleet, its wall time and the SSH commands it sends per server."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SERVERS = 20


def measure() -> dict[str, Any]:
    """Start a 20-server fleet, run every preflight check once against it, and report the figures."""
    from tests.fleet.fleet import Fleet
    from tests.fleet.spec import sized_spec
    from xsoar_mt.checks import run_preflight
    from xsoar_mt.inventory import load_inventory
    from xsoar_mt.run import load_secrets, ssh_pool
    from xsoar_mt.secrets import read_secret

    with (
        tempfile.TemporaryDirectory(prefix="xsoar-mt-bench-") as root,
        Fleet(sized_spec(SERVERS), Path(root)) as fleet,
    ):
        inventory = load_inventory(fleet.inventory("bench"))
        names = [s.name for s in inventory.servers]
        sudo, secrets = load_secrets(inventory, names, need_sudo=True, need_link=False, prompt=None)
        assert inventory.installer.link is not None
        secrets = replace(secrets, link=read_secret(inventory.installer.link, "download link"))
        pool = ssh_pool(inventory, sudo, accept_new=False)
        started = time.monotonic()
        try:
            report = run_preflight(inventory, pool, secrets, "6.12")
        finally:
            pool.close()
        seconds = time.monotonic() - started
        commands = [n["commands"] for n in report.ssh.values()]
        connections = [n["connections"] for n in report.ssh.values()]
        return {
            "preflight_servers": len(names),
            "preflight_seconds": round(seconds, 2),
            "preflight_ssh_commands_per_server": max(commands),
            "preflight_ssh_connections_per_server": max(connections),
            "preflight_findings": len(report.findings),
            "preflight_blocking": len(report.blocking),
        }


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key}: {value}")
