"""The interface of a step handler, and the base of the handlers that work server by server.

A handler carries out every step of one `Action` of the plan. The scheduler looks the handler up by the
step's action (steps/__init__.py) and calls `run(context, step)`; the handler raises `StepFailed` (naming
the servers it failed on) or returns when the step is done. Handlers are made once per run, so one may
keep what it learns during the run (the upload handler keeps each installer's sha256).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, Protocol

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed
from xsoar_mt.plan import Action, Step
from xsoar_mt.remote import Cancelled, RemoteError


class StepHandler(Protocol):
    """Carries out the steps of one action."""

    action: ClassVar[Action]

    def run(self, run: RunContext, step: Step) -> None:
        """Do `step` (all of its servers); raise StepFailed when it fails."""
        ...


class ServerStep:
    """A handler that does its step on each of the step's servers at once (`on_server`); the step fails if
    any server fails, and any error on a server becomes that server's StepFailed. With `measured`, what a
    group phase's step took on each server is kept under that key (estimate.MEASURED_KEYS)."""

    action: ClassVar[Action]
    measured: ClassVar[str | None] = None

    def run(self, run: RunContext, step: Step) -> None:
        if len(step.servers) == 1:
            self._guarded(run, step, step.servers[0])
            return
        with ThreadPoolExecutor(max_workers=len(step.servers)) as pool:
            futures = [pool.submit(self._guarded, run, step, s) for s in step.servers]
            errors = []
            for future in futures:
                try:
                    future.result()
                except StepFailed as failure:
                    errors.append(failure)
        if errors:
            if len(errors) == 1:
                raise errors[0]
            raise StepFailed(
                step,
                None,
                "; ".join(e.detail for e in errors),
                hint=errors[0].hint,
                servers=tuple(s for e in errors for s in e.servers),
                interrupted=all(e.interrupted for e in errors),
            )

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        raise NotImplementedError

    def _guarded(self, run: RunContext, step: Step, server: str) -> None:
        """Any error on one server becomes that server's step failure: never an escape without a recap."""
        began = run.clock()
        try:
            self.on_server(run, step, server)
            if self.measured is not None:
                run.measure(step, server, self.measured, began)
        except StepFailed:
            raise
        except Cancelled as exc:
            raise StepFailed(step, server, exc.detail, interrupted=True) from None
        except RemoteError as exc:
            raise StepFailed(step, server, exc.detail, hint=exc.hint) from None
        except Exception as exc:
            raise StepFailed(step, server, f"unexpected error: {type(exc).__name__}: {exc}") from None
