"""The locks a real run holds, for `upgrade run` and `rollback run` alike: the run lock on this machine, then
the deployment's lock on main with its heartbeat, taken once the working directory is checked on every
server the run writes to. A deployment lock broken meanwhile (`unlock --force` from elsewhere) stops the
run: its executor is told, or, before there is one, told as soon as it is made."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from xsoar_mt.lock import DeploymentLock, RunLock, lock_server
from xsoar_mt.usecases.session import Session
from xsoar_mt.workdir_check import prepare_all


class _Stoppable(Protocol):
    def fail_run(self, message: str) -> None: ...


class RunLocks:
    def __init__(self, session: Session, run_id: str) -> None:
        self.session, self.run_id = session, run_id
        self.here = RunLock(session.state, session.known.key)
        self.deployment: DeploymentLock | None = None
        self.lost: list[str] = []  # what the heartbeat said, before an executor could be told
        self._told: list[Callable[[str], None]] = [self.lost.append]

    def take_here(self) -> None:
        self.here.acquire(self.run_id)

    def take_deployment(self, written: Iterable[str]) -> None:
        """The working directory checked on every server in `written` (before anything is written there),
        then the deployment's lock on main, refreshed by a heartbeat until it is released."""
        inventory, shells = self.session.inventory, self.session.shells
        prepare_all(inventory, shells, list(written))
        self.deployment = DeploymentLock(inventory, shells(lock_server(inventory)), self.run_id)
        self.deployment.acquire()
        self.deployment.start_heartbeat(self._tell)

    def watched_by(self, executor: _Stoppable) -> None:
        """From now on a lost deployment lock stops `executor`; one lost already stops it now."""
        self._told.append(executor.fail_run)
        for message in self.lost:
            executor.fail_run(message)

    def release_deployment(self) -> None:
        """The deployment's lock given back (safe to repeat): the run's last command on main."""
        if self.deployment is not None:
            self.deployment.release()

    def release(self) -> None:
        try:
            self.release_deployment()
        finally:
            self.here.release()

    def _tell(self, message: str) -> None:
        for tell in self._told:
            tell(message)
