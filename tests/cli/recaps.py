"""Hand-made run results for rendering tests: one server's state as the executor would leave it."""

from __future__ import annotations

from xsoar_mt.engine import ServerState
from xsoar_mt.observed import ServerView, Service, Source
from xsoar_mt.releases import Version


def recap_state(
    version: Version | None, running: bool | None, last_step: str | None, outcome: str
) -> ServerState:
    service = {True: Service.RUNNING, False: Service.STOPPED, None: Service.UNKNOWN}[running]
    view = ServerView("server", version, Source.API if version else None, 0.0, service)
    return ServerState(view, last_step, outcome)
