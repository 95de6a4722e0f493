"""Benchmark: how many lines an operator reads, piped as in a CI log. The text plan of the 40-group
deployment (DR main pair, 20 single hosts, 20 DR host pairs, 80 tenants; 6.10 to 6.12), and preflight on
a 42-server fleet (every host runs a tenant on a one-server-sized machine: one warning shared by 41)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PREFLIGHT_SERVERS = 42
PLAN_AIM, PREFLIGHT_AIM = 300, 40  # issue 14


def plan_lines() -> dict[str, Any]:
    from tests.cli.piped import piped
    from tests.unit.inventories import forty_groups_yaml

    with tempfile.TemporaryDirectory(prefix="xsoar-mt-bench-") as folder:
        inventory = Path(folder) / "forty-groups.yaml"
        inventory.write_text(forty_groups_yaml())
        text = piped("upgrade", "plan", "-i", str(inventory), "--to", "6.12")
        detail = piped("upgrade", "plan", "-i", str(inventory), "--to", "6.12", "--detail")
    assert text.returncode == 0, text.stderr
    return {
        "plan_deployment": "DR main pair + 20 single hosts + 20 DR host pairs, 80 tenants, 6.10 -> 6.12",
        "plan_text_lines": len(text.stdout.splitlines()),
        "plan_text_widest_line": max(len(line) for line in text.stdout.splitlines()),
        "plan_detail_lines": len(detail.stdout.splitlines()),
        "plan_aim_lines": PLAN_AIM,
    }


def preflight_lines() -> dict[str, Any]:
    from tests.cli.piped import piped
    from tests.fleet.fleet import Fleet
    from tests.fleet.spec import sized_spec

    with (
        tempfile.TemporaryDirectory(prefix="xsoar-mt-bench-") as root,
        Fleet(sized_spec(PREFLIGHT_SERVERS), Path(root)) as fleet,
    ):
        result = piped("preflight", "-i", str(fleet.inventory("bench")), "--to", "6.12")
        verbose = piped("preflight", "-i", str(fleet.inventory("bench")), "--to", "6.12", "--verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warn ")]
    return {
        "preflight_servers": PREFLIGHT_SERVERS,
        "preflight_text_lines": len(result.stdout.splitlines()),
        "preflight_verbose_lines": len(verbose.stdout.splitlines()),
        "preflight_warning_entries": warnings,
        "preflight_aim_lines": PREFLIGHT_AIM,
    }


def measure() -> dict[str, Any]:
    return {**plan_lines(), **preflight_lines()}


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key}: {value}")
