"""Domain errors written for an operator, and the one table that maps them to exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code the CLI returns (documented in docs/reference/exit-codes.md)."""

    OK = 0
    INTERNAL = 1  # a bug in xsoar-mt: please report it with --debug output
    USAGE = 2  # the command line is wrong
    INVALID_INVENTORY = 3  # the inventory (or another input file) is invalid
    PLAN_REFUSED = 4  # no order of steps keeps the skew rule, or the target is not an upgrade
    NOTHING_TO_DO = 5  # every server in scope already runs the target
    STEP_FAILED = 6  # a run stopped because a step failed
    PREFLIGHT_FAILED = 7  # a check that must pass before any change failed
    STALE_PLAN = 8  # a saved plan no longer matches the inventory or the observed versions
    VALIDATION_FAILED = 9  # post-upgrade validation found a problem
    LOCKED = 10  # another run holds the inventory's lock
    WINDOW_CLOSED = 11  # the maintenance window closed: the run stopped at a safe point, to resume later
    DECLINED = 12  # the operator answered no at the confirmation prompt: nothing was changed
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class XsoarMtError(Exception):
    """An error whose message is written for the operator; `exit_code` says how the CLI ends."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(XsoarMtError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = ExitCode.USAGE


class Declined(XsoarMtError):
    """The operator answered no when asked to confirm the run: nothing was changed."""

    exit_code = ExitCode.DECLINED


class InvalidInput(XsoarMtError):
    """A value given by the operator (flag, version, file) is not acceptable."""

    exit_code = ExitCode.INVALID_INVENTORY


class InventoryError(XsoarMtError):
    """One or more problems in an inventory file, each naming file:line and the key path."""

    exit_code = ExitCode.INVALID_INVENTORY

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems in the inventory")
        self.problems = problems


class PlanRefused(XsoarMtError):
    """No order of steps reaches the target while keeping the version skew rule."""

    exit_code = ExitCode.PLAN_REFUSED


class PreflightFailed(XsoarMtError):
    """Something that must hold before any change does not: nothing was changed."""

    exit_code = ExitCode.PREFLIGHT_FAILED

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        super().__init__("cannot start: " + "; ".join(problems), hint=hint)
        self.problems = [f"cannot start: {problem}" for problem in problems]


class ServerError(XsoarMtError):
    """Reaching or using a server failed (remote.RemoteError): before any change, a preflight failure."""

    exit_code = ExitCode.PREFLIGHT_FAILED


class VersionsUnknown(XsoarMtError):
    """Some server's version cannot be known, so no plan can start: one line per server says how to settle it."""

    exit_code = ExitCode.PREFLIGHT_FAILED

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        super().__init__(
            problems[0] if len(problems) == 1 else f"{len(problems)} servers have no known version", hint=hint
        )
        self.problems = problems


class VersionsNotGiven(VersionsUnknown):
    """No server was asked, and neither the local record nor the inventory gives some server's version:
    the input is incomplete (give the versions, or probe)."""

    exit_code = ExitCode.INVALID_INVENTORY


class StalePlan(XsoarMtError):
    """A saved plan that is not what this run would do: stale, edited, or asked for another target or scope."""

    exit_code = ExitCode.STALE_PLAN

    def __init__(
        self,
        differences: list[str],
        *,
        lead: str = "the saved plan is stale",
        hint: str = "make a new plan with `xsoar-mt upgrade plan --out FILE` and review it",
    ) -> None:
        super().__init__(f"{lead}: " + "; ".join(differences), hint=hint)
        self.differences = differences


class LockHeld(XsoarMtError):
    """Another run holds the deployment's lock (here or on main)."""

    exit_code = ExitCode.LOCKED


def shown(value: str, limit: int = 200) -> str:
    """`value` quoted for a message, on one line, cut after `limit` characters: an inventory or a flag
    may hold megabytes, and the message must still fit on a terminal."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(value)} characters)"


def named(value: str, limit: int = 120) -> str:
    """A name in a message: as it is when short and printable, else quoted and cut like `shown`."""
    return value if value.isprintable() and 0 < len(value) <= limit else shown(value, limit)
