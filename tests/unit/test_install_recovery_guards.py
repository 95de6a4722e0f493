"""The executor's recovery path when it follows an installer: each guard has a test that fails when that
guard is wrong (an installer record from before a reboot taken as alive, the time limit read in seconds,
an exit code that is no number)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from tests.unit.engine_setup import setup_run
from xsoar_mt.engine.installer_job import Poll as _Poll
from xsoar_mt.framed import exit_code
from xsoar_mt.remote import Result


def answering_polls(fleet: object, answers: list[str]) -> None:
    """m2's installer answers its first polls with `answers` in turn; then the scripted server's own."""
    original = fleet.answer  # type: ignore[attr-defined]
    left = list(answers)

    def answer(name: str, command: str, stdin: str | None) -> Result:
        if name == "m2" and "xm_c=$(cat" in command and left:
            fleet.calls.append((name, command, stdin))  # type: ignore[attr-defined]
            return Result(name, command, 0, left.pop(0))
        return original(name, command, stdin)  # type: ignore[no-any-return]

    fleet.answer = answer  # type: ignore[attr-defined]


def test_a_process_alive_under_a_pid_from_before_a_reboot_is_not_the_installer() -> None:
    # After a reboot the pid may belong to another process: alive by /proc, yet not the installer.
    seen = _Poll.parse("- 1 b2 b1\n")
    assert seen.rebooted and not seen.alive
    _, fleet, executor, _ = setup_run()
    answering_polls(fleet, ["- 1 b2 b1\n", "- 0 b1 b1\n", "- 0 b1 b1\n"])
    report = executor.execute()
    assert report.outcome == "failed"
    assert "the server restarted while the installer" in report.failures[0]


def test_the_same_boot_with_the_process_alive_is_followed_until_it_ends() -> None:
    assert _Poll.parse("- 1 b1 b1\n").alive and not _Poll.parse("- 1 b1 b1\n").rebooted
    assert not _Poll.parse("- 1 - b1\n").rebooted  # a boot id that could not be read proves no reboot
    _, fleet, executor, _ = setup_run()
    answering_polls(fleet, ["- 1 b1 b1\nstill installing\n", "- 1 b1 b1\n"])
    assert executor.execute().outcome == "succeeded"


def test_the_install_time_limit_is_in_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock that moves 1 s each time it is read: the install's few polls take some seconds, inside a
    # 1-minute limit. Read as seconds, the limit would fail it after the first poll.
    clock = itertools.count(start=1000.0, step=1.0)
    inventory, fleet, executor, _ = setup_run()
    executor.run.waiter.clock = lambda: next(clock)  # the one clock every wait of the run reads
    executor.run.inv = replace(inventory, installer=replace(inventory.installer, max_minutes=1))
    answering_polls(fleet, ["- 1 b1 b1\n"] * 3)
    report = executor.execute()
    assert report.outcome == "succeeded", report.failures


def test_an_exit_code_that_is_no_number_fails_the_step_without_an_internal_error() -> None:
    _, fleet, executor, _ = setup_run()
    answering_polls(fleet, ["\u00b2 0 b1 b1\n"] * 3)
    report = executor.execute()
    assert report.outcome == "failed"
    assert "the installer exited \u00b2" in report.failures[0]
    assert report.servers["m2"].version is None  # unknown: what it installed cannot be told


@pytest.mark.parametrize(
    ("text", "code"),
    [("0", 0), ("1\n", 1), ("255", 255), ("256", None), ("\u00b2", None), ("-1", None), ("9" * 5000, None)],
)
def test_an_exit_code_is_ascii_digits_up_to_255(text: str, code: int | None) -> None:
    assert exit_code(text) == code
