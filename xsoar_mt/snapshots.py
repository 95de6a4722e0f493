"""Elasticsearch snapshots through the snapshot API, from this machine: the upgrade takes one before the
first stop, rollback restores it. Requests go to the inventory's `elasticsearch_url` with its credentials;
a redirect is followed only to the same origin (scheme, host and port), so the credentials never leave it.

Every answer is read strictly: anything but the JSON the API documents is an error naming the request.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from xsoar_mt.errors import shown

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,200}")
_INDEX = re.compile(r"[a-z0-9][a-z0-9_.+-]{0,254}")


class SnapshotError(OSError):
    """A snapshot request failed or answered something unexpected (the message is for an operator)."""


class SnapshotUnreachable(SnapshotError):
    """The cluster could not be reached, or the connection closed before it answered: the request may be
    made again (every request here is safe to repeat)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if _origin(newurl) != _origin(req.full_url):
            raise SnapshotError(f"Elasticsearch redirected to another address ({shown(newurl, 80)}): refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def request(
    url: str, method: str, path: str, credentials: str | None, body: Any = None, timeout: float = 3600.0
) -> Any:
    """`method path` on the cluster, its JSON answer; SnapshotError when it fails."""
    from xsoar_mt.checks.elasticsearch import authorization

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Accept": "application/json", "Content-Type": "application/json"},
    )
    header = authorization(credentials)
    if header:
        req.add_header("Authorization", header)
    opener = urllib.request.build_opener(_SameOrigin())
    try:
        with opener.open(req, timeout=timeout) as answer:
            text = answer.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        raise SnapshotError(f"{method} {path} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise SnapshotUnreachable(f"cannot reach {url} ({getattr(exc, 'reason', exc)})") from None
    except (http.client.HTTPException, ConnectionError) as exc:  # closed before or while it answered
        reason = type(exc).__name__ + (f": {shown(str(exc), 60)}" if str(exc) else "")
        raise SnapshotUnreachable(
            f"{method} {path}: the connection closed before an answer ({reason})"
        ) from None
    try:
        return json.loads(text)
    except ValueError:
        raise SnapshotError(f"{method} {path} answered something that is not JSON") from None


def check_name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise SnapshotError(f"{kind} {shown(value, 60)} is not a name Elasticsearch accepts")
    return value


def take(url: str, repository: str, snapshot: str, credentials: str | None) -> None:
    """Snapshot the whole cluster into `repository` as `snapshot`, waiting for it to complete."""
    path = f"/_snapshot/{check_name('repository', repository)}/{check_name('snapshot', snapshot)}"
    answer = request(
        url, "PUT", f"{path}?wait_for_completion=true", credentials, {"include_global_state": False}
    )
    state = answer.get("snapshot", {}).get("state") if isinstance(answer, dict) else None
    if state != "SUCCESS":
        raise SnapshotError(f"the snapshot {snapshot} did not complete (state {shown(str(state), 40)})")


def indices_of(url: str, repository: str, snapshot: str, credentials: str | None) -> list[str]:
    """The indices a snapshot holds."""
    path = f"/_snapshot/{check_name('repository', repository)}/{check_name('snapshot', snapshot)}"
    answer = request(url, "GET", path, credentials)
    found = answer.get("snapshots") if isinstance(answer, dict) else None
    if not isinstance(found, list) or len(found) != 1 or not isinstance(found[0], dict):
        raise SnapshotError(f"the snapshot {snapshot} is not in the repository {repository}")
    indices = found[0].get("indices")
    if not isinstance(indices, list) or not all(isinstance(i, str) and _INDEX.fullmatch(i) for i in indices):
        raise SnapshotError(f"the snapshot {snapshot}'s list of indices could not be read")
    return indices


def restore(url: str, repository: str, snapshot: str, credentials: str | None) -> int:
    """Close the snapshot's indices, restore them from it, and check every shard came back; the number of
    indices restored. Safe to repeat: closing a closed index and restoring over a closed one both work."""
    indices = indices_of(url, repository, snapshot, credentials)
    if indices:
        request(url, "POST", f"/{','.join(indices)}/_close?ignore_unavailable=true", credentials)
    path = f"/_snapshot/{repository}/{snapshot}/_restore?wait_for_completion=true"
    answer = request(
        url, "POST", path, credentials, {"indices": ",".join(indices), "include_global_state": False}
    )
    shards = answer.get("snapshot", {}).get("shards") if isinstance(answer, dict) else None
    if (
        not isinstance(shards, dict)
        or shards.get("failed") != 0
        or shards.get("successful") != shards.get("total")
    ):
        raise SnapshotError(
            f"the restore of {snapshot} did not bring every shard back ({shown(str(shards), 80)})"
        )
    return len(indices)
