"""Whether an installer `upgrade prepare` left on a server can stand in for the fetch: the pure decision.

A fetch is skipped only when a record of the prepared installer exists for the same server and release,
names the build the inventory asks for and the path `RemotePaths` gives, agrees with the inventory's pinned
sha256 (when there is one), and the file found in place right now has that sha256. Anything else fetches
again, and says why when something had been prepared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from xsoar_mt.inventory import Inventory
from xsoar_mt.observed import Prepared, stamp
from xsoar_mt.plan import Action, Plan
from xsoar_mt.remote_paths import RemotePaths

_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FetchDecision:
    skip: bool  # the installer in place is the one prepared: no fetch
    record: Prepared | None = None  # the record the decision is about
    note: str | None = None  # why a prepared installer is fetched again (None: nothing was prepared)


def claim(
    records: Iterable[Prepared], server: str, release: str, build: str | None, path: str, pinned: str | None
) -> FetchDecision | Prepared:
    """Before looking at the file: the record that says the installer is in place, or the decision to
    fetch (with a note when a record exists but no longer fits)."""
    record = next((r for r in records if r.server == server and r.release == release), None)
    if record is None:
        return FetchDecision(False)
    when = f"prepared at {stamp(record.at)}"
    if record.build != build:
        return FetchDecision(
            False,
            record,
            f"the installer for {release} was {when} for build "
            f"{record.build or 'latest'}; the inventory asks for {build or 'latest'}: fetching it again",
        )
    if record.path != path:
        return FetchDecision(
            False,
            record,
            f"the installer for {release} was {when} at {record.path}, not at {path}: fetching it again",
        )
    if pinned is not None and pinned != record.sha256:
        return FetchDecision(
            False,
            record,
            f"the installer for {release} {when} has sha256 {record.sha256}; "
            f"the inventory pins {pinned}: fetching it again",
        )
    return record


def digest_of(output: str) -> str | None:
    """The sha256 `sha256sum` printed first, or None (no file, or not a digest)."""
    first = output.split()[:1]
    return first[0] if first and _DIGEST.fullmatch(first[0]) else None


def decide(record: Prepared, found: str | None) -> FetchDecision:
    """With the file's sha256 as found now (None: no such file, or not executable)."""
    when = f"prepared at {stamp(record.at)}"
    if found is None:
        return FetchDecision(
            False,
            record,
            f"the installer for {record.release} {when} is no longer at "
            f"{record.path} (or not executable): fetching it again",
        )
    if found != record.sha256:
        return FetchDecision(
            False,
            record,
            f"the installer for {record.release} changed since it was {when} "
            f"(sha256 {found}, prepared {record.sha256}): fetching it again",
        )
    return FetchDecision(True, record)


def prepared_in_plan(
    plan: Plan, inventory: Inventory, records: Mapping[str, Sequence[Prepared]]
) -> tuple[Prepared, ...]:
    """The records of installers the plan's fetches would find prepared (same release, build, path and
    pinned sha256; whether the file is still whole is checked on the night, right before the fetch)."""
    paths, installer = RemotePaths.of(inventory), inventory.installer
    found: list[Prepared] = []
    for phase in plan.phases:
        for step in phase.steps:
            if step.action is not Action.FETCH:
                continue
            for server in step.servers:
                claimed = claim(
                    records.get(server, ()),
                    server,
                    step.release,
                    installer.build,
                    paths.installer(step.release),
                    installer.sha256.get(step.release),
                )
                if isinstance(claimed, Prepared):
                    found.append(claimed)
    return tuple(found)
