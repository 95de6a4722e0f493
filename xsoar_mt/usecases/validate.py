"""`validate`: main answers, every tenant answers through main, every server runs the release and is up."""

from __future__ import annotations

from dataclasses import dataclass, field

from xsoar_mt.plan import Scope
from xsoar_mt.planner import check_scope
from xsoar_mt.releases import parse_target
from xsoar_mt.usecases.session import Session
from xsoar_mt.validation import ValidationReport, validate_deployment


@dataclass(frozen=True)
class ValidateRequest:
    target: str | None = None  # the release every server should run; None: whatever main runs
    scope: Scope = field(default_factory=Scope)


@dataclass(frozen=True)
class ValidateResult:
    report: ValidationReport
    warning: str | None = None  # the local record could not be updated

    @property
    def exit_code(self) -> int:
        return int(self.report.exit_code)


def validate(session: Session, request: ValidateRequest) -> ValidateResult:
    """The deployment validated (read only); what was seen is recorded."""
    inventory = session.inventory
    check_scope(inventory, request.scope)  # before any server is contacted
    expected = parse_target(request.target, inventory.releases) if request.target else None
    session.read_secrets(sudo=True)
    report = validate_deployment(
        inventory, session.shells, session.secrets.api_key, expected, request.scope, session.known.servers()
    )
    return ValidateResult(report, session.record(report.observed))
