"""Benchmark of the test fleet itself: start, reset and stop of a 10- and a 20-server fleet."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fleet.fleet import Fleet  # noqa: E402  # the repo root must be importable first
from tests.fleet.spec import sized_spec  # noqa: E402

SIZES = (10, 20)
ROUNDS = 2


def time_fleet(count: int, root: Path) -> dict[str, float]:
    """Seconds to start (every sshd and service listening), reset, run one command, and stop."""
    fleet = Fleet(sized_spec(count), root)
    began = time.monotonic()
    fleet.start()
    started = time.monotonic()
    try:
        fleet.reset()
        reset = time.monotonic()
        result = fleet.ssh("bench-main", "true")
        first = time.monotonic()
        assert result.returncode == 0, result.stderr
    finally:
        fleet.stop()
    stopped = time.monotonic()
    return {
        "start_s": started - began,
        "reset_s": reset - started,
        "first_command_s": first - reset,
        "stop_s": stopped - first,
    }


def measure(rounds: int = ROUNDS) -> dict[str, Any]:
    """Median timings per fleet size, e.g. {"fleet_10": {"start_s": 1.9, ...}, "fleet_20": {...}}."""
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as work:
        for count in SIZES:
            samples = [time_fleet(count, Path(work) / f"f{count}-{n}") for n in range(rounds)]
            found[f"fleet_{count}"] = {
                key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]
            } | {"servers": count, "rounds": rounds}
    return found


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
