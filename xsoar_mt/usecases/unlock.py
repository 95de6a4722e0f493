"""`upgrade run --force-unlock ID`: break the lock a run left, on this machine and on the deployment."""

from __future__ import annotations

from dataclasses import dataclass

from xsoar_mt.errors import ExitCode, LockHeld, UsageError
from xsoar_mt.lock import DeploymentLock, RunLock, lock_server
from xsoar_mt.remote import RemoteError
from xsoar_mt.usecases.session import Session


@dataclass(frozen=True)
class UnlockRequest:
    run_id: str


@dataclass(frozen=True)
class UnlockResult:
    message: str  # where the lock was broken
    exit_code: int = int(ExitCode.OK)


def force_unlock(session: Session, request: UnlockRequest) -> UnlockResult:
    """Break the lock of run ID here and on main. Another run's lock is never broken (LockHeld, exit 10).
    When neither lock exists: exit 2. When main cannot be reached, the lock here is still broken and the
    error says the deployment's was not."""
    run_id = request.run_id
    here = RunLock(session.state, session.known.key).force_unlock(run_id)
    server = lock_server(session.inventory)
    try:
        there = DeploymentLock(session.inventory, session.shells(server), run_id).force_unlock(run_id)
    except LockHeld:
        raise
    except RemoteError as exc:
        done = "the lock on this machine was broken; " if here else ""
        raise RemoteError(
            server,
            f"{done}the deployment's lock on {server} could not be checked: {exc.detail}",
            hint=f"run --force-unlock {run_id} again once {server} answers",
        ) from None
    where = [w for w, broken in ((f"the deployment ({server})", there), ("this machine", here)) if broken]
    if not where:
        raise UsageError(f"--force-unlock {run_id}: there is no lock to break, here or on {server}")
    return UnlockResult(f"lock of run {run_id} broken on {' and '.join(where)}")
