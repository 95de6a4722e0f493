"""What a run reports and is given: its options, each server's state, step failures and the run's report."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from xsoar_mt.errors import ExitCode, XsoarMtError
from xsoar_mt.observed import ServerView
from xsoar_mt.plan import Phase, Step
from xsoar_mt.releases import Version
from xsoar_mt.remote import RemoteShell
from xsoar_mt.window import Refusal

ShellFor = Callable[[str], RemoteShell]
Measured = dict[str, dict[str, float]]  # server -> action -> minutes this run took


class WindowCheck(Protocol):
    """Would these phases, started now, end before the window does? (window.py)"""

    end: float

    def check(
        self, phases: Sequence[Phase], measured: Mapping[str, Mapping[str, float]]
    ) -> Refusal | None: ...


class StepFailed(XsoarMtError):
    exit_code = ExitCode.STEP_FAILED

    def __init__(
        self,
        step: Step,
        server: str | None,
        message: str,
        *,
        hint: str | None = None,
        servers: tuple[str, ...] | None = None,
        interrupted: bool = False,
    ) -> None:
        where = f" on {server}" if server else ""
        super().__init__(f"step {step.id} ({step.action.value}){where} failed: {message}", hint=hint)
        self.step = step
        self.server = server
        self.detail = f"{server}: {message}" if server else message
        # the servers this failure is about (an HA step may fail on one server and succeed on another)
        self.servers = servers if servers is not None else ((server,) if server else step.servers)
        self.interrupted = interrupted  # cut off by the operator's second interrupt, not a fault


class ValidationFailed(StepFailed):
    exit_code = ExitCode.VALIDATION_FAILED


@dataclass
class ServerState:
    """What the run knows of a server now: its view, and how the run went for it."""

    view: ServerView
    last_step: str | None = None
    outcome: str | None = None  # one of recap.OUTCOMES, settled from the step outcomes at the end

    @property
    def version(self) -> Version | None:
        return self.view.version

    @property
    def running(self) -> bool | None:
        return self.view.running


@dataclass(frozen=True)
class RunOptions:
    # Host groups at once; None: one at a time, or a whole wave at once (estimate.batches).
    parallel: int | None = None
    prepare_parallel: int = 16
    poll_min: float = 0.5
    poll_max: float = 5.0
    reconnect_timeout: float = 300.0
    # `upgrade prepare`: only the plan's installer fetches (nothing stopped, started or backed up),
    # each installer verified and recorded
    prepare_only: bool = False


@dataclass(frozen=True)
class WindowClosed:
    """Where a run stopped for its window: the group it did not start, the group phases it finished and
    those left, and what does not work until the hosts catch up with main."""

    refusal: Refusal
    done: tuple[Phase, ...]
    left: tuple[Phase, ...]
    degraded_functions: tuple[str, ...]


@dataclass
class RunReport:
    outcome: str  # succeeded | failed | interrupted | window-closed
    servers: dict[str, ServerState]
    steps_done: int
    failures: list[str] = field(default_factory=list)
    validation_only: bool = False  # every failure was a validation step's
    window: WindowClosed | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome == "failed" and self.validation_only:
            return ExitCode.VALIDATION_FAILED
        return {
            "succeeded": ExitCode.OK,
            "failed": ExitCode.STEP_FAILED,
            "interrupted": ExitCode.INTERRUPTED,
            "window-closed": ExitCode.WINDOW_CLOSED,
        }[self.outcome]


def state_dict(state: ServerState) -> dict[str, object]:
    return {
        **state.view.to_dict(),
        "running": state.running,
        "last_step": state.last_step,
        "outcome": state.outcome,
    }
