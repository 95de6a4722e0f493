"""Asking the Elasticsearch cluster (from the operator's machine) for its health and shard settings."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request


def authorization(credentials: str | None) -> str | None:
    """`user:password` becomes Basic authentication; anything else is sent as an `ApiKey`."""
    if not credentials:
        return None
    if ":" in credentials:
        return "Basic " + base64.b64encode(credentials.encode()).decode()
    return f"ApiKey {credentials}"


def get(url: str, path: str, credentials: str | None, timeout: float = 10.0) -> str:
    """GET `path` on the cluster; raise OSError with a message for an operator when it fails."""
    request = urllib.request.Request(url.rstrip("/") + path, headers={"Accept": "application/json"})
    header = authorization(credentials)
    if header:
        request.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return str(answer.read().decode("utf-8", errors="replace"))
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
