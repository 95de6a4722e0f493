"""Asking the Elasticsearch cluster (from the operator's machine) for its health and shard settings."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from xsoar_mt.secrets import REDACTOR


def authorization(credentials: str | None) -> str | None:
    """`user:password` becomes Basic authentication; anything else is sent as an `ApiKey`."""
    if not credentials:
        return None
    if ":" in credentials:
        return "Basic " + base64.b64encode(credentials.encode()).decode()
    return f"ApiKey {credentials}"


class _SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Follows a redirect, and carries the credentials only to the same origin (scheme, host and port):
    never to another host, and never from https down to plain http. urllib itself copies every header
    given with `add_header` onto any redirect, wherever it points."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        header = req.unredirected_hdrs.get("Authorization")
        if new is not None and header is not None and same_origin(req.full_url, new.full_url):
            new.add_unredirected_header("Authorization", header)
        return new


def same_origin(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    default = {"https": 443, "http": 80}
    try:
        ports = (a.port or default.get(a.scheme), b.port or default.get(b.scheme))
    except ValueError:
        return False
    return (
        a.scheme.lower() == b.scheme.lower()
        and (a.hostname or "") == (b.hostname or "")
        and ports[0] == ports[1]
    )


def get(url: str, path: str, credentials: str | None, timeout: float = 10.0) -> str:
    """GET `path` on the cluster; raise OSError with a message for an operator when it fails."""
    request = urllib.request.Request(url.rstrip("/") + path, headers={"Accept": "application/json"})
    header = authorization(credentials)
    if header:  # unredirected: `_SameOriginCredentials` decides, per redirect, whether it goes along
        request.add_unredirected_header("Authorization", header)
    opener = urllib.request.build_opener(_SameOriginCredentials())
    try:
        with opener.open(request, timeout=timeout) as answer:
            return REDACTOR.redact(answer.read().decode("utf-8", errors="replace"))  # masked as it enters
    except urllib.error.HTTPError as exc:
        raise OSError(f"{path} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"cannot reach {url} ({reason})") from None


def cluster_answers(url: str, credentials: str | None) -> tuple[str, str]:
    return (
        get(url, "/_cluster/health", credentials),
        get(url, "/_cluster/settings?include_defaults=true", credentials),
    )
