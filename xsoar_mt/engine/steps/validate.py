"""`validate`: main answers (through its load balancer for HA), or every tenant in scope answers through
main on the release expected; a wave's validation asks only the tenants of that wave's groups."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.model import StepFailed, ValidationFailed
from xsoar_mt.plan import Action, Scope, Step
from xsoar_mt.remote import Cancelled, RemoteError
from xsoar_mt.validation import validate_step


class Validate:
    """Run once for the step (from its one entry server), not server by server."""

    action: ClassVar[Action] = Action.VALIDATE

    def run(self, run: RunContext, step: Step) -> None:
        entry = step.servers[0]
        scope, only = run.plan.scope, False
        phase = run.phase_of(step)
        wave = phase.wave if phase is not None else None
        if wave is not None and run.plan.waves is not None:  # a wave's tenants, before the next wave
            scope, only = Scope(main=False, groups=run.plan.waves.members(wave)), True
        if run.rollback:
            # groups go back to their own backups' releases: every tenant must answer through main, and
            # each server's release was read from `/about` by its health gate
            step = replace(step, release="")
        try:
            problems, _ = run.retrying(
                step,
                entry,
                lambda: validate_step(
                    step, run.inv, run.shell_for, run.secrets.api_key, scope, run.cancelled, only_scope=only
                ),
            )
        except Cancelled as exc:
            raise StepFailed(step, entry, exc.detail, interrupted=True) from None
        except RemoteError as exc:
            raise ValidationFailed(step, entry, exc.detail) from None
        if problems:
            raise ValidationFailed(step, entry, "; ".join(p.message for p in problems))
