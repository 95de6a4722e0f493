"""Carrying out a plan: phases in the order `estimate.batches` gives (waves are barriers), lanes side by
side, the window checked before each group, interrupts, and a clean stop on failure.

On a failure or a first interrupt no new group is started, and a group already under way is finished (or,
if nothing was installed in it yet, started again), so no server is left stopped and no HA group or DR
pair is left on mixed versions where the vendor's order allows it. Each step is done by the handler of
its action (steps/); what every part shares is the run's context (context.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from xsoar_mt.download import Downloads
from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import (
    RunOptions,
    RunReport,
    ServerState,
    ShellFor,
    StepFailed,
    WindowCheck,
    state_dict,
)
from xsoar_mt.engine.outcome import Progress, finished_data, outcome, report
from xsoar_mt.engine.step_runner import run_step
from xsoar_mt.engine.steps import handlers
from xsoar_mt.engine.steps.fetch import announce_prepared
from xsoar_mt.engine.steps.service import restart_what_was_stopped
from xsoar_mt.engine.window_gate import WindowGate
from xsoar_mt.estimate import batches
from xsoar_mt.events import EventSink
from xsoar_mt.inventory import Inventory
from xsoar_mt.journal import RunDir
from xsoar_mt.known import KnownState
from xsoar_mt.observed import Observed, Prepared
from xsoar_mt.plan import Action, Phase, PhaseKind, Plan, Step
from xsoar_mt.secrets import RunSecrets


def fetches(plan: Plan) -> list[tuple[Phase, Step]]:
    """What `upgrade prepare` runs of a plan: its installer fetches, all hops, and nothing else."""
    return [
        (p, s)
        for p in plan.phases
        if p.kind is PhaseKind.PREPARE
        for s in p.steps
        if s.action is Action.FETCH
    ]


class Executor:
    def __init__(
        self,
        inventory: Inventory,
        plan: Plan,
        shell_for: ShellFor,
        events: EventSink,
        observed: Observed,
        secrets: RunSecrets,
        options: RunOptions = RunOptions(),
        run_dir: RunDir | None = None,
        downloads: Downloads | None = None,
        known: KnownState | None = None,
        run_id: str | None = None,
        write_markers: bool = True,
        window: WindowCheck | None = None,
        clock: Callable[[], float] = time.monotonic,
        prepared: Mapping[str, Sequence[Prepared]] | None = None,
        builds: Mapping[str, str | None] | None = None,
        snapshots: Mapping[str, str] | None = None,
    ) -> None:
        self.progress = Progress()
        self.run = RunContext(
            inventory,
            plan,
            shell_for,
            events,
            observed,
            secrets,
            options,
            run_dir,
            downloads,
            known,
            run_id,
            write_markers,
            clock,
            prepared,
        )
        if builds is not None:  # a rollback fetches each old release's own build (RollbackPlan.builds)
            self.run.builds = dict(builds)
        if snapshots is not None:  # and restores each group's own snapshot (RollbackPlan.snapshots)
            self.run.snapshots = dict(snapshots)
        self.plan = plan
        self.options = options
        self.window = window
        self.gate = WindowGate(self.run, self.progress, window)
        self.handlers = handlers()

    # What run.py and the tests read or replace: kept on the context every part shares.
    @property
    def inv(self) -> Inventory:
        return self.run.inv

    @inv.setter
    def inv(self, inventory: Inventory) -> None:
        self.run.inv = inventory

    @property
    def events(self) -> EventSink:
        return self.run.events

    @events.setter
    def events(self, sink: EventSink) -> None:
        self.run.events = sink

    @property
    def state(self) -> dict[str, ServerState]:
        return self.run.state

    # -- control ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Called from a signal handler: it only counts. The run notices it between and within steps.

        First: finish the groups under way, start nothing new. Second: stop waiting for anything.
        """
        self.run.interrupts += 1

    def fail_run(self, message: str) -> None:
        """Something outside any step (the journal, say) went wrong: start nothing new, and say why."""
        with self.run.lock:
            if message not in self.progress.fatal:
                self.progress.fatal.append(message)

    @property
    def stopping(self) -> bool:
        p = self.progress
        return self.run.interrupts > 0 or bool(p.failures) or bool(p.fatal) or p.window_closed is not None

    @property
    def abandon(self) -> bool:
        return self.run.abandon

    # -- the run ------------------------------------------------------------------------------------

    def execute(self) -> RunReport:
        run, total = self.run, self.plan.step_count
        if self.options.prepare_only:
            total = len(fetches(self.plan))
            run.emit(
                "run-started",
                f"prepare: {total} installer fetch steps to {self.plan.target} on "
                f"{self.plan.deployment} (nothing is stopped, started or backed up)",
                target=self.plan.target,
                steps=total,
                prepare=True,
            )
        else:
            run.emit(
                "run-started",
                f"run: {total} steps to {self.plan.target} on {self.plan.deployment}",
                target=self.plan.target,
                steps=total,
            )
            announce_prepared(run, [(n, s.release) for _, s in fetches(self.plan) for n in s.servers])
        try:
            if self.options.prepare_only:
                self._run_lanes([(p, [s]) for p, s in fetches(self.plan)], self.options.prepare_parallel)
            else:
                self._run_batches()
        except Exception as exc:  # a bug or an I/O error outside any step: still a recap and an exit code
            self.fail_run(f"unexpected error: {type(exc).__name__}: {exc}")
        run.notice()
        result = outcome(self.progress, run.interrupts, total)
        finished = report(run, self.progress, result)
        more = finished_data(finished.window)
        try:
            run.emit(
                "run-finished",
                f"run {result}: {self.progress.steps_done} of {total} steps done",
                outcome=result,
                fleet={n: state_dict(s) for n, s in run.state.items()},
                **more,
            )
        except Exception as exc:  # the recap still comes, from the report
            finished.failures.append(f"could not report the end of the run: {exc}")
        return finished

    def _run_batches(self) -> None:
        phases = list(self.plan.phases)
        for batch, width in batches(phases, self.options.parallel):
            self.run.notice()
            if self.stopping:
                self.progress.skipped = True
                return
            if batch[0].kind is PhaseKind.PREPARE:
                following = next((p for p in phases if p.group is not None), None)
                if following is not None and not self.gate.fits([batch[0], following]):
                    self.progress.skipped = True
                    return
                self._run_lanes([(batch[0], [s]) for s in batch[0].steps], self.options.prepare_parallel)
            else:
                if batch[0].wave is not None and batch[0].group is not None:
                    self._announce_wave(batch, width)
                self._run_lanes([(p, list(p.steps)) for p in batch], width)

    def _announce_wave(self, batch: list[Phase], width: int) -> None:
        wave, count = batch[0].wave, self.plan.waves.count if self.plan.waves else 0
        groups = [p.group or "" for p in batch]
        at_once = "one at a time" if width <= 1 else f"up to {min(width, len(batch))} at once"
        self.run.emit(
            "wave-started",
            f"wave {wave} of {count} to {batch[0].release}: {len(batch)} host group"
            f"{'' if len(batch) == 1 else 's'} ({', '.join(groups)}), {at_once}",
            wave=wave,
            groups=groups,
            release=batch[0].release,
            parallel=width,
        )

    # -- lanes --------------------------------------------------------------------------------------

    def _run_lanes(self, lanes: list[tuple[Phase, list[Step]]], width: int) -> None:
        if len(lanes) == 1 or width <= 1:
            for phase, lane in lanes:
                self.run.notice()
                if self.stopping:
                    self.progress.skipped = True
                    return
                self._run_lane(phase, lane)
            return
        # The lanes that start at once are let through the window here, in the plan's order (as the
        # estimate takes them), not in whichever order their threads happen to ask; the rest when they start.
        admitted = 0
        for phase, _ in lanes[:width]:
            if phase.group is not None and not self.gate.fits([phase]):
                self.progress.skipped = True
                lanes = lanes[:admitted]
                break
            admitted += 1
        with ThreadPoolExecutor(max_workers=min(width, len(lanes)) or 1) as pool:
            futures = [
                pool.submit(self._run_lane, phase, lane, i < admitted)
                for i, (phase, lane) in enumerate(lanes)
            ]
            self._wait(futures)

    def _wait(self, futures: list[Future[None]]) -> None:
        pending = set(futures)
        while pending:
            self.run.notice()
            _, pending = wait(pending, timeout=0.2)
        for future in futures:
            try:
                future.result()
            except Exception as exc:  # _run_lane catches everything it can; this is the last net
                self.fail_run(f"unexpected error in a lane: {type(exc).__name__}: {exc}")

    def _run_lane(self, phase: Phase, steps: list[Step], admitted: bool = False) -> None:
        """One phase (or one prepare step). Once its first step ran, it is finished unless a step of its own
        fails or a second interrupt comes: a group is never left half-done because another lane failed, or
        because the window closed. A group starts only if the window leaves time for it (`admitted`: it
        was let through already, with the lanes starting beside it)."""
        run, progress = self.run, self.progress
        run.notice()
        halted = run.interrupts > 0 or bool(progress.failures) or bool(progress.fatal)
        if halted or not (admitted or phase.group is None or self.gate.fits([phase])):
            progress.skipped = True
            return
        with run.lock:
            progress.begun.add(phase.id)
        began: list[Step] = []
        for step in steps:
            run.notice()
            if run.abandon or progress.fatal:
                progress.skipped = True
                return
            began.append(step)
            try:
                run_step(self.run, self.progress, self.handlers, step)
            except StepFailed as failure:
                with run.lock:
                    progress.failures.append(failure)
                restart_what_was_stopped(self.run, began)
                return
            except Exception as exc:  # a bug, or an I/O error around the step: a failure all the same
                unexpected = StepFailed(step, None, f"unexpected error: {type(exc).__name__}: {exc}")
                with run.lock:
                    progress.failures.append(unexpected)
                return
