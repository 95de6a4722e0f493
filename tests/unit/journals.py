"""Journals written by hand for the report's tests: a run's first record, a step's records, and the file
they go in under a state directory, as a run writes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SERVERS = ("m1", "a1", "a2", "p1", "s1")


def view(server: str, version: str | None = "6.11.0", service: str = "running", healthy: bool | None = True
         ) -> dict[str, Any]:  # fmt: skip
    return {"server": server, "version": version, "service": service, "healthy": healthy}


def start(ts: float, kind: str = "run-intent", **fields: Any) -> dict[str, Any]:
    return {"ts": ts, "kind": kind, "deployment": "t-1", "target": "6.12",
            "observed": {s: view(s) for s in SERVERS}, **fields}  # fmt: skip


def step(ts: float, end: float | None, sid: str, servers: list[str], outcome: str = "ok", **data: Any
         ) -> list[dict[str, Any]]:  # fmt: skip
    action = sid.split("/")[1]
    out = [{"ts": ts, "kind": "step-started", "step": sid, "message": f"{action} on {', '.join(servers)} ({sid})",
            "servers": servers, "data": {"command": f"sudo {action}"}}]  # fmt: skip
    if end is not None:
        out.append({"ts": end, "kind": "step-finished", "step": sid, "servers": servers,
                    "data": {"outcome": outcome, **data}})  # fmt: skip
    return out


def write(state_dir: Path, run_id: str, records: list[dict[str, Any]]) -> Path:
    path = state_dir / "runs" / run_id
    path.mkdir(parents=True)
    (path / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
