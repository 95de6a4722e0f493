"""Benchmark: the night with and without `upgrade prepare` by day, on the fleet, each server's installer
fetch slowed to FETCH_DELAY seconds (the fleet's `slow` command fault on the fetch).

Measured from the night run's journal timestamps: the run (its start to the last validation: what the
window must hold) and the service window (the first stop to the last validation). The plan fetches every
installer before its first stop, so a prepared night saves its fetches from the first figure; the second
is reported beside it to show what the fetch never took from the stops.

`python bench/prepare_bench.py` measures only this and rewrites it into bench/results.json and RESULTS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SERVERS = 4  # one main, three single hosts
FETCH_DELAY = 8.0  # seconds each server's installer fetch takes (all servers fetch at once)
INSTALL_SECONDS = 1.0
TITLE = "upgrade prepare (the night with and without it)"


def night(inventory: Path, state: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "xsoar_mt", "upgrade", command, "-i", str(inventory), "--yes",
            "--state-dir", str(state), "-o", "json", *args]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, cwd=inventory.parent, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"})  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"upgrade {command} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def window_of(journal: Path) -> dict[str, float]:
    """From one run's journal: its start, its first stop, its last validation (epoch seconds)."""
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    started = next(r["ts"] for r in records if r.get("kind") == "run-started")
    stops = [r["ts"] for r in records if r.get("kind") == "step-started" and "/stop" in str(r.get("step"))]
    checked = [
        r["ts"]
        for r in records
        if r.get("kind") == "step-finished" and str(r.get("step")).startswith("validate/")
    ]
    return {"run_seconds": max(checked) - started, "service_window_seconds": max(checked) - min(stops)}


def measure() -> dict[str, Any]:
    from tests.fleet.fleet import Fleet
    from tests.fleet.spec import sized_spec

    slow = {"commands": [{"match": r"read -r link", "action": "slow", "seconds": FETCH_DELAY}]}
    figures: dict[str, Any] = {"servers": SERVERS, "fetch_delay_seconds_per_server": FETCH_DELAY}
    with (
        tempfile.TemporaryDirectory(prefix="xsoar-mt-bench-") as root,
        Fleet(sized_spec(SERVERS), Path(root) / "fleet") as fleet,
    ):
        fleet.add_installer("6.12")
        names = [s.name for s in fleet.servers("bench")]
        for prepared in (False, True):
            fleet.reset(faults={n: {**slow, "install_seconds": INSTALL_SECONDS} for n in names})
            work = Path(root) / ("prepared" if prepared else "unprepared")
            work.mkdir()
            inventory = fleet.inventory("bench", work / "inventory.yaml")
            if prepared:
                night(inventory, work / "state", "prepare", "--to", "6.12")
                for name in names:  # the fetch is slowed on the night as well: it is simply not needed
                    fleet.server(name).set_fault(**slow)
            before = len(fleet.events())
            night(inventory, work / "state", "run", "--to", "6.12")
            fetched = [
                e
                for e in fleet.events()[before:]
                if e["event"] == "download" and "/demisto-" in f"/{e.get('file') or ''}"
            ]
            (journal,) = [p for p in (work / "state" / "runs").glob("*/journal.jsonl")
                          if '"prepare": true' not in p.read_text().splitlines()[0]]  # fmt: skip
            key = "with_prepare" if prepared else "without_prepare"
            figures[key] = {k: round(v, 2) for k, v in window_of(journal).items()} | {
                "fetches_on_the_night": len(fetched)
            }
    without, with_ = figures["without_prepare"], figures["with_prepare"]
    figures["run_shrinks_by_seconds"] = round(without["run_seconds"] - with_["run_seconds"], 2)
    figures["run_shrinks_by_percent"] = round(
        100 * figures["run_shrinks_by_seconds"] / without["run_seconds"], 1
    )
    figures["service_window_change_seconds"] = round(
        without["service_window_seconds"] - with_["service_window_seconds"], 2
    )
    return figures


def write(figures: dict[str, Any]) -> None:
    """Put the figures into bench/results.json and RESULTS.md, the other figures kept as they are."""
    bench = Path(__file__).resolve().parent
    sys.path.insert(0, str(bench))
    import run as bench_run

    results = json.loads((bench / "results.json").read_text())
    results.setdefault("fleet", {})[TITLE] = figures
    (bench / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (bench / "RESULTS.md").write_text(bench_run.markdown(results) + bench_run.mutation_section())


if __name__ == "__main__":
    measured = measure()
    print(json.dumps(measured, indent=2))
    write(measured)
