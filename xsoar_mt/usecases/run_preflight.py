"""Before a real run changes anything: the preflight checks, on the servers in scope and read-only on the
rest, whose answers are also what the plan is made from."""

from __future__ import annotations

from collections.abc import Sequence

from xsoar_mt.checks.model import Finding, FindingVerdict, PreflightReport
from xsoar_mt.errors import PreflightFailed
from xsoar_mt.events import Event, EventSink
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.usecases.run_request import Intent, RunRequest, Sight
from xsoar_mt.usecases.session import Session


def preflight_for_run(
    session: Session, request: RunRequest, intent: Intent, names: Sequence[str], events: EventSink
) -> Sight:
    """Every server of the deployment read once (the ones out of scope read only); the observed state
    recorded. A failure that is not ignored stops the run here, with nothing changed."""
    from xsoar_mt.checks.preflight import PreflightInput, run_preflight

    inventory, known = session.inventory, session.known
    others = len(inventory.servers) - len(names)
    events.emit(
        Event(
            "probe",
            f"preflight checks on {len(names)} server{'' if len(names) == 1 else 's'} in "
            f"scope" + (f"; {others} out of scope, read only" if others else ""),
        )
    )
    asked = PreflightInput(
        intent.target,
        request.ignore_preflight_errors,
        servers=names,
        scope=intent.scope,
        known=known.servers(),
        backed_up=known.backups(),
        verify=intent.resuming,
    )
    report = run_preflight(inventory, session.shells, session.secrets, asked)
    observed = report.observed
    known.record(observed.views.values())
    _refuse(session, report, intent)
    for finding in report.findings:
        if finding.verdict in (FindingVerdict.WARN, FindingVerdict.IGNORED):
            events.emit(_warning(finding))
    return Sight(observed, report.readings, report.extract_dirs)


def _refuse(session: Session, report: PreflightReport, intent: Intent) -> None:
    """Stop on a blocking finding. When only the plan itself is refused, the planner's own error (and exit
    code) is raised, as a dry run or `upgrade plan` would."""
    observed = report.observed
    if [(f.check, f.server) for f in report.blocking] == [
        ("version", "deployment")
    ] and not observed.unknown():
        facts = observed.facts(session.known.backups(), intent.resuming)
        plan_upgrade(session.inventory, observed.versions(), intent.target, intent.scope, facts)
    if report.blocking:
        from xsoar_mt.checks.preflight import blocking_summary

        raise PreflightFailed(
            blocking_summary(report.blocking),
            hint="nothing was changed; fix these, or pass --ignore-preflight-errors=NAME for a "
            "skippable check (see `xsoar-mt preflight`)",
        )


def _warning(finding: Finding) -> Event:
    return Event(
        "warning",
        f"preflight {finding.check} on {finding.server}: {finding.detail}",
        # the report reads the finding from these fields, never back out of the message
        data={
            "check": finding.check,
            "verdict": finding.verdict.value,
            "server": finding.server,
            "detail": finding.detail,
        },
    )
