"""Elasticsearch credentials go only where the operator sent them: a redirect to another origin (another
host or port, or from https down to plain http) is followed without them. urllib by itself copies every
`add_header` header onto any redirect. Served on loopback (127.0.0.1 and 127.0.0.2, two origins)."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from xsoar_mt.checks.elasticsearch import _SameOriginCredentials, get, same_origin


@contextmanager
def server(address: str, redirect_to: str | None, seen: list[str | None]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            if redirect_to is not None and not self.path.startswith("/landed"):
                self.send_response(302)
                self.send_header("Location", f"{redirect_to}/landed{self.path}")  # "": this server
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"status": "green"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer((address, 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_credentials_are_not_sent_on_a_redirect_to_another_host() -> None:
    at_start: list[str | None] = []
    elsewhere: list[str | None] = []
    with server("127.0.0.2", None, elsewhere) as other, server("127.0.0.1", other, at_start) as first:
        assert get(first, "/_cluster/health", "elastic:s3cret-pass") == '{"status": "green"}'
    assert at_start == ["Basic ZWxhc3RpYzpzM2NyZXQtcGFzcw=="]
    assert elsewhere == [None]


def test_credentials_go_along_a_redirect_within_the_same_origin() -> None:
    seen: list[str | None] = []
    with server("127.0.0.1", "", seen) as same:  # redirects to itself: /x -> /landed/x
        get(same, "/_cluster/health", "an-api-key-1234")
    assert seen == ["ApiKey an-api-key-1234", "ApiKey an-api-key-1234"]


def test_a_redirect_to_the_same_host_on_another_port_drops_the_credentials() -> None:
    target: list[str | None] = []
    with server("127.0.0.1", None, target) as other, server("127.0.0.1", other, []) as first:
        get(first, "/_cluster/health", "an-api-key-1234")
    assert target == [None]


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("https://es.example:9200/a", "https://es.example:9200/b", True),
        ("https://es.example/a", "https://es.example:443/b", True),
        ("https://es.example:9200/a", "http://es.example:9200/b", False),  # down to plain http
        ("https://es.example/a", "http://es.example/b", False),
        ("https://es.example:9200/a", "https://evil.example:9200/b", False),
        ("https://es.example:9200/a", "https://es.example:9201/b", False),
        ("https://es.example/a", "https://es.example:bad/b", False),
    ],
)
def test_same_origin_is_scheme_host_and_port(first: str, second: str, same: bool) -> None:
    assert same_origin(first, second) is same


def test_a_redirect_from_https_to_http_is_followed_without_the_credentials() -> None:
    request = urllib.request.Request("https://es.example:9200/_cluster/health")
    request.add_unredirected_header("Authorization", "ApiKey k3y-value")
    handler = _SameOriginCredentials()
    down = handler.redirect_request(request, None, 302, "Found", {}, "http://es.example:9200/_cluster/health")
    assert down is not None and not down.has_header("Authorization")
    kept = handler.redirect_request(request, None, 302, "Found", {}, "https://es.example:9200/other")
    assert kept is not None and kept.get_header("Authorization") == "ApiKey k3y-value"
