"""Upload delivery from a link: the operator's machine downloads each installer once, into a private cache.

The download is HTTPS with the certificate verified (Python's default context: the system's CA bundle,
or `SSL_CERT_FILE` for a proxy's CA) and honours `HTTPS_PROXY`/`NO_PROXY` as urllib does. The link carries
a token, so it is registered with the redactor, never written anywhere, and no error message quotes it.

Each installer goes to `<cache>/demisto-<major>_<minor>_<latest|build>.sh` (directory 0700, file 0600),
written as `.part` and renamed only once complete and, when a sha256 is known, verified. A cached file is
reused only when its sha256 matches one already known for that release (`installer.sha256`, or what the
run being resumed downloaded): `latest` moves, so an unpinned cache is never trusted across runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from xsoar_mt import __version__
from xsoar_mt.errors import XsoarMtError
from xsoar_mt.installer import cache_name, file_sha256, normalise_link
from xsoar_mt.secrets import REDACTOR

CHUNK = 1 << 20
ProgressCallback = Callable[[int, int], None]


class DownloadFailed(XsoarMtError):
    """The installer could not be downloaded (or was not what was expected); nothing was sent anywhere."""


@dataclass(frozen=True)
class LocalInstaller:
    """An installer on the operator's machine, ready to be uploaded."""

    path: Path
    sha256: str
    reused: bool = False
    simulated: bool = False  # a dry run's stand-in: nothing was downloaded

    @property
    def how(self) -> str:
        if self.simulated:
            return "would be downloaded once on this machine"
        return "taken from the cache" if self.reused else "downloaded"


@contextmanager
def _opened(url: str, what: str, timeout: float, method: str = "GET") -> Iterator[Any]:
    """The HTTPS answer for `url`, certificate verified; every failure a DownloadFailed naming `what`."""
    import ssl
    import urllib.error
    import urllib.request

    class HttpsOnly(urllib.request.HTTPRedirectHandler):
        """Follow the vendor's redirects (to its CDN), but never away from HTTPS."""

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            if urlsplit(newurl).scheme != "https":
                raise DownloadFailed(f"{what}: redirected to a plain-http address, refused")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ssl.create_default_context()), HttpsOnly()
    )
    request = urllib.request.Request(url, headers={"User-Agent": f"xsoar-mt/{__version__}"}, method=method)
    try:
        with opener.open(request, timeout=timeout) as response:
            if response.headers.get("Content-Type", "").startswith("text/html"):
                raise DownloadFailed(
                    f"{what}: the link answered with a web page, not an installer",
                    hint="the link's token may have expired: get a fresh link from the vendor",
                )
            yield response
    except urllib.error.HTTPError as exc:
        hint = "the link's token may be wrong or expired" if exc.code in (401, 403) else None
        raise DownloadFailed(f"{what}: HTTP {exc.code} {exc.reason}", hint=hint) from None
    except urllib.error.URLError as exc:
        hint = None
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            hint = "the server's certificate is not trusted here: behind a TLS proxy, set SSL_CERT_FILE to its CA"
        raise DownloadFailed(f"{what}: {_reason(exc.reason)}", hint=hint) from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a truncated body
        raise DownloadFailed(f"{what}: {_reason(exc)}") from None


def _vendor_url(link: str, release: str, build: str | None) -> tuple[str, str]:
    """The link for `release` (registered with the redactor: it carries the token) and its host."""
    url = normalise_link(link, release, build)
    REDACTOR.register(url)
    return url, urlsplit(url).hostname or "the download host"


def check_link(link: str, release: str, build: str | None, timeout: float = 20.0) -> str:
    """Ask for the installer's headers only (HEAD, as `wget --spider` does): what preflight says of the link."""
    url, host = _vendor_url(link, release, build)
    with _opened(url, f"the {release} installer link ({host})", timeout, method="HEAD") as response:
        size = int(response.headers.get("Content-Length") or 0)
    return f"the {release} installer link answers from here ({host}{f', {size >> 20} MiB' if size else ''})"


def download_installer(
    link: str,
    release: str,
    build: str | None,
    cache: Path,
    *,
    known_sha256: str | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = 60.0,
) -> LocalInstaller:
    """Download the installer for `release` into `cache` (or reuse a cached one whose sha256 is known)."""
    url, host = _vendor_url(link, release, build)
    final = cache / cache_name(release, build)
    if known_sha256 and final.is_file() and file_sha256(final) == known_sha256:
        return LocalInstaller(final, known_sha256, reused=True)
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(cache, 0o700)
    part = final.with_name(final.name + ".part")
    what = f"downloading the {release} installer from {host}"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    done = False
    try:
        os.fchmod(fd, 0o600)
        sha = hashlib.sha256()
        received = total = 0
        with _opened(url, what, timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            free = shutil.disk_usage(cache).free
            if total > free:
                raise DownloadFailed(
                    f"{what}: it is {total >> 20} MiB and {cache} has {free >> 20} MiB free",
                    hint="free space there, or run from another directory (--state-dir)",
                )
            try:
                while chunk := response.read(CHUNK):
                    os.write(fd, chunk)
                    sha.update(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(received, total)
            except (OSError, ValueError) as exc:
                raise DownloadFailed(f"{what}: {_reason(exc)}") from None
        os.fsync(fd)
        if total and received != total:
            raise DownloadFailed(f"{what}: got {received} of {total} bytes")
        if received == 0:
            raise DownloadFailed(f"{what}: the answer was empty")
        digest = sha.hexdigest()
        if known_sha256 and digest != known_sha256:
            raise DownloadFailed(
                f"{what}: its sha256 is {digest}, expected {known_sha256}",
                hint="check installer.sha256 and installer.build; a `latest` link may now give a newer build",
            )
        os.replace(part, final)
        done = True
        return LocalInstaller(final, digest)
    finally:
        os.close(fd)
        if not done:
            part.unlink(missing_ok=True)


def _reason(reason: object) -> str:
    """An error's own words, without the URL (it carries the token) should a library quote it."""
    return REDACTOR.redact(str(reason) or type(reason).__name__)


class Downloads:
    """Each release's installer downloaded once per run, however many servers wait for it."""

    def __init__(self, fetch: Callable[[str, ProgressCallback | None], LocalInstaller]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._done: dict[str, LocalInstaller | DownloadFailed] = {}

    def get(self, release: str, progress: ProgressCallback | None = None) -> LocalInstaller:
        with self._lock:
            lock = self._locks.setdefault(release, threading.Lock())
        with lock:
            if release not in self._done:
                try:
                    self._done[release] = self._fetch(release, progress)
                except DownloadFailed as exc:
                    self._done[release] = exc
            found = self._done[release]
        if isinstance(found, DownloadFailed):
            raise found
        return found


def from_link(
    link: str,
    build: str | None,
    cache: Path,
    known: Mapping[str, str],
    builds: Mapping[str, str | None] | None = None,
) -> Downloads:
    """Downloads for a real run: `known` holds sha256 values to verify against (and to reuse a cache by);
    `builds` the build of each release fetched for another build than `build` (a rollback's old releases)."""
    own = dict(builds or {})
    return Downloads(
        lambda release, progress: download_installer(
            link, release, own.get(release, build), cache, known_sha256=known.get(release), progress=progress
        )
    )


def simulated(build: str | None, builds: Mapping[str, str | None] | None = None) -> Downloads:
    """Downloads for a dry run: nothing is fetched; the upload steps name the file a run would download."""
    own = dict(builds or {})
    return Downloads(
        lambda release, progress: LocalInstaller(
            Path(cache_name(release, own.get(release, build))), "<sha256 of the download>", simulated=True
        )
    )
