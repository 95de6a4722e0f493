"""The 6.x release order and version parsing: what "one version behind" means."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from xsoar_mt.errors import InvalidInput, PlanRefused, UsageError, named, shown

# The vendor's 6.x releases in order. There were no 6.3, 6.4 or 6.7 releases, so "one version" is one
# step in this list, never arithmetic on the minor number. Inventories may extend it (`releases:`).
BUILTIN_RELEASES: tuple[str, ...] = (
    "6.0",
    "6.1",
    "6.2",
    "6.5",
    "6.6",
    "6.8",
    "6.9",
    "6.10",
    "6.11",
    "6.12",
    "6.13",
    "6.14",
)

_VERSION = re.compile(  # used with fullmatch; digits are ASCII ones only
    r"""\s*v?(?P<major>\d{1,6})\.(?P<minor>\d{1,6})(?:\.(?P<patch>\d{1,6}))?   # 6.11 or 6.11.0
        (?:\s*\(\s*B?(?P<build1>\d{1,20})\s*\)|[-.+](?P<build2>\d{4,20}))?   # (B187344) or -493375
        \s*""",
    re.VERBOSE | re.ASCII,
)
_RELEASE = re.compile(r"([0-9]{1,6})\.([0-9]{1,6})")
_INSTALLER_NAME = re.compile(
    r"(?:demisto(?:server)?[-_])?(?P<ver>\d{1,6}\.\d{1,6}(?:\.\d{1,6})?)(?:-(?P<build>\d{1,20}))?", re.ASCII
)


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A running or target version: release (major.minor), patch and an optional build number.

    Versions order by major, minor, patch, then build as a number (no build sorts first). The
    dataclass's own ordering compared builds as text, and failed outright on a build against none.
    """

    major: int
    minor: int
    patch: int = 0
    build: str | None = None

    def _key(self) -> tuple[int, int, int, int, str]:
        build = self.build or ""
        return (self.major, self.minor, self.patch, int(build) if build.isdigit() else -1, build)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    @property
    def release(self) -> str:
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        return f"{text} (B{self.build})" if self.build else text

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse `6.11`, `6.11.0`, `6.10.0 (B187344)` or an installer name like `demistoserver-6.12-493375.sh`."""
        match = _VERSION.fullmatch(str(text))
        if match is None:
            name = str(text).rsplit("/", 1)[-1].removesuffix(".sh")
            found = _INSTALLER_NAME.fullmatch(name)
            if found is None:
                raise InvalidInput(f"{shown(str(text))} is not a version (expected e.g. 6.11.0)")
            return cls._from_installer(found)
        build = match["build1"] or match["build2"]
        return cls(int(match["major"]), int(match["minor"]), int(match["patch"] or 0), build)

    @classmethod
    def _from_installer(cls, found: re.Match[str]) -> Version:
        parts = [int(p) for p in found["ver"].split(".")]
        return cls(parts[0], parts[1], parts[2] if len(parts) > 2 else 0, found["build"])


@dataclass(frozen=True)
class ReleaseLine:
    """An ordered list of releases; distances between releases are counted in steps of this list."""

    releases: tuple[str, ...] = BUILTIN_RELEASES

    @classmethod
    def extended(cls, extra: Iterable[str]) -> ReleaseLine:
        """The built-in list followed by `extra` (releases newer than 6.14, in order)."""
        merged = list(BUILTIN_RELEASES)
        for release in extra:
            if release in merged:
                continue
            if _release_key(release) <= _release_key(merged[-1]):
                raise InvalidInput(
                    f"release {release} is not newer than {merged[-1]}; list only later releases, in order"
                )
            merged.append(release)
        return cls(tuple(merged))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {r: i for i, r in enumerate(self.releases)})

    def index(self, release: str) -> int:
        try:
            return self._index[release]  # type: ignore[attr-defined,no-any-return]  # set in __post_init__
        except KeyError:
            raise InvalidInput(
                f"{release} is not a known release ({self.releases[0]} to {self.releases[-1]}); "
                "add newer ones under `releases:` in the inventory"
            ) from None

    def __contains__(self, release: object) -> bool:
        return release in self._index  # type: ignore[attr-defined]  # set in __post_init__

    def distance(self, older: str, newer: str) -> int:
        """How many releases `newer` is ahead of `older` (negative when it is behind)."""
        return self.index(newer) - self.index(older)

    def next(self, release: str) -> str:
        i = self.index(release)
        if i + 1 >= len(self.releases):
            raise InvalidInput(f"no release after {release} is known")
        return self.releases[i + 1]

    def between(self, after: str, up_to: str) -> tuple[str, ...]:
        """The releases strictly after `after`, up to and including `up_to`."""
        return self.releases[self.index(after) + 1 : self.index(up_to) + 1]


def _release_key(release: str) -> tuple[int, int]:
    found = _RELEASE.fullmatch(release)
    if found is None:
        raise InvalidInput(f"{shown(release)} is not a release (expected major.minor, e.g. 6.15)")
    return int(found[1]), int(found[2])


def parse_target(text: str, line: ReleaseLine) -> str:
    """The release an upgrade targets (`--to`).

    A target that does not parse or is not a known release is a usage error (exit 2: the command line is
    wrong, not the inventory). 8.x is refused as not an upgrade (exit 4): it is a migration to another
    platform.
    """
    try:
        version = Version.parse(text)
    except InvalidInput as exc:
        raise UsageError(f"--to: {exc.message}") from None
    if version.major >= 8:
        raise PlanRefused(
            f"target {named(text)} is Cortex XSOAR {version.major}: moving from 6.x to 8.x is a migration to a "
            "different platform, not an in-place upgrade; xsoar-mt only upgrades within 6.x",
            hint="plan the move to 8.x with the vendor's migration tooling",
        )
    if version.release in line:
        return version.release
    if version.major < 6:
        raise PlanRefused(
            f"target {named(text)} is older than every 6.x release: xsoar-mt upgrades within 6.x and never "
            "downgrades"
        )
    if version.major == 6:
        raise UsageError(
            f"--to: {version.release} is not a known release ({line.releases[0]} to {line.releases[-1]})",
            hint="a release newer than the list can be added under `releases:` in the inventory",
        )
    raise UsageError(
        f"--to: {version.release} is not a Cortex XSOAR release xsoar-mt knows: there is no 7.x; "
        f"it upgrades within 6.x ({line.releases[0]} to {line.releases[-1]})"
    )
