"""A small Elasticsearch stand-in on 127.0.0.1: `_cluster/health` and `_cluster/settings`, nothing else."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ClusterState:
    status: str = "green"
    data_nodes: int = 3
    active_shards: int = 10
    max_shards_per_node: int | None = None  # None: only the default (1000) appears, under `defaults`
    credentials: str | None = None  # "user:password" the stub demands (Basic), if any
    seen_authorization: list[str | None] = field(default_factory=list)


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

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            cluster.seen_authorization.append(auth)
            if cluster.credentials is not None:
                expected = "Basic " + base64.b64encode(cluster.credentials.encode()).decode()
                if auth != expected:
                    self.reply(401, {"error": "security_exception", "status": 401})
                    return
            path, _, query = self.path.partition("?")
            if path == "/_cluster/health":
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
    """`python -m tests.elasticsearch_stub ADDRESS PORT`: a healthy cluster until SIGTERM (the fleet's)."""
    import signal

    address, port = argv[0], int(argv[1])
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with elasticsearch_stub(ClusterState(), (address, port)):
        print("listening", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
