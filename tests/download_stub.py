"""The vendor's download endpoint on https://127.0.0.1:<port> (loopback only), with its own certificate.

It answers `/download-params/?token=...&eula=accept&downloadName=<major>_<minor>_<latest|build>` with the
installer file `demisto-<major>.<minor>.sh` (or `demisto-<major>.<minor>-<build>.sh`) from a folder, and
refuses a wrong token (403) or an unknown version (404), as the vendor does. Every request is recorded.
Clients trust it through `SSL_CERT_FILE=<stub.ca_file>`; without that, certificate verification fails.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class DownloadServer:
    folder: Path
    token: str
    corrupt: bool = False  # serve every installer with one byte changed
    html: bool = False  # answer with a login page instead of the installer
    redirect: str | None = (
        None  # answer /download-params with a 302 to this address (/cdn/NAME serves a file)
    )
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    ca_file: Path | None = None

    def link(self, token: str | None = None) -> str:
        """A link as the vendor hands it out (no downloadName: the tool adds it per hop)."""
        return (
            f"{self.url}/download-params/?token={token or self.token}&email=ops%40example.invalid&eula=accept"
        )

    def downloads(self) -> list[str]:
        """The downloadName of every GET that delivered an installer."""
        return [r["download_name"] for r in self.requests if r["method"] == "GET" and r["status"] == 200]


@contextmanager
def download_server(folder: Path, token: str, workdir: Path) -> Iterator[DownloadServer]:
    from tests.fleet.fleet import make_certificate

    stub = DownloadServer(folder, token)
    cert, key = make_certificate(["127.0.0.1"], "download-stub.xsoar.fleet")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "stub-cert.pem").write_bytes(cert)
    (workdir / "stub-key.pem").write_bytes(key)
    stub.ca_file = workdir / "stub-cert.pem"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, send_body: bool) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            name = query.get("downloadName", "")
            status, body, kind = self.resolve(parts.path, query, name)
            stub.requests.append({"method": self.command, "download_name": name, "status": status})
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def answer_redirect(self) -> bool:
            if stub.redirect is None or not self.path.startswith("/download-params"):
                return False
            stub.requests.append({"method": self.command, "download_name": "", "status": 302})
            self.send_response(302)
            self.send_header("Location", stub.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def resolve(self, path: str, query: dict[str, str], name: str) -> tuple[int, bytes, str]:
            if path.startswith("/cdn/") and (stub.folder / path[len("/cdn/") :]).is_file():
                return 200, (stub.folder / path[len("/cdn/") :]).read_bytes(), "application/x-sh"
            if not path.startswith("/download-params"):
                return 404, b"Not Found", "text/plain"
            if query.get("token") != stub.token or query.get("eula") != "accept":
                return 403, b"Forbidden", "text/plain"
            if stub.html:
                return 200, b"<html><body>Please sign in</body></html>", "text/html; charset=utf-8"
            match = re.fullmatch(r"(\d+)_(\d+)_(latest|\d+)", name)
            if not match:
                return 404, b"Not Found", "text/plain"
            major, minor, which = match.groups()
            file = stub.folder / (
                f"demisto-{major}.{minor}.sh" if which == "latest" else f"demisto-{major}.{minor}-{which}.sh"
            )
            if not file.is_file():
                return 404, b"Not Found", "text/plain"
            data = file.read_bytes()
            if stub.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])
            return 200, data, "application/x-sh"

        def do_GET(self) -> None:
            if not self.answer_redirect():
                self.answer(True)

        def do_HEAD(self) -> None:
            if not self.answer_redirect():
                self.answer(False)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(workdir / "stub-cert.pem", workdir / "stub-key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    stub.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


def link_file(stub: DownloadServer, tmp_path: Path, monkeypatch: Any) -> Path:
    """The stub's download link in a private file (for installer.link), with this machine trusting the
    stub's certificate and going to it directly (no proxy)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(stub.ca_file))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    link = tmp_path / "link"
    link.write_text(stub.link() + "\n")
    link.chmod(0o600)
    return link
