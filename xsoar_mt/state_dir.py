"""The local state directory: every path xsoar-mt keeps under it, and the one private atomic write."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from xsoar_mt.errors import UsageError, shown
from xsoar_mt.localfiles import check_state_dir, private_dirs


class StateDir:
    """Every path under the state directory (`--state-dir`), taken as given:

    - `deployments/<key>/servers.json`: the deployment's local record (known.py)
    - `locks/<key>.lock`: one run at a time on this machine (lock.py)
    - `runs/<run id>/`: a run's plans, journal and per-server logs (journal.py)
    - `installers/`: installers downloaded once on this machine (download.py)
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def of(cls, where: StateDir | Path) -> StateDir:
        return where if isinstance(where, StateDir) else cls(where)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateDir) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"StateDir({str(self.root)!r})"

    def record(self, key: str) -> Path:
        return self.root / "deployments" / key / "servers.json"

    def lock(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def installers(self) -> Path:
        return self.root / "installers"

    def require_usable(self) -> None:
        """The directory must be one this user can create files in, or one that can be made, and private:
        owned by this user and writable by nobody else (`localfiles.check_state_dir`)."""
        check_state_dir(self.root)
        existing = self.root.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            what = "is" if existing == self.root.absolute() else f"is inside {shown(str(existing))}, which is"
            raise UsageError(f"--state-dir {shown(str(self.root))}: {what} a file, not a directory")
        try:
            fd, probe = tempfile.mkstemp(dir=existing, prefix=".xsoar-mt-probe.")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise UsageError(
                f"--state-dir {shown(str(self.root))}: cannot write in {shown(str(existing))}: "
                f"{exc.strerror or exc}",
                hint="give a directory you can write to (runs, journals and the lock are kept there)",
            ) from None


def write_private(path: Path, text: str, *, make_parents: bool = True) -> None:
    """Write a file readable by its owner only, whole or not at all: a private temporary file in the same
    directory, flushed and renamed over `path`. On failure nothing is left behind and the OSError is raised.
    With `make_parents`, missing directories are made, private too."""
    if make_parents:
        private_dirs(path.parent)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
