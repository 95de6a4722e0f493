"""What xsoar-mt knows of each server (version and its source, service, health, installer in flight): the one resolver.

Every command that needs a server's state reads it from here: preflight, `upgrade plan --probe`, the
executor before each step, `status`, `validate`, the recap and `--resume`. The facts come in as
`Reading`s (what one server answered over SSH, gathered in `probe.py`) and `Known` entries (the local
record under the state directory, `known.py`); `resolve` turns them into one `ServerView` per server.

Sources of a version, strongest first: the running service's `/about` (`api`); the marker xsoar-mt keeps
on the server, `<installer directory>/state.json` and its installer records, readable while the service
is down (`marker`); the local record of the last observation (`state`); the inventory's `version:`.
When sources disagree the strongest wins and the difference is noted. A version that cannot be known
(an installer failed or vanished since the last verified observation, and the service does not answer)
is `unknown`, with the reason; it never silently falls back to an older value. Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from xsoar_mt.errors import InvalidInput, VersionsNotGiven, VersionsUnknown
from xsoar_mt.inventory import Inventory
from xsoar_mt.plan import PlanFacts
from xsoar_mt.releases import Version
from xsoar_mt.skew import Judgement, judge_releases


class Source(StrEnum):
    API = "api"
    MARKER = "marker"
    STATE = "state"
    INVENTORY = "inventory"


class Service(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    UNKNOWN = "unknown"


def stamp(epoch: float | None) -> str:
    """A moment as operators read it in a message: UTC, to the second."""
    if epoch is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True)
class Installer:
    """One installer run xsoar-mt started on a server, as its records there show it."""

    release: str
    pid: int | None = None
    exit_code: int | None = None  # None: no exit code recorded (still running, or vanished)
    alive: bool = False  # its process still runs, on the boot it was started on
    rebooted: bool = False  # the server has booted since it was started
    started: float | None = None
    finished: float | None = None

    @property
    def in_flight(self) -> bool:
        return self.alive and self.exit_code is None

    @property
    def vanished(self) -> bool:
        return not self.alive and self.exit_code is None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.in_flight:
            return f"installer for {self.release} running (pid {self.pid}, since {stamp(self.started)})"
        if self.vanished:
            why = "the server restarted since" if self.rebooted else f"its process {self.pid} is gone"
            return f"installer for {self.release} left no exit code ({why}; started {stamp(self.started)})"
        return f"installer for {self.release} exited {self.exit_code} at {stamp(self.finished)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "alive": self.alive,
            "rebooted": self.rebooted,
            "started": self.started,
            "finished": self.finished,
        }


@dataclass(frozen=True)
class Marker:
    """xsoar-mt's own record on a server of the last version it verified or installed there."""

    version: Version
    at: float
    how: str = "api"  # api: read from /about; installer: an installer run that exited 0
    run_id: str | None = None

    def prefix(self, server: str) -> str:
        """The marker's JSON up to its time: the writer on the server appends its own clock and `}`."""
        body = {
            "server": server,
            "release": self.version.release,
            "version": str(self.version),
            "how": self.how,
            "run_id": self.run_id,
        }
        return json.dumps(body, sort_keys=True)[:-1] + ', "at": '

    @classmethod
    def parse(cls, text: str) -> Marker:
        """The marker file's JSON; raises InvalidInput when it is not one xsoar-mt wrote."""
        try:
            data = json.loads(text)
            version = Version.parse(str(data.get("version") or data["release"]))
            at, run_id, how = data["at"], data.get("run_id"), data.get("how") or "api"
            if isinstance(at, bool) or not isinstance(at, int | float) or not 0 <= at < 2**36:
                raise ValueError("at")
            if not isinstance(how, str) or not (run_id is None or isinstance(run_id, str)):
                raise ValueError("how/run_id")
            return cls(version, float(at), how, run_id)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, InvalidInput):
            raise InvalidInput(f"the marker is not one xsoar-mt wrote: {text.strip()[:80]!r}") from None


_PREPARED_FIELDS = frozenset({"server", "release", "build", "sha256", "path", "at", "run_id"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RELEASE = re.compile(r"\d+\.\d+")


@dataclass(frozen=True)
class Prepared:
    """An installer `upgrade prepare` fetched and verified ahead of the window, as its record says:
    `<installer directory>/prepared-<release>.json` on the server, and the same in the local record."""

    server: str
    release: str
    build: str | None  # installer.build when it was fetched (None: the release's latest)
    sha256: str
    path: str
    at: float
    run_id: str | None = None

    def prefix(self) -> str:
        """The record's JSON up to its time: the writer on the server appends its own clock and `}`."""
        body = {k: v for k, v in self.to_dict().items() if k != "at"}
        return json.dumps(body, sort_keys=True)[:-1] + ', "at": '

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "release": self.release,
            "build": self.build,
            "sha256": self.sha256,
            "path": self.path,
            "at": self.at,
            "run_id": self.run_id,
        }

    @classmethod
    def parse(cls, text: str) -> Prepared:
        """A record's JSON, strictly: exactly its fields, each of its type; anything else is InvalidInput."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or set(data) != _PREPARED_FIELDS:
            raise InvalidInput(f"the prepared record is not one xsoar-mt wrote: {text.strip()[:80]!r}")
        server, release, build, sha256, path, at, run_id = (
            data[k] for k in ("server", "release", "build", "sha256", "path", "at", "run_id")
        )
        well_formed = (
            isinstance(server, str)
            and isinstance(release, str)
            and _RELEASE.fullmatch(release) is not None
            and (build is None or isinstance(build, str))
            and isinstance(sha256, str)
            and _SHA256.fullmatch(sha256) is not None
            and isinstance(path, str)
            and isinstance(at, int | float)
            and not isinstance(at, bool)
            and (run_id is None or isinstance(run_id, str))
        )
        if not well_formed:
            raise InvalidInput(f"the prepared record has a field of the wrong form: {text.strip()[:80]!r}")
        return cls(server, release, build, sha256, path, float(at), run_id)


@dataclass(frozen=True)
class Reading:
    """What one server answered when it was last read over SSH (gathered by probe.py or preflight)."""

    server: str
    at: float
    error: str | None = None  # the server could not be reached or used
    sudo_ok: bool | None = None
    status_code: int | None = None  # the status command's LSB exit code: 0 running, 3 stopped
    api_version: Version | None = None
    api_error: str | None = None
    marker: Marker | None = None
    installers: tuple[Installer, ...] = ()
    # Why part of its answer could not be read (not framed as sent, a number that is not one): the
    # server's own records then count for nothing, and only its service's answer can tell its version.
    unreadable: str | None = None
    prepared: tuple[Prepared, ...] = ()  # installers `upgrade prepare` left, by their records

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Known:
    """The local record of one server: the last view of it this machine took, across runs."""

    version: Version | None
    source: Source | None
    at: float | None
    service: Service = Service.UNKNOWN
    unknown: str | None = None
    basis: Version | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": str(self.version) if self.version else None,
            "source": self.source.value if self.source else None,
            "at": self.at,
            "service": self.service.value,
            "unknown": self.unknown,
            "basis": str(self.basis) if self.basis else None,
            "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Known:
        def version(key: str) -> Version | None:
            raw = data.get(key)
            return Version.parse(str(raw)) if raw else None

        source = data.get("source")
        return cls(
            version("version"),
            Source(source) if source else None,
            _float_or_none(data.get("at")),
            Service(data.get("service") or "unknown"),
            data.get("unknown"),
            version("basis"),
            data.get("run_id"),
        )


@dataclass(frozen=True)
class ServerView:
    """One server as xsoar-mt knows it now."""

    server: str
    version: Version | None
    source: Source | None
    at: float | None
    service: Service = Service.UNKNOWN
    healthy: bool | None = None
    installer: Installer | None = None  # the latest installer run seen on it
    unknown: str | None = None  # why the version cannot be known (version is then None)
    basis: Version | None = None  # the last verified version, what a failed install is planned from
    notes: tuple[str, ...] = ()  # sources that disagree, and anything else worth saying
    reachable: bool | None = None  # None: not read this time
    error: str | None = None
    sudo_ok: bool | None = None

    @property
    def running(self) -> bool | None:
        if self.service is Service.RUNNING:
            return True
        if self.service in (Service.STOPPED, Service.FAILED):
            return False
        return None

    @property
    def planning_version(self) -> Version | None:
        """What a plan starts this server from: its version, or for an unfinished install the version before it."""
        return self.version or self.basis

    @property
    def in_flight(self) -> str | None:
        """The release of an installer still running on this server."""
        return self.installer.release if self.installer is not None and self.installer.in_flight else None

    def describe_version(self) -> str:
        if self.version is not None:
            return str(self.version)
        return f"unknown ({self.unknown})" if self.unknown else "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "version": str(self.version) if self.version else None,
            "source": self.source.value if self.source else None,
            "at": self.at,
            "service": self.service.value,
            "healthy": self.healthy,
            "installer": self.installer.to_dict() if self.installer else None,
            "unknown": self.unknown,
            "basis": str(self.basis) if self.basis else None,
            "notes": list(self.notes),
            "reachable": self.reachable,
            "error": self.error,
        }

    def known(self, run_id: str | None = None) -> Known:
        return Known(self.version, self.source, self.at, self.service, self.unknown, self.basis, run_id)


@dataclass(frozen=True)
class Observed:
    """Every server of one deployment, as resolved from what was read and what was known."""

    views: Mapping[str, ServerView] = field(default_factory=dict)

    def __getitem__(self, server: str) -> ServerView:
        return self.views[server]

    def versions(self) -> dict[str, Version]:
        """The version each server is planned from (servers with none are left out)."""
        return {name: v for name, view in self.views.items() if (v := view.planning_version) is not None}

    def unknown(self) -> list[ServerView]:
        return [view for view in self.views.values() if view.planning_version is None]

    def in_flight(self) -> dict[str, str]:
        return {name: r for name, view in self.views.items() if (r := view.in_flight) is not None}

    def stopped(self) -> list[str]:
        return [name for name, view in self.views.items() if view.running is False]

    def facts(self, backed_up: Mapping[str, Iterable[str]] | None = None, verify: bool = False) -> PlanFacts:
        """What a plan must work around, from this state (and the backups the local record lists)."""
        return PlanFacts(
            in_flight=self.in_flight(),
            down=frozenset(self.stopped()),
            backed_up={name: tuple(releases) for name, releases in (backed_up or {}).items()},
            verify=verify,
        )

    def judge(self, inventory: Inventory) -> Judgement | None:
        """The skew verdict on what every server runs now; None when some server's version is unknown."""
        releases = {name: view.version.release for name, view in self.views.items() if view.version}
        if len(releases) < len(self.views):
            return None
        return judge_releases(releases, {s.name for s in inventory.main.servers}, inventory.releases)


def resolve(
    inventory: Inventory,
    readings: Mapping[str, Reading],
    known: Mapping[str, Known],
    servers: Iterable[str] | None = None,
) -> Observed:
    """The view of each server (all of the inventory's, or `servers`) from what they answered and what was known."""
    names = list(servers) if servers is not None else [s.name for s in inventory.servers]
    return Observed(
        {
            name: resolve_server(name, readings.get(name), known.get(name), inventory.server(name).version)
            for name in names
        }
    )


def resolve_server(
    name: str, reading: Reading | None, known: Known | None, inventory_version: Version | None
) -> ServerView:
    """One server's view: the strongest source of its version, its service and any installer in flight."""
    service = _service(reading, known)
    installer = _latest(reading.installers) if reading is not None else None
    candidates = _candidates(reading, known, inventory_version)
    answered: dict[str, Any] = {
        "service": service,
        "healthy": _healthy(reading, service),
        "installer": installer,
        "reachable": reading.reachable if reading is not None else None,
        "error": reading.error if reading is not None else None,
        "sudo_ok": reading.sudo_ok if reading is not None else None,
    }
    # An answer that could not be read may hide an installer run: only the service's own answer counts.
    if reading is not None and reading.unreadable is not None:
        fresh = [c for c in candidates if c[0] is Source.API]
        if not fresh:
            basis = candidates[0][1] if candidates else (known.basis if known is not None else None)
            return ServerView(name, None, None, None, **answered, unknown=reading.unreadable, basis=basis)
        candidates = fresh
    # An installer that failed, vanished or still runs since the last verified version makes every
    # older source stale: only evidence taken after it started counts.
    if installer is not None and not installer.succeeded:
        since = installer.started or 0.0
        fresh = [c for c in candidates if c[0] is Source.API or (c[2] is not None and c[2] > since)]
        if not fresh:
            reason = installer.describe()
            if known is not None and known.unknown and known.at and known.at > since:
                reason = known.unknown
            basis = candidates[0][1] if candidates else (known.basis if known is not None else None)
            return ServerView(name, None, None, None, **answered, unknown=reason, basis=basis)
        candidates = fresh
    if not candidates:
        if known is not None and known.unknown:
            return ServerView(name, None, None, None, **answered, unknown=known.unknown, basis=known.basis)
        return ServerView(name, None, None, None, **answered)
    source, version, at = candidates[0]
    notes = tuple(
        f"{other.value} says {other_version}, {name} {_verb(source)} {version}"
        for other, other_version, _ in candidates[1:]
        if other_version.release != version.release
    )
    # each view built once, in one go: this runs for every server of the inventory, a thousand and more
    return ServerView(name, version, source, at, notes=notes, **answered)


def _candidates(
    reading: Reading | None, known: Known | None, inventory_version: Version | None
) -> list[tuple[Source, Version, float | None]]:
    """Every source's version of one server and when it was taken, the strongest first."""
    candidates: list[tuple[Source, Version, float | None]] = []
    if reading is not None and reading.api_version is not None:
        candidates.append((Source.API, reading.api_version, reading.at))
    marker = _marker_evidence(reading)
    if marker is not None:
        candidates.append((Source.MARKER, marker.version, marker.at))
    # The record is a source only of what was seen on the server: a version it kept from the inventory
    # is the inventory's, and today's inventory says better.
    if known is not None and known.version is not None and known.source not in (None, Source.INVENTORY):
        candidates.append((Source.STATE, known.version, known.at))
    if inventory_version is not None:
        candidates.append((Source.INVENTORY, inventory_version, None))
    return candidates


def _verb(source: Source) -> str:
    return {
        Source.API: "reports",
        Source.MARKER: "has a marker for",
        Source.STATE: "was last seen on",
        Source.INVENTORY: "is listed as",
    }[source]


def _marker_evidence(reading: Reading | None) -> Marker | None:
    """The marker, or a newer successful installer run it may lack (its record is xsoar-mt's too)."""
    if reading is None:
        return None
    marker = reading.marker
    done = [i for i in reading.installers if i.succeeded and i.finished is not None]
    if done:
        last = max(done, key=lambda i: i.finished or 0.0)
        newer = marker is None or (
            (last.finished or 0.0) > marker.at + 1 and last.release != marker.version.release
        )
        if newer:
            return Marker(Version.parse(last.release), last.finished or 0.0, "installer")
    return marker


def _latest(installers: tuple[Installer, ...]) -> Installer | None:
    if not installers:
        return None
    return max(installers, key=lambda i: (i.started or 0.0, i.finished or 0.0))


def _service(reading: Reading | None, known: Known | None) -> Service:
    if reading is None:
        return known.service if known is not None else Service.UNKNOWN
    if not reading.reachable:
        return Service.UNKNOWN
    if reading.api_version is not None or reading.status_code == 0:
        return Service.RUNNING
    if reading.status_code == 3:
        return Service.STOPPED
    if reading.status_code is None or reading.status_code == 4:
        return Service.UNKNOWN
    return Service.FAILED


def _healthy(reading: Reading | None, service: Service) -> bool | None:
    if service in (Service.STOPPED, Service.FAILED):
        return False
    if reading is not None and reading.api_version is not None:
        return True
    return None


def unknown_lines(views: Iterable[ServerView], inventory_name: str) -> list[str]:
    """One line per server whose version cannot be known, naming the ways to settle it."""
    lines = []
    for view in views:
        why = view.unknown or (
            view.error
            if view.reachable is False
            else "the service does not answer and nothing records its version"
        )
        lines.append(
            f"{view.server}: version unknown ({why}); settle it by starting the service so /about answers "
            f"(`sudo service demisto start` on {view.server}), or by giving `version:` for {view.server} in "
            f"{inventory_name} if it has never been upgraded by xsoar-mt"
        )
    return lines


def _float_or_none(value: object) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) and value.strip() else None
    except ValueError:
        return None


def offline_state(inventory: Inventory, known: Mapping[str, Known]) -> Observed:
    """What is known without asking the servers: the local record (`known`), then the inventory."""
    return resolve(inventory, {}, known)


def require_versions(
    observed: Observed, inventory_path: Path, *, probed: bool, hint: str, state_dir: Path | None = None
) -> None:
    """Stop when some server's version is unknown: one line per server, naming the ways to settle it.

    Without a probe nothing was asked, so the servers are only named (exit 3: give the versions, or probe);
    after a probe each line says why that server's version cannot be known (exit 7).
    """
    unknown = observed.unknown()
    if not unknown:
        return
    if not probed:
        names = ", ".join(v.server for v in unknown)
        raise VersionsNotGiven(
            [
                f"no version known for {names}: nothing is recorded for them under the state directory"
                f"{f' {state_dir.absolute()}' if state_dir is not None else ''} and {inventory_path} gives no `version:`"
            ],
            hint=hint,
        )
    raise VersionsUnknown(unknown_lines(unknown, str(inventory_path)), hint=hint)
