"""A small Elasticsearch stand-in on 127.0.0.1: `_cluster/health`, `_cluster/settings`, documents in indices
(`PUT /<index>/_doc/<id>`, `GET /<index>/_count`), and the snapshot API as xsoar-mt uses it (take a snapshot,
list its indices, close indices, restore: a restore over an open index is refused, as Elasticsearch does).

Faults, for the fault matrix: rules (in `ClusterState.faults`, or the JSON file `fault_file`, read at every
request) each `{"match": regex on "METHOD /path", "action": "fail" | "drop" | "slow", "left": N,
"seconds": S}`. `fail` answers HTTP 500 with an Elasticsearch error; `drop` closes the connection without
an answer, and every matching request for S seconds after it; `slow` answers S seconds late. With
`event_log` (the fleet's), each fault hit, each slowed request's end and each restore done are recorded
there as events of the server "elasticsearch"."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class ClusterState:
    status: str = "green"
    data_nodes: int = 3
    active_shards: int = 10
    max_shards_per_node: int | None = None  # None: only the default (1000) appears, under `defaults`
    credentials: str | None = None  # "user:password" the stub demands (Basic), if any
    seen_authorization: list[str | None] = field(default_factory=list)
    repositories: tuple[str, ...] = ("backups",)  # the snapshot repositories registered
    indices: dict[str, dict[str, Any]] = field(default_factory=dict)  # index -> id -> document
    closed: set[str] = field(default_factory=set)
    snapshots: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(
        default_factory=dict
    )  # repo/snap -> copy
    redirect_to: str | None = None  # every snapshot request answers 307 to this origin (a hostile cluster)
    requests: list[str] = field(default_factory=list)  # "METHOD path" of each snapshot-API or index request
    faults: list[dict[str, Any]] = field(default_factory=list)  # fault rules (see the module's docstring)
    fault_file: Path | None = None  # rules read from this file at every request instead
    event_log: Path | None = None  # the fleet's event log (its sequence in events.seq beside it)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, event: str, **fields: Any) -> None:
        if self.event_log is None:
            return
        from tests.fleet.remote import append_json_line

        line = {"ts": time.time(), "server": "elasticsearch", "deployment": "", "event": event, **fields}
        append_json_line(self.event_log, line, seq_file=self.event_log.parent / "events.seq")

    def fault_for(self, request: str) -> dict[str, Any] | None:
        """The fault rule `request` ("METHOD /path") hits now, counted down (None: answer normally)."""
        with self.lock:
            rules = self.faults
            if self.fault_file is not None:
                try:
                    rules = json.loads(self.fault_file.read_text() or "[]")
                except (FileNotFoundError, ValueError):
                    rules = []
            now, hit = time.time(), None
            for rule in rules:
                if not re.search(rule["match"], request):
                    continue
                if rule.get("until", 0) > now:  # a drop still under way
                    hit = rule
                elif rule["left"] > 0:
                    rule["left"] -= 1
                    if rule["action"] == "drop":
                        rule["until"] = now + float(rule["seconds"] if rule.get("seconds") is not None else 2)
                    hit = rule
                if hit is not None:
                    break
            if hit is not None and self.fault_file is not None:
                kept = self.fault_file.with_name(f".{self.fault_file.name}.stub")
                kept.write_text(json.dumps(rules))
                kept.replace(self.fault_file)
        if hit is not None:
            self.record(
                "fault", detail=f"{hit['action']} on a request matching {hit['match']!r}", request=request
            )
        return hit


@dataclass
class RunningStub:
    url: str
    state: ClusterState


@contextmanager
def elasticsearch_stub(
    state: ClusterState | None = None, address: tuple[str, int] = ("127.0.0.1", 0)
) -> Iterator[RunningStub]:
    """Serve on `address` (an ephemeral port of 127.0.0.1 unless told; loopback only) until the block ends."""
    import base64

    if not address[0].startswith("127."):
        raise ValueError(f"the Elasticsearch stub serves on loopback only, not {address[0]}")
    cluster = state or ClusterState()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorised(self) -> bool:
            auth = self.headers.get("Authorization")
            cluster.seen_authorization.append(auth)
            if cluster.credentials is not None:
                expected = "Basic " + base64.b64encode(cluster.credentials.encode()).decode()
                if auth != expected:
                    self.reply(401, {"error": "security_exception", "status": 401})
                    return False
            return True

        def faulted(self, path: str) -> bool:
            """Apply the fault rule this request hits; True when it was answered (or dropped) here."""
            request = f"{self.command} {path}"
            rule = cluster.fault_for(request)
            if rule is None:
                return False
            if rule["action"] == "slow":
                time.sleep(float(rule.get("seconds") or 4))
                cluster.record("fault_over", request=request)
                return False
            if rule["action"] == "drop":
                self.close_connection = True  # no answer at all: the client sees the connection close
                return True
            self.reply(500, {"error": {"type": "fleet_fault", "reason": f"{request} failed"}, "status": 500})
            return True

        def do_PUT(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            if not self.authorised():
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.partition("?")[0]
            parts = path.strip("/").split("/")
            cluster.requests.append(f"{self.command} {path}")
            if self.faulted(path):
                return
            if cluster.redirect_to and parts[0] == "_snapshot":
                self.send_response(307)
                self.send_header("Location", cluster.redirect_to + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if len(parts) == 3 and parts[0] == "_snapshot" and self.command == "PUT":
                if parts[1] not in cluster.repositories:
                    self.reply(404, {"error": "repository_missing_exception"})
                    return
                cluster.snapshots[f"{parts[1]}/{parts[2]}"] = json.loads(json.dumps(cluster.indices))
                self.reply(200, {"snapshot": {"snapshot": parts[2], "state": "SUCCESS"}})
            elif len(parts) == 4 and parts[0] == "_snapshot" and parts[3] == "_restore":
                kept = cluster.snapshots.get(f"{parts[1]}/{parts[2]}")
                if kept is None:
                    self.reply(404, {"error": "snapshot_missing_exception"})
                    return
                wanted = [i for i in str(body.get("indices", "")).split(",") if i] or list(kept)
                open_ones = [i for i in wanted if i in cluster.indices and i not in cluster.closed]
                if open_ones:
                    self.reply(500, {"error": f"cannot restore index [{open_ones[0]}]: an open index exists"})
                    return
                for index in wanted:
                    cluster.indices[index] = json.loads(json.dumps(kept[index]))
                    cluster.closed.discard(index)
                total = len(wanted)
                cluster.record("snapshot_restored", snapshot=parts[2], indices=total)
                self.reply(
                    200,
                    {
                        "snapshot": {
                            "snapshot": parts[2],
                            "indices": wanted,
                            "shards": {"total": total, "failed": 0, "successful": total},
                        }
                    },
                )
            elif len(parts) == 2 and parts[1] == "_close":
                cluster.closed.update(i for i in parts[0].split(",") if i in cluster.indices)
                self.reply(200, {"acknowledged": True})
            elif len(parts) == 3 and parts[1] == "_doc":
                cluster.indices.setdefault(parts[0], {})[parts[2]] = body
                self.reply(201, {"result": "created"})
            else:
                self.reply(404, {"error": f"no handler for {self.command} {path}"})

        def do_GET(self) -> None:
            if not self.authorised():
                return
            path, _, query = self.path.partition("?")
            parts = path.strip("/").split("/")
            if self.faulted(path):
                return
            if parts[0] == "_snapshot" or (len(parts) == 2 and parts[1] == "_count"):
                cluster.requests.append(f"GET {path}")
            if len(parts) == 3 and parts[0] == "_snapshot":
                kept = cluster.snapshots.get(f"{parts[1]}/{parts[2]}")
                if kept is None:
                    self.reply(404, {"error": "snapshot_missing_exception"})
                else:
                    self.reply(200, {"snapshots": [{"snapshot": parts[2], "indices": sorted(kept)}]})
            elif len(parts) == 2 and parts[1] == "_count":
                if parts[0] in cluster.closed:
                    self.reply(400, {"error": "index_closed_exception"})
                else:
                    self.reply(200, {"count": len(cluster.indices.get(parts[0], {}))})
            elif path == "/_cluster/health":
                self.reply(
                    200,
                    {
                        "cluster_name": "stub",
                        "status": cluster.status,
                        "number_of_nodes": cluster.data_nodes,
                        "number_of_data_nodes": cluster.data_nodes,
                        "active_primary_shards": cluster.active_shards // 2,
                        "active_shards": cluster.active_shards,
                    },
                )
            elif path == "/_cluster/settings":
                persistent: dict[str, Any] = {}
                if cluster.max_shards_per_node is not None:
                    persistent = {"cluster": {"max_shards_per_node": str(cluster.max_shards_per_node)}}
                body: dict[str, Any] = {"persistent": persistent, "transient": {}}
                if "include_defaults=true" in query:
                    body["defaults"] = {"cluster": {"max_shards_per_node": "1000"}}
                self.reply(200, body)
            else:
                self.reply(404, {"error": f"no handler for {path}"})

    server = ThreadingHTTPServer(address, Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield RunningStub(f"http://{address[0]}:{server.server_address[1]}", cluster)
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str]) -> int:
    """`python -m tests.elasticsearch_stub ADDRESS PORT [FAULT_FILE EVENT_LOG]`: a healthy cluster until
    SIGTERM (the fleet's), with the fault rules of FAULT_FILE, its faults and restores in EVENT_LOG."""
    import signal

    address, port = argv[0], int(argv[1])
    state = ClusterState()
    if len(argv) > 3:
        state.fault_file, state.event_log = Path(argv[2]), Path(argv[3])
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with elasticsearch_stub(state, (address, port)):
        print("listening", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
