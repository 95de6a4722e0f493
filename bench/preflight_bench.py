"""Benchmark: preflight of a 20-server fleet, its wall time and the SSH commands it sends per server."""

from __future__ import annotations

import sys
import tempfile
import time
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
    from xsoar_mt.usecases.session import LinkNeed, Session

    with (
        tempfile.TemporaryDirectory(prefix="xsoar-mt-bench-") as root,
        Fleet(sized_spec(SERVERS), Path(root)) as fleet,
    ):
        with Session(fleet.inventory("bench"), Path(root) / "state") as session:
            secrets = session.read_secrets(sudo=True, link=LinkNeed.IF_SET)
            assert secrets.link is not None
            started = time.monotonic()
            report = run_preflight(session.inventory, session.shells, secrets, "6.12")
        seconds = time.monotonic() - started
        commands = [n["commands"] for n in report.ssh.values()]
        connections = [n["connections"] for n in report.ssh.values()]
        return {
            "preflight_servers": len(report.ssh),
            "preflight_seconds": round(seconds, 2),
            "preflight_ssh_commands_per_server": max(commands),
            "preflight_ssh_connections_per_server": max(connections),
            "preflight_findings": len(report.findings),
            "preflight_blocking": len(report.blocking),
        }


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key}: {value}")
