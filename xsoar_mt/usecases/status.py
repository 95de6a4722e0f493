"""`status`: each server's role, version (and where it comes from), service, reachability and skew, live."""

from __future__ import annotations

from dataclasses import dataclass

from xsoar_mt.status import StatusReport, deployment_status
from xsoar_mt.usecases.session import Session


@dataclass(frozen=True)
class StatusRequest:
    """`status` takes nothing beyond the session (inventory, state directory, host keys)."""


@dataclass(frozen=True)
class StatusResult:
    report: StatusReport
    warning: str | None = None  # the local record could not be updated

    @property
    def exit_code(self) -> int:
        return int(self.report.exit_code)


def status(session: Session, request: StatusRequest) -> StatusResult:
    """Every server read at once (read only); what was seen is recorded."""
    session.read_secrets(sudo=True)
    report = deployment_status(
        session.inventory, session.shells, session.secrets.api_key, session.known.servers()
    )
    return StatusResult(report, session.record(report.observed))
