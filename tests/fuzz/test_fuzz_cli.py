"""Fuzzing command lines: random flags and values for every command, against inventories on loopback.

No traceback, no internal error (exit 1), every exit code documented, every error one line. Nothing can
reach a non-loopback address or wait on SSH: the inventories put every server on 127.0.0.0/8 where
nothing listens (a connection is refused at once; the connect timeout is 2 s), the example inventory
(10.x addresses) is only given to commands that open no connection, and every path a command may write
(--state-dir, --out) lies under the test's own directory, which is also the working directory.

Values never hold NUL: no operating system can pass one in argv.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.cli.loopback import write_inventory
from tests.fuzz.corpus import ROOT, SEED, examples
from xsoar_mt.cli import app
from xsoar_mt.errors import ExitCode

DOCUMENTED = {int(c) for c in re.findall(r"^\| *(\d+) *\|", (ROOT / "docs" / "reference" / "exit-codes.md").read_text(), re.MULTILINE)}  # fmt: skip
runner = CliRunner()

# Options of each command, and what their values look like; `None`: a flag without a value.
RELEASE = "release"
TEXT = "text"
PATH = "path"  # a file to read (an inventory or a plan)
OUT = "out"  # a file to write
STATE = "state"
OPTIONS: dict[tuple[str, ...], dict[str, str | None]] = {
    ("inventory", "validate"): {"--output": "format", "-o": "format"},
    ("upgrade", "plan"): {"-i": PATH, "--inventory": PATH, "--to": RELEASE, "--only": TEXT, "--group": TEXT,
                          "-g": TEXT, "--output": "format", "-o": "format", "--out": OUT},
    ("upgrade", "run"): {"-i": PATH, "--to": RELEASE, "--only": TEXT, "--group": TEXT, "--plan": PATH,
                         "--resume": TEXT, "--dry-run": None, "--probe": None, "--yes": None, "-y": None,
                         "--parallel": "number", "--output": "format", "--accept-new-host-keys": None,
                         "--ignore-preflight-errors": TEXT, "--force-unlock": TEXT, "--state-dir": STATE},
    ("preflight",): {"-i": PATH, "--to": RELEASE, "--ignore-preflight-errors": TEXT, "--output": "format",
                     "--accept-new-host-keys": None, "--min-installer-free-gb": "number",
                     "--min-data-free-gb": "number"},
    ("status",): {"-i": PATH, "--output": "format", "--accept-new-host-keys": None},
    ("validate",): {"-i": PATH, "--to": RELEASE, "--only": TEXT, "--group": TEXT, "--output": "format",
                    "--accept-new-host-keys": None},
    ("upgrade",): {},
    ("inventory",): {},
    (): {"--version": None, "--help": None},
}  # fmt: skip
PLAUSIBLE = {
    "--only": ["main"],
    "--group": ["emea"],
    "-g": ["emea"],
    "--ignore-preflight-errors": ["disk", "all", "tls,disk"],
    "--resume": ["latest"],
}
# Commands that open SSH connections: they get only loopback inventories (or broken files).
CONNECTING = {("upgrade", "run"), ("preflight",), ("status",), ("validate",)}

argv_text = st.text(
    alphabet=st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=40
) | st.sampled_from(
    ["", "-", "--", "main", "emea", "all", "disk,tls", "ssh", "latest", "../..", "~", "$(id)"]
)
releases = st.sampled_from(["6.11", "6.12"]) | st.sampled_from(["6.11", "6.12", "6.12.0", "6.10.0 (B187344)", "6.3", "5.5", "7.0", "8.0", "6.15",
                            "demistoserver-6.12-493375.sh", "99999999999.1", "6", "v6.11", "6.11.0.0"]) | argv_text  # fmt: skip
numbers = st.sampled_from(["0", "1", "64", "65", "-1", "nan", "inf", "1e309", "0x10", "2.5"]) | argv_text


class Files:
    """The files a command line may read, made once; `work` is each example's own directory, where what
    it writes goes (it is also the working directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = self.work = directory
        loopback = write_inventory(directory)
        self.readable = {
            "loopback": loopback,
            "missing": directory / "missing.yaml",
            "directory": directory,
            "binary": directory / "binary.yaml",
            "latin1": directory / "latin1.yaml",
            "plan": directory / "plan.json",
            "plan-list": directory / "list.json",
        }
        self.readable["binary"].write_bytes(b"\x7fELF\x00\xff\xfe")
        self.readable["latin1"].write_bytes(
            loopback.read_text().replace("loopback", "loopb\u00e4ck").encode("latin-1")
        )
        self.readable["plan-list"].write_text("[1, 2]")
        runner.invoke(
            app, ["upgrade", "plan", "-i", str(loopback), "--to", "6.11", "--out", str(self.readable["plan"])]
        )
        self.example = directory / "example.yaml"
        shutil.copy(ROOT / "inventory.example.yaml", self.example)
        (directory / "read-only").mkdir(mode=0o500)


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[tuple[str, ...], list[tuple[str, str | None, Any]]]:
    """A command and a list of (option, value kind, drawn value) to be resolved against `Files`: mostly
    the options a command needs, with plausible values, so most lines get past parsing; then up to four
    more options of any kind (of the command, of another, or none at all)."""
    command = draw(st.sampled_from(list(OPTIONS)))
    options = OPTIONS[command]
    chosen: list[tuple[str, str | None, Any]] = []

    def likely(percent: int) -> bool:
        return draw(st.integers(0, 99)) < percent

    inventories = st.sampled_from(["loopback"] * 6 + ["example", "binary", "missing", "latin1", "directory"])
    if command == ("inventory", "validate") and likely(90):
        chosen.append(("", PATH, draw(inventories)))
    elif "-i" in options and likely(90):
        chosen.append(("-i", PATH, draw(inventories)))
    if command in (("upgrade", "plan"), ("preflight",)) and likely(85):
        chosen.append(("--to", RELEASE, draw(releases)))
    if command == ("upgrade", "run"):
        what = draw(st.sampled_from(["--to", "--to", "--plan", "--resume", "none"]))
        if what == "--to":
            chosen.append(("--to", RELEASE, draw(releases)))
        elif what == "--plan":
            chosen.append(
                ("--plan", PATH, draw(st.sampled_from(["plan", "plan", "plan-list", "binary", "missing"])))
            )
        elif what == "--resume":
            chosen.append(
                ("--resume", TEXT, draw(st.sampled_from(["latest", "20260101-000000-aaaa"]) | argv_text))
            )
        chosen.append((draw(st.sampled_from(["--dry-run", "--dry-run", "--yes", "--yes", "-y"])), None, None))
        if likely(80):
            chosen.append(
                (
                    "--state-dir",
                    STATE,
                    draw(st.sampled_from(["fresh"] * 4 + ["file", "inside-file", "read-only", "relative"])),
                )
            )
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 4]))):
        if options and likely(92):
            name = draw(st.sampled_from(sorted(options)))
            kind = options[name]
        else:  # an option no command has, or one of another command
            name = draw(
                st.sampled_from(["--bogus", "-x", "--to", "--plan", "--debug", "--yes=no", "--output=xml"])
            )
            kind = draw(st.sampled_from([None, TEXT]))
        value = {
            None: None,
            RELEASE: draw(releases),
            TEXT: draw(
                st.sampled_from(PLAUSIBLE.get(name, [])) if PLAUSIBLE.get(name) and likely(60) else argv_text
            ),
            "format": draw(st.sampled_from(["text", "json", "text", "json", "yaml", "xml", ""])),
            "number": draw(numbers),
            PATH: draw(
                st.sampled_from(
                    [
                        "loopback",
                        "missing",
                        "directory",
                        "binary",
                        "latin1",
                        "plan",
                        "plan-list",
                        "example",
                        "relative",
                    ]
                )
            ),
            OUT: draw(st.sampled_from(["file", "file", "directory", "missing-dir", "read-only", "relative"])),
            STATE: draw(st.sampled_from(["fresh", "file", "inside-file", "read-only", "relative"])),
        }[kind]
        chosen.append((name, kind, value))
    if likely(5):
        chosen.insert(0, ("--debug", None, None))  # a global option: before the command
    return command, chosen


def resolve(
    files: Files, command: tuple[str, ...], chosen: list[tuple[str, str | None, Any]], name_text: str
) -> list[str]:
    """The argv: each drawn value made into a real path: files to read from `Files`, files to write under
    the example's own directory."""
    d = files.work
    read_only = Path("/sys") if os.geteuid() == 0 else files.directory / "read-only"
    argv = list(command)
    if chosen[:1] == [("--debug", None, None)]:  # the global option goes before the command
        argv, chosen = ["--debug", *argv], chosen[1:]
    for name, kind, value in chosen:
        if kind == PATH:
            if value == "example" and command in CONNECTING:
                value = "loopback"  # 10.x addresses: only for commands that never connect
            relative = safe(name_text) if command in CONNECTING else name_text or "x"
            resolved = str(files.example) if value == "example" else str(files.readable.get(value, relative))
        elif kind == OUT:
            resolved = str({"file": d / "out.json", "directory": d, "missing-dir": d / "no" / "out.json",
                            "read-only": read_only / "out.json", "relative": safe(name_text)}[value])  # fmt: skip
        elif kind == STATE:
            (d / "a-file").write_text("")
            resolved = str({"fresh": d / "state", "file": d / "a-file", "inside-file": d / "a-file" / "state",
                            "read-only": read_only / "xsoar-mt-state", "relative": safe(name_text)}[value])  # fmt: skip
        else:
            resolved = value
        argv += [name] if name else []
        argv += [resolved] if resolved is not None else []
    return argv


def safe(text: str) -> str:
    """A relative file name under the working directory (the example's own)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "name"
    return cleaned[:40]


_made: list[Files] = []


def _files(factory: pytest.TempPathFactory) -> Files:
    if not _made:
        _made.append(Files(factory.mktemp("inputs")))
    return _made[0]


@settings(max_examples=examples(), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@seed(SEED)
@given(line=command_lines(), name_text=argv_text)
def test_a_random_command_line_never_crashes_the_cli(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    line: tuple[tuple[str, ...], list[tuple[str, str | None, Any]]],
    name_text: str,
) -> None:
    files = _files(tmp_path_factory)
    files.work = tmp_path_factory.mktemp("work")
    monkeypatch.chdir(files.work)  # relative paths (a --state-dir, an --out) land here
    argv = resolve(files, *line, name_text)
    result = runner.invoke(
        app,
        argv,
        env={"XSOAR_MT_TEST_LINK": "https://download.demisto.com/x?token=t0ken",
             "XSOAR_DOWNLOAD_LINK": "https://download.demisto.com/x?token=t0ken", "SSH_AUTH_SOCK": ""},
    )  # fmt: skip
    output = result.output
    assert result.exit_code != ExitCode.INTERNAL, (argv, output[-3000:])
    assert result.exit_code in DOCUMENTED, (argv, result.exit_code, output[-3000:])
    assert "Traceback" not in output, (argv, output[-3000:])
    for text in output.splitlines():
        if text.startswith("error: "):
            assert len(text) <= 4100, text[:300]
