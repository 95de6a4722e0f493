"""The run engine: carries out a plan on the servers.

`Executor` (scheduler.py) is what `upgrade run` drives: lanes, waves, interrupts, the window, the outcome.
Each step is done by the handler of its action (steps/), the installer runs as a detached job
(installer_job.py), and every wait goes through one waiter (waiter.py).
"""

from xsoar_mt.engine.model import (
    RunOptions,
    RunReport,
    ServerState,
    StepFailed,
    ValidationFailed,
    WindowCheck,
    WindowClosed,
)
from xsoar_mt.engine.scheduler import Executor
from xsoar_mt.secrets import RunSecrets

__all__ = [
    "Executor",
    "RunOptions",
    "RunReport",
    "RunSecrets",
    "ServerState",
    "StepFailed",
    "ValidationFailed",
    "WindowCheck",
    "WindowClosed",
]
