"""`upgrade prepare`: by day, every step of the plan that changes no service (preflight, every installer
fetched and verified, free disk checked), run as a run is (lock, journal, resume); and which servers a
plan finds prepared.

The engine does the work (`RunOptions.prepare_only`: the scheduler runs only the plan's fetches, and the
fetch handler verifies, records and, when the installer is already in place, skips); this module holds the
command's flow and what the plan text shows of earlier prepares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from xsoar_mt.engine import Executor
from xsoar_mt.engine.prepared import claim
from xsoar_mt.events import EventSink
from xsoar_mt.inventory import Inventory
from xsoar_mt.observed import Prepared
from xsoar_mt.plan import Action, Plan
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.run import RunOutcome, RunRequest, run_upgrade


def prepare_upgrade(request: RunRequest, events: EventSink, *, prompt: Callable[[str], str] | None,
                    confirm: Callable[[Plan], bool], on_executor: Callable[[Executor], None] = lambda e: None,
                    ) -> RunOutcome:  # fmt: skip
    """Preflight, lock and journal as `upgrade run` has them; then only the plan's installer fetches.

    Nothing is stopped, started or backed up (a backup must be fresh when its server stops). Running it
    again fetches nothing that is still in place; `--resume` continues a prepare that stopped."""
    options = replace(request.options, prepare_only=True)
    return run_upgrade(replace(request, options=options), events, prompt=prompt, confirm=confirm,
                       on_executor=on_executor)  # fmt: skip


def prepared_in_plan(plan: Plan, inventory: Inventory, records: Mapping[str, Sequence[Prepared]]
                     ) -> tuple[Prepared, ...]:  # fmt: skip
    """The records of installers the plan's fetches would find prepared (same release, build, path and
    pinned sha256; whether the file is still whole is checked on the night, right before the fetch)."""
    paths, installer = RemotePaths.of(inventory), inventory.installer
    found: list[Prepared] = []
    for phase in plan.phases:
        for step in phase.steps:
            if step.action is not Action.FETCH:
                continue
            for server in step.servers:
                claimed = claim(records.get(server, ()), server, step.release, installer.build,
                                paths.installer(step.release), installer.sha256.get(step.release))  # fmt: skip
                if isinstance(claimed, Prepared):
                    found.append(claimed)
    return tuple(found)
