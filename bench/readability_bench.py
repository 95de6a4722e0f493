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
    from tests.inventories import forty_groups_yaml

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


NIGHT_WAVES, NIGHT_WINDOW = "1,25%,100%", "+6h"


def night() -> dict[str, Any]:
    """The same deployment planned as an upgrade night (issue 15): waves, a window, tenant impact."""
    import csv
    import io
    import json
    from collections import Counter

    from tests.cli.piped import piped
    from tests.inventories import forty_groups_yaml

    night_flags = ("--waves", NIGHT_WAVES, "--window-end", NIGHT_WINDOW)
    with tempfile.TemporaryDirectory(prefix="xsoar-mt-bench-") as folder:
        inventory = Path(folder) / "forty-groups.yaml"
        inventory.write_text(forty_groups_yaml())
        base = ("upgrade", "plan", "-i", str(inventory), "--to", "6.12", *night_flags)
        text = piped(*base)
        plan = piped(*base, "-o", "json")
        impact = piped(*base, "--tenant-impact", "-o", "csv")
    assert text.returncode == 0 and plan.returncode == 0 and impact.returncode == 0, text.stderr + plan.stderr
    data = json.loads(plan.stdout)
    window = data["window"]
    rows = list(csv.DictReader(io.StringIO(impact.stdout)))
    return {
        "night_flags": " ".join(night_flags),
        "night_text_lines": len(text.stdout.splitlines()),
        "night_wave_sizes": [n for _, n in sorted(Counter(data["waves"]["groups"].values()).items())],
        "night_expected_minutes": window["expected_minutes"],
        "night_window_minutes": window["minutes_left"],
        "night_closes_before": window["closes_before"],
        "night_group_upgrades_done": len(window["group_upgrades_done"]),
        "night_tenant_rows": len(rows),
        "night_tenants": len({row["tenant"] for row in rows}),
        "night_csv_head": impact.stdout.splitlines()[:2],
    }


def measure() -> dict[str, Any]:
    return {**plan_lines(), **preflight_lines(), **night()}


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key}: {value}")
