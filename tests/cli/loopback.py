"""Inventories whose servers sit on loopback addresses where nothing answers SSH (or a listener that hangs
up before the SSH banner), for CLI tests that must reach the network layer without a fleet: a connection
is refused at once, never leaves 127.0.0.0/8, and never waits on a real server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.inventories import host, inventory, main, server, single, write


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def hang_up_before_banner() -> Iterator[int]:
    """A listener on 127.0.0.1 that accepts each connection and closes it before sending anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        done.set()
        thread.join(timeout=2)
        server.close()


@contextlib.contextmanager
def silent_listener() -> Iterator[tuple[int, threading.Event]]:
    """A listener on 127.0.0.1 that accepts connections and never says anything (an SSH client waits
    for the banner until its timeout); the event is set once a connection has been accepted."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    accepted = threading.Event()
    done = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not done.is_set():
            try:
                held.append(server.accept()[0])
                accepted.set()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1]), accepted
    finally:
        done.set()
        thread.join(timeout=2)
        for connection in held:
            connection.close()
        server.close()


def write_inventory(directory: Path, ssh_port: int | None = None, **overrides: object) -> Path:
    """One main server and one single host on 127.0.0.1, both on `ssh_port` (a closed one by default)."""
    port = ssh_port or closed_port()
    known_hosts = directory / "known_hosts"
    known_hosts.touch()
    data = inventory(
        main(single(server("main-1", "127.0.0.1", "6.10.0", ssh_port=port))),
        [host("emea", single(server("emea-1", "127.0.0.2", "6.10.0", ssh_port=port)), ["globex"])],
        name="loopback",
        deployment={"communication_port": closed_port()},
        ssh={"known_hosts": str(known_hosts), "connect_timeout": 2, "keepalive": 0},
        installer={"link": {"env": "XSOAR_MT_TEST_LINK"}},
    )
    return write(directory / "inventory.yaml", {**data, **overrides})
