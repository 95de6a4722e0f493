"""One handler per step kind, looked up by the plan's `Action` (the interface is in base.py).

A new kind of step is one new module here holding its handler, and one line in `HANDLER_TYPES`.
"""

from __future__ import annotations

from collections.abc import Mapping

from xsoar_mt.engine.steps.backup import Backup
from xsoar_mt.engine.steps.base import ServerStep, StepHandler
from xsoar_mt.engine.steps.fetch import Fetch
from xsoar_mt.engine.steps.healthy import WaitHealthy
from xsoar_mt.engine.steps.install import Install
from xsoar_mt.engine.steps.purge import Purge
from xsoar_mt.engine.steps.restore import Restore
from xsoar_mt.engine.steps.restore_snapshot import RestoreSnapshot
from xsoar_mt.engine.steps.start import Start
from xsoar_mt.engine.steps.stop import Stop
from xsoar_mt.engine.steps.validate import Validate
from xsoar_mt.plan import Action

HANDLER_TYPES: tuple[type[StepHandler], ...] = (
    Backup,
    Fetch,
    Stop,
    Install,
    Start,
    WaitHealthy,
    Validate,
    Purge,
    Restore,
    RestoreSnapshot,
)

__all__ = ["HANDLER_TYPES", "ServerStep", "StepHandler", "handlers"]


def handlers(types: tuple[type[StepHandler], ...] = HANDLER_TYPES) -> Mapping[Action, StepHandler]:
    """A fresh handler of each type for one run, by action. Every action has exactly one handler: a
    second for one action, or an action with none, is a programming error found at the run's start."""
    made: dict[Action, StepHandler] = {}
    for kind in types:
        if kind.action in made:
            raise ValueError(
                f"two handlers for {kind.action.value}: {type(made[kind.action]).__name__} and {kind.__name__}"
            )
        made[kind.action] = kind()
    missing = [a.value for a in Action if a not in made]
    if missing:
        raise ValueError(f"no handler for {', '.join(missing)}")
    return made
