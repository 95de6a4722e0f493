"""Files on the operator's machine: input files read with a size cap, and the private state directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from xsoar_mt.errors import UsageError, shown

# An inventory or a saved plan larger than this is refused before it is read (documented in
# docs/reference/inventory.md): far above any deployment's, far below what would exhaust memory.
MIB = 1024 * 1024
INPUT_CAP = 16 * MIB


class InputFileError(Exception):
    """An input file that cannot be read as one: `reason` completes "PATH: ..." in a one-line message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_input(path: Path, cap: int = INPUT_CAP) -> bytes:
    """The bytes of a regular file of at most `cap` bytes. A FIFO, a device (`/dev/zero`), a directory or
    a larger file raises InputFileError without reading it: opened without blocking, checked on the
    open descriptor (so nothing is swapped between check and read), and read no further than the cap.
    The reason completes "cannot read the inventory: ..."."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputFileError(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError("Is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError("not a regular file (a pipe, a device or a socket); give a file")
        if info.st_size > cap:
            raise InputFileError(
                f"larger than the {cap // MIB} MiB an input file may hold ({info.st_size} bytes)"
            )
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputFileError(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > cap:  # it grew while being read
        raise InputFileError(f"larger than the {cap // MIB} MiB an input file may hold")
    return b"".join(chunks)


def private_dirs(path: Path) -> None:
    """Create `path` and every missing parent with mode 0700, whatever the umask: a folder xsoar-mt
    creates holds journals, logs and backups' records, which are nobody else's business."""
    missing: list[Path] = []
    current = path.absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # made at the same time by another thread or run; checked by its owner below
        os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask; 0700 needs no widening, but be exact


def check_state_dir(path: Path) -> None:
    """Refuse (exit 2) a state directory that another user owns, or that group or others may write to:
    whoever can write there can forge the local record, the journals and the lock."""
    try:
        info = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there yet (or a file on the way: the caller words that)
    except OSError as exc:
        raise UsageError(f"--state-dir {shown(str(path))}: cannot read it: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        try:
            info = path.stat()
        except OSError as exc:
            raise UsageError(
                f"--state-dir {shown(str(path))}: cannot read it: {exc.strerror or exc}"
            ) from None
    if not stat.S_ISDIR(info.st_mode):
        return  # the caller words "a file, not a directory"
    if info.st_uid != os.getuid():
        raise UsageError(
            f"--state-dir {shown(str(path))}: owned by uid {info.st_uid}, not by you (uid {os.getuid()}); "
            "refusing it",
            hint="give a state directory of your own (--state-dir), or have its owner hand it over with chown",
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(
            f"--state-dir {shown(str(path))}: writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); refusing it",
            hint=f"chmod 700 {path}",
        )
