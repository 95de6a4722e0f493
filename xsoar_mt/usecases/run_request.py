"""What `upgrade run` is asked and what it answers: the request, the intent worked out from it (flags,
saved plan or journal), what was observed before any change, and the outcome."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from xsoar_mt.engine import RunReport
from xsoar_mt.errors import ExitCode
from xsoar_mt.observed import Observed, Reading
from xsoar_mt.plan import Plan, Scope, Waves
from xsoar_mt.waves import WaveSpec


@dataclass
class RunRequest:
    target: str | None = None
    scope: Scope = field(default_factory=Scope)
    plan_file: Path | None = None
    resume: str | None = None
    dry_run: bool = False
    probe_in_dry_run: bool = False
    ignore_preflight_errors: str | None = None
    parallel: int | None = None  # host groups at once (executor.RunOptions)
    yes: bool = False  # repeated in the printed resume command, as are the flags below
    json_output: bool = False
    waves: WaveSpec | None = None  # a resumed run keeps the waves it started with (its journal's intent)
    window_end: datetime | None = None  # start no group that would end after it (not repeated on resume)
    clock: Callable[[], float] = time.time  # now, in epoch seconds: the window's clock
    prepare_only: bool = False  # `upgrade prepare`: only the plan's fetches (engine: RunOptions.prepare_only)


@dataclass
class RunOutcome:
    report: RunReport | None
    plan: Plan
    run_id: str | None
    run_dir: Path | None
    recorded: list[tuple[str, str]] = field(default_factory=list)
    resume_command: str | None = None
    tenants_down: list[str] = field(default_factory=list)  # now, as the run last saw the servers
    lagging_functions: tuple[str, ...] = ()  # what does not work now because hosts lag main

    @property
    def exit_code(self) -> ExitCode:
        return self.report.exit_code if self.report else ExitCode.OK


@dataclass(frozen=True)
class Intent:
    """What the run is to do: from the flags, a saved plan, or the journal of the run it resumes."""

    target: str
    scope: Scope
    waves: Waves | WaveSpec | None = None  # a resumed run's waves, or a saved plan's spec rebuilt
    downloaded: Mapping[str, str] = field(
        default_factory=dict
    )  # release -> sha256, installers fetched so far
    resuming: bool = False


@dataclass(frozen=True)
class Sight:
    """What was observed before any change: the state, what each server answered, and where /tmp is
    noexec, the directory each installer extracts to instead."""

    observed: Observed
    readings: Mapping[str, Reading] = field(default_factory=dict)
    extract_dirs: Mapping[str, str] = field(default_factory=dict)
