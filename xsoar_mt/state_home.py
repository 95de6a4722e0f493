"""Where this machine's state (runs, journals, locks, the record of each deployment) lives when
`--state-dir` is not given: never the working directory, so a run started in one directory can be resumed
from another."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV = "XSOAR_MT_STATE_DIR"
LEGACY = ".xsoar-mt"  # what earlier releases kept in the working directory


@dataclass(frozen=True)
class StateHome:
    path: Path  # absolute
    note: str | None = None  # one line for the operator, when the choice needs saying


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """$XSOAR_MT_STATE_DIR, else the XDG state directory: $XDG_STATE_HOME/xsoar-mt, else
    ~/.local/state/xsoar-mt. Absolute."""
    env = os.environ if env is None else env
    if env.get(ENV, "").strip():
        return Path(env[ENV]).expanduser().absolute()
    xdg = env.get("XDG_STATE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return (base / "xsoar-mt").absolute()


def state_home(
    given: Path | None, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> StateHome:
    """The state directory to use: `--state-dir` when given; else $XSOAR_MT_STATE_DIR; else a `.xsoar-mt`
    directory in the working directory left by an earlier release (with a note); else the XDG one."""
    env = os.environ if env is None else env
    if given is not None:
        return StateHome(given.expanduser().absolute())
    if env.get(ENV, "").strip():
        return StateHome(default_state_dir(env))
    legacy = (cwd or Path.cwd()) / LEGACY
    if legacy.is_dir() and not legacy.is_symlink():
        return StateHome(
            legacy.absolute(),
            f"note: using {legacy.absolute()} (kept in the working directory by an earlier release); "
            f"move it to {default_state_dir(env)} or pass --state-dir to keep using it from elsewhere",
        )
    return StateHome(default_state_dir(env))


def how_to_point_elsewhere() -> str:
    """The hint every message about a missing run or record ends with."""
    return f"runs are kept in the state directory: pass --state-dir DIR or set ${ENV} to use another"
