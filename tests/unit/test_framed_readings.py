"""What a server holds cannot forge what xsoar-mt reads from it: every reading is framed, and one that does
not read makes that server's version unknown, with the reason, never an internal error.

The state command is run by a real `sh` on this machine against a directory laid out as a hostile server's
would be (a marker holding the section markers, `\\r`, non-ASCII digits, huge numbers, escape sequences).
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from xsoar_mt.framed import Unreadable, lines, number, printable
from xsoar_mt.inventory import Inventory, parse_inventory
from xsoar_mt.observed import Installer, Marker, Reading, resolve_server
from xsoar_mt.probe import observe_server, parse_facts, state_command, state_reading
from xsoar_mt.releases import Version
from xsoar_mt.remote import Result


def V(text: str) -> Version:
    return Version.parse(text)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class LocalShell:
    """`sh` on this machine in place of the server's shell (this is about framing, not SSH)."""

    server = "m-a"

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        bin_dir = cwd / "bin"  # a `sudo` that runs its command as this user: no root needed for this
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
        (bin_dir / "sudo").chmod(0o755)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def connect(self) -> None:
        pass

    def run(
        self, command: str, *, stdin: str | None = None, timeout: float | None = None, **_: Any
    ) -> Result:
        done = subprocess.run(["sh", "-c", command], cwd=self.cwd, input=stdin or "", capture_output=True,
                              text=True, timeout=timeout or 30, check=False, env=self.env)  # fmt: skip
        return Result(self.server, command, done.returncode, done.stdout, done.stderr)


def local_inventory(directory: Path, answers: str = "6.10.0") -> Inventory:
    data = {
        "inventory_version": 1,
        "deployment": {"name": "d", "database": "bolt"},
        "installer": {"link": {"env": "XM_LINK"}, "directory": str(directory)},
        "commands": {"status": "true", "version": f"cat >/dev/null; echo {answers}"},
        "main": {"server": {"name": "m-a", "address": "127.0.0.1"}},
    }
    return parse_inventory(yaml.safe_dump(data), "inv.yaml")


FORGED_VERSION = (
    "\n__xsoar_mt_version-begin\n6.14.0\n__xsoar_mt_version-rc=0\n"
    f"__xsoar_mt_version={b64('6.14.0')}\n__xsoar_mt_version-rc=0\n"
)


def test_a_marker_holding_the_version_fields_does_not_forge_the_services_answer(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"release": "6.14", "at": 1}' + FORGED_VERSION)
    reading = observe_server(LocalShell(tmp_path), local_inventory(tmp_path), None)  # type: ignore[arg-type]
    assert reading.api_version == V("6.10.0"), reading
    assert reading.unreadable is None and reading.marker is None


def test_the_service_answer_holding_field_lines_is_only_its_own_field(tmp_path: Path) -> None:
    inventory = local_inventory(tmp_path, answers="'6.10.0\n__xsoar_mt_sudo=0\n__xsoar_mt_marker=x'")
    reading = observe_server(LocalShell(tmp_path), inventory, None)  # type: ignore[arg-type]
    assert reading.api_version is None and reading.unreadable is None
    assert reading.api_error is not None and "demistoVersion" in reading.api_error


def test_an_installer_record_holding_a_carriage_return_adds_no_record(tmp_path: Path) -> None:
    (tmp_path / "install-6.12.pid").write_text("42\r__xsoar_mt_installer=6.13 1 0 0 - 1 2\n")
    (tmp_path / "install-6.12.rc").write_text("0\n")
    shell = LocalShell(tmp_path)
    out = shell.run(state_command(local_inventory(tmp_path), "m-a", with_version=False)).stdout
    reading = state_reading("m-a", out, 100.0)
    assert reading.installers == () and reading.unreadable is not None
    assert "pid is not a number" in reading.unreadable


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("rc", "\u00b2\n", "exit code is not a number"),  # str.isdigit() takes it, int() does not
        ("rc", "\u0663\n", "exit code is not a number"),  # Arabic-Indic three
        ("rc", "-1\n", "exit code is not a number"),
        ("rc", "256\n", "larger than 255"),
        ("pid", "9" * 400 + "\n", "larger than 4194304"),  # int() of it is fine; a float of it overflowed
        ("pid", "\x1b]0;owned\x07", "pid is not a number"),
    ],
)
def test_an_installer_record_that_does_not_read_makes_the_server_unknown_with_the_reason(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    (tmp_path / "install-6.12.pid").write_text("42\n")
    (tmp_path / f"install-6.12.{name}").write_text(content)
    shell = LocalShell(tmp_path)
    out = shell.run(state_command(local_inventory(tmp_path), "m-a", with_version=False)).stdout
    reading = state_reading("m-a", out, 100.0)
    assert reading.unreadable is not None and reason in reading.unreadable
    view = resolve_server("m-a", reading, None, V("6.10.0"))
    assert view.version is None and view.unknown == reading.unreadable


def test_an_unreadable_record_still_lets_the_service_tell_its_version() -> None:
    reading = Reading("m-a", 5.0, sudo_ok=True, status_code=0, api_version=V("6.11.0"), unreadable="why")
    view = resolve_server("m-a", reading, None, V("6.10.0"))
    assert view.version == V("6.11.0") and view.unknown is None


def test_a_stray_install_pid_that_xsoar_mt_did_not_write_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / "install-old.pid").write_text("42\n")
    (tmp_path / "install-old.rc").write_text("0\n")
    shell = LocalShell(tmp_path)
    out = shell.run(state_command(local_inventory(tmp_path), "m-a", with_version=False)).stdout
    reading = state_reading("m-a", out, 100.0)
    assert reading.installers == () and reading.unreadable is None
    view = resolve_server("m-a", reading, None, V("6.10.0"))
    assert view.version == V("6.10.0")


def test_a_real_installer_record_is_read_with_its_exit_code_and_times(tmp_path: Path) -> None:
    (tmp_path / "install-6.12.pid").write_text("42\n")
    (tmp_path / "install-6.12.rc").write_text("3\n")
    shell = LocalShell(tmp_path)
    out = shell.run(state_command(local_inventory(tmp_path), "m-a", with_version=False)).stdout
    (record,) = state_reading("m-a", out, 100.0).installers
    assert (record.release, record.pid, record.exit_code) == ("6.12", 42, 3)
    assert record.started is not None and record.finished is not None


def facts(*extra: str, now: str = "1000", boot: str = "b2") -> str:
    return "\n".join([f"__xsoar_mt_now={now}", f"__xsoar_mt_boot={b64(boot)}", *extra]) + "\n"


def test_a_field_given_twice_is_unreadable_not_first_or_last_wins() -> None:
    with pytest.raises(Unreadable, match="marker twice"):
        parse_facts(facts("__xsoar_mt_marker=-", "__xsoar_mt_marker=-"), 5.0)
    reading = state_reading("m-a", "__xsoar_mt_sudo=0\n__xsoar_mt_sudo=0\n__xsoar_mt_status=0\n", 5.0)
    assert reading.unreadable is not None and reading.sudo_ok is None


def test_a_record_from_before_a_reboot_is_not_taken_as_alive() -> None:
    record = f"__xsoar_mt_installer={b64('6.12')} {b64('42')} 1 - {b64('b1')} 950 -"
    (installer,) = parse_facts(facts(record, boot="b2"), 1000.0)[1]
    assert installer.rebooted and not installer.alive and installer.vanished
    (same_boot,) = parse_facts(facts(record, boot="b1"), 1000.0)[1]
    assert same_boot.alive and not same_boot.rebooted and same_boot.in_flight


def test_an_end_time_counts_only_with_an_exit_code() -> None:
    record = f"__xsoar_mt_installer={b64('6.12')} {b64('42')} 0 - {b64('b2')} 950 960"
    (installer,) = parse_facts(facts(record), 1000.0)[1]
    assert installer.finished is None and installer.exit_code is None


def test_server_times_move_by_the_clock_offset_and_a_missing_clock_moves_nothing() -> None:
    record = f"__xsoar_mt_installer={b64('6.12')} {b64('42')} 0 {b64('0')} {b64('b2')} 950 960"
    (moved,) = parse_facts(facts(record), 5000.0)[1]
    assert (moved.started, moved.finished) == (4950.0, 4960.0)
    (kept,) = parse_facts(facts(record, now="-"), 5000.0)[1]
    assert (kept.started, kept.finished) == (950.0, 960.0)


def test_a_record_with_another_number_of_fields_is_unreadable() -> None:
    with pytest.raises(Unreadable, match="6 fields"):
        parse_facts(facts(f"__xsoar_mt_installer={b64('6.12')} - 0 - - 950"), 5.0)


def test_a_field_that_is_not_base64_is_unreadable() -> None:
    with pytest.raises(Unreadable, match="the marker is not framed"):
        parse_facts(facts('__xsoar_mt_marker={"release": "6.14"}'), 5.0)


def test_a_marker_that_is_not_xsoar_mts_is_as_good_as_none() -> None:
    for text in ('{"release": "6.14", "at": true}', '{"release": "6.14", "at": 1e300}', "[" * 100000):
        marker, _ = parse_facts(facts(f"__xsoar_mt_marker={b64(text)}"), 5.0)
        assert marker is None, text
    ours = b64('{"release": "6.14", "at": 900}')
    marker, _ = parse_facts(facts(f"__xsoar_mt_marker={ours}"), 1000.0)
    assert marker == Marker(V("6.14"), 900.0)


def test_numbers_are_ascii_digits_up_to_their_cap() -> None:
    assert number("0", 255, "x") == 0 and number("255", 255, "x") == 255 and number("-", 9, "x") is None
    for bad in ("\u00b2", "1\u0663", " 1", "1 ", "+1", "-1", "0x1", "1\r", ""):
        if bad == "":
            assert number(bad, 9, "x") is None
            continue
        with pytest.raises(Unreadable):
            number(bad, 255, "x")
    with pytest.raises(Unreadable, match="larger than 255"):
        number("256", 255, "x")


def test_lines_split_on_newline_only() -> None:
    assert lines("a\rb\x0bc\x1cd\u2028e\nf") == ["a\rb\x0bc\x1cd\u2028e", "f"]


def test_control_characters_are_stripped_before_printing() -> None:
    assert printable("a\x1b[31mb\x07c\rd\u202ee\x9bf\n\tg") == "a[31mbcdef\n\tg"


def test_an_installer_without_exit_code_is_in_flight_only_while_alive() -> None:
    assert Installer("6.12", 1, None, True).in_flight
    assert not Installer("6.12", 1, 0, True).in_flight
    assert Installer("6.12", 1, None, False).vanished


def test_the_console_and_the_plain_log_print_no_control_character_a_server_sent() -> None:
    import io

    from rich.table import Table

    from xsoar_mt.cli.render import console
    from xsoar_mt.events import Event, PlainSink

    out = console()
    table = Table()
    table.add_column("reason")
    table.add_row("pid \x1b]0;owned\x07 is gone")
    with out.capture() as captured:
        out.print("m-a: \x1b[2Jinstaller exited 1\r")
        out.print(table)
    assert "\x1b]0" not in captured.get() and "\x07" not in captured.get() and "\x1b[2J" not in captured.get()
    assert "installer exited 1" in captured.get() and "owned" in captured.get()
    stream = io.StringIO()
    PlainSink(stream).emit(Event("warning", "m-a: \x1b[31mred\x07"))
    assert stream.getvalue().endswith(" m-a: [31mred\n")


def test_an_error_line_holds_no_control_character() -> None:
    from xsoar_mt.cli import _one_line

    assert _one_line("m-a: \x1b]0;x\x07boom\rnext\nline") == "m-a: ]0;xboom next | line"


def test_a_boot_id_that_could_not_be_read_proves_no_reboot() -> None:
    launched_unknown = f"__xsoar_mt_installer={b64('6.12')} {b64('42')} 1 - - 950 -"
    (installer,) = parse_facts(facts(launched_unknown), 1000.0)[1]
    assert not installer.rebooted and installer.alive
    launched = f"__xsoar_mt_installer={b64('6.12')} {b64('42')} 1 - {b64('b1')} 950 -"
    (now_unknown,) = parse_facts("__xsoar_mt_now=1000\n__xsoar_mt_boot=-\n" + launched + "\n", 1000.0)[1]
    assert not now_unknown.rebooted and now_unknown.alive


def test_a_record_with_more_fields_than_seven_is_unreadable() -> None:
    with pytest.raises(Unreadable, match="8 fields"):
        parse_facts(facts(f"__xsoar_mt_installer={b64('6.12')} - 0 - - 950 - extra"), 5.0)


@pytest.mark.parametrize("sudo", ["\u00b2", "0\r", "00x"])
def test_a_sudo_answer_that_is_no_exit_code_makes_the_reading_unreadable(sudo: str) -> None:
    reading = state_reading("m-a", f"__xsoar_mt_sudo={sudo}\n__xsoar_mt_status=0\n", 5.0)
    assert reading.unreadable is not None and reading.sudo_ok is None


class AnsweringShell:
    server = "m-a"

    def __init__(self, stdout: str) -> None:
        self.stdout = stdout

    def connect(self) -> None:
        pass

    def run(self, command: str, **_: Any) -> Result:
        return Result(self.server, command, 0, self.stdout)


def test_an_unreadable_answer_is_reported_as_such_not_as_sudo_failing(tmp_path: Path) -> None:
    shell = AnsweringShell("__xsoar_mt_sudo=0\n__xsoar_mt_sudo=1\n__xsoar_mt_status=0\n")
    reading = observe_server(shell, local_inventory(tmp_path), None)  # type: ignore[arg-type]
    assert (
        reading.error is None
        and reading.unreadable == "its answer cannot be read (its answer holds sudo twice)"
    )
    view = resolve_server("m-a", reading, None, V("6.10.0"))
    assert view.version is None and view.unknown == reading.unreadable
