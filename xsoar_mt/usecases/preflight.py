"""`preflight`: every check that would stop an upgrade, on every server at once; changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from xsoar_mt.checks.model import PreflightReport
from xsoar_mt.checks.preflight import PreflightInput, run_preflight
from xsoar_mt.checks.verdicts import PreflightOptions
from xsoar_mt.releases import parse_target
from xsoar_mt.usecases.session import LinkNeed, Session


@dataclass(frozen=True)
class PreflightRequest:
    target: str
    ignore: frozenset[str] = frozenset()  # checks lowered to warnings (already parsed: checks.parse_ignore)
    options: PreflightOptions = field(default_factory=PreflightOptions)


@dataclass(frozen=True)
class PreflightResult:
    report: PreflightReport
    warning: str | None = None  # the local record could not be updated

    @property
    def exit_code(self) -> int:
        return int(self.report.exit_code)


def preflight(session: Session, request: PreflightRequest) -> PreflightResult:
    """Every check on every server, with the local record's view of each; what was seen is recorded."""
    target = parse_target(request.target, session.inventory.releases)
    known = session.known
    session.read_secrets(sudo=True, link=LinkNeed.IF_SET)
    asked = PreflightInput(
        target, request.ignore, request.options, known=known.servers(), backed_up=known.backups()
    )
    report = run_preflight(session.inventory, session.shells, session.secrets, asked)
    return PreflightResult(report, session.record(report.observed))
