"""The maintenance window, asked before each group (or prepare, with the group after it) starts."""

from __future__ import annotations

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import WindowCheck
from xsoar_mt.engine.outcome import Progress
from xsoar_mt.plan import Phase


class WindowGate:
    def __init__(self, run: RunContext, progress: Progress, window: WindowCheck | None) -> None:
        self.run = run
        self.progress = progress
        self.window = window

    def fits(self, phases: list[Phase]) -> bool:
        """Does the window leave time for `phases`, started now? If not, nothing more is started (the
        groups under way finish), the first refusal is reported, and the run ends `window-closed`."""
        if self.window is None:
            return True
        with self.run.lock:
            if self.progress.window_closed is not None:
                return False
            measured = {server: dict(minutes) for server, minutes in self.run.measured.items()}
        refusal = self.window.check(phases, measured)
        if refusal is None:
            return True
        with self.run.lock:
            first = self.progress.window_closed is None
            if first:
                self.progress.window_closed = refusal
        if first:
            self.run.emit(
                "window-closed",
                refusal.message,
                phase=refusal.phase.id,
                window_end=refusal.window_end,
                expected_end=refusal.ends,
            )
        return False
