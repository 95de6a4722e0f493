"""Every `xsoar-mt ...` command the tutorial and the how-tos show, run as written against the fleet.

Each document's commands run in its order, in a directory of its own, after the fleet is reset. Every
inventory file name the documents use (inventory.example.yaml, inventory.yaml, staging.yaml, prod.yaml)
is there the same fleet inventory, of a deployment shaped like the example (a DR main pair, two DR host
pairs and a single host, on 6.10). What a document cannot show literally is set up here, each in one
place, so the harness stays easy to re-run as behaviour changes:

- `ADJUST`: a run (or a prepare) that would ask for confirmation gets `--yes` (the person at the prompt answers y);
- `PREPARE`: a document whose command needs something first gets it (the resume how-to: a run that
  failed, whose id replaces the example id in the command);
- `INVENTORY`: a document that changes the inventory (the delivery how-to: upload from a link) gets
  that inventory, and `ENVIRONMENT` whatever it exports;
- a window the upgrade-night how-to ends at a time of day (`--window-end 06:00`) is given a whole day
  (`+24h`), so whether the run fits does not depend on the hour the tests run at.

A command is expected to exit 0. Extraction is a plain function, tested without the fleet. Each
document runs on both inventories (see `cases`): the one without versions in `make test`, the other in
`make test-matrix`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleet import Fleet, require_sshd
from tests.fleet.spec import FleetSpec

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "docs" / "tutorial.md", *sorted((REPO / "docs" / "how-to").glob("*.md"))]
INVENTORY_NAMES = ("inventory.example.yaml", "inventory.yaml", "staging.yaml", "prod.yaml")
DEPLOYMENT = "acme"

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
_SPAN = re.compile(r"`([^`\n]+)`")
_COMMAND = re.compile(r"xsoar-mt (?:inventory|upgrade|preflight|status|validate|report)\b[^`]*")


@dataclass(frozen=True)
class Documented:
    doc: str  # the document's path under docs/
    line: int
    command: str

    def __str__(self) -> str:
        return f"docs/{self.doc}:{self.line}: {self.command}"


def documented_commands(path: Path) -> list[Documented]:
    """The xsoar-mt commands a document shows, in order: each line of a code block, and each inline code
    span, that holds one (a trailing `# comment` dropped)."""
    text = path.read_text()
    name = path.relative_to(REPO / "docs").as_posix()
    found: list[tuple[int, str]] = []
    for block in _FENCE.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        for offset, line in enumerate(block.group(1).splitlines()):
            match = _COMMAND.search(line)
            if match:
                found.append((first + offset, re.sub(r"\s+#.*$", "", match.group(0)).strip()))
    prose = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in _SPAN.finditer(prose):
        match = _COMMAND.match(span.group(1))
        if match:
            found.append((prose.count("\n", 0, span.start()) + 1, match.group(0).strip()))
    return [Documented(name, line, command) for line, command in sorted(found)]


# -- the fleet and each document's setting ------------------------------------------------------------


def docs_spec() -> FleetSpec:
    """The example inventory's shape on the fleet: acme, a DR main pair and three host groups, on 6.10."""
    return FleetSpec.from_dict(
        {
            "deployments": [
                {
                    "name": DEPLOYMENT,
                    "version": "6.10.0",
                    "main": {
                        "dr": {"primary": {"name": "acme-main-a"}, "secondary": {"name": "acme-main-b"}}
                    },
                    "hosts": [
                        {
                            "name": "emea",
                            "dr": {"primary": {"name": "acme-emea-a"}, "secondary": {"name": "acme-emea-b"}},
                            "tenants": ["globex", "initech"],
                        },
                        {
                            "name": "us-east",
                            "dr": {"primary": {"name": "acme-use-a"}, "secondary": {"name": "acme-use-b"}},
                            "tenants": ["umbrella"],
                        },
                        {"name": "apac", "server": {"name": "acme-apac-1"}, "tenants": ["tyrell", "wayne"]},
                    ],
                }
            ]
        }
    )


@dataclass
class Setting:
    """Where one document's commands run."""

    fleet: Fleet
    cwd: Path
    env: dict[str, str]

    def run(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def adjust(command: str) -> str:
    """A run that would stop at the confirmation prompt answers it with --yes, as the person would."""
    words = shlex.split(command)
    asks = words[:3] in (["xsoar-mt", "upgrade", "run"], ["xsoar-mt", "upgrade", "prepare"])
    if asks and not {"--dry-run", "--yes", "-y"} & set(words):
        head, redirect, tail = command.partition(" >")
        return f"{head} --yes{redirect}{tail}"
    return command


def failed_run_first(setting: Setting, command: str) -> str:
    """The resume how-to: a run that fails on the single host's install, then the fault is fixed; the
    example run id becomes that run's id, taken from the command its recap prints."""
    apac = setting.fleet.server("acme-apac-1")
    apac.set_fault(installer_fails=True)
    failed = setting.run("xsoar-mt upgrade run -i inventory.yaml --to 6.12 --yes")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    printed = re.search(
        r"to continue once the cause is fixed: (xsoar-mt upgrade run .*--resume (\S+))", failed.stdout
    )  # the run's own state directory comes from $XSOAR_MT_STATE_DIR, so the command needs no --state-dir
    assert printed, failed.stdout
    apac.clear_faults()
    return re.sub(r"--resume \S+", f"--resume {printed.group(2)}", command)


def upload_from_a_link(setting: Setting, stack: ExitStack) -> dict[str, Any]:
    """The delivery how-to: this machine downloads from the vendor's link (the loopback stub) and uploads."""
    from tests.download_stub import download_server

    stub = stack.enter_context(download_server(setting.fleet.downloads, "doc-token", setting.cwd / "stub"))
    setting.env.update({"XSOAR_DOWNLOAD_LINK": stub.link(), "SSL_CERT_FILE": str(stub.ca_file)})
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        setting.env.pop(name, None)
    return {"installer": {"link": {"env": "XSOAR_DOWNLOAD_LINK", "file": None}, "delivery": "upload"}}


def whole_day_window(setting: Setting, command: str) -> str:
    """The upgrade-night how-to: `--window-end HH:MM` becomes a day from now, whatever the hour."""
    return re.sub(r"--window-end \d{1,2}:\d{2}", "--window-end +24h", command)


PREPARE: dict[str, Callable[[Setting, str], str]] = {
    "how-to/resume-after-a-failure.md": failed_run_first,
    "how-to/plan-the-upgrade-night.md": whole_day_window,
}
INVENTORY: dict[str, Callable[[Setting, ExitStack], dict[str, Any]]] = {
    "how-to/deliver-installers.md": upload_from_a_link
}


# Documents that plan without contacting a server, and say that the inventory must then give each
# server's version: they run only on an inventory that does. Every other document runs on both.
OFFLINE = {"tutorial.md": "planning uses the versions written in the inventory",
           "how-to/run-from-ci.md": "the versions come from the inventory"}  # fmt: skip


def write_inventories(fleet: Fleet, cwd: Path, overrides: dict[str, Any], versions: bool = True) -> None:
    """The same inventory under every name the documents use: each server with its version, or, as an
    operator's first inventory, without any."""
    path = fleet.inventory(DEPLOYMENT, cwd / INVENTORY_NAMES[0], **overrides)
    data = yaml.safe_load(path.read_text())
    for group in [data["main"], *data["hosts"]]:
        for entry in _servers(group):
            if versions:
                entry.setdefault("version", fleet.server(entry["name"]).version)
            else:
                entry.pop("version", None)
    text = yaml.safe_dump(data, sort_keys=False)
    for name in INVENTORY_NAMES:
        (cwd / name).write_text(text)


def _servers(group: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "server" in group:
        yield group["server"]
    elif "dr" in group:
        yield from (group["dr"]["primary"], group["dr"]["secondary"])
    else:
        yield from group["ha"]["servers"]


# -- the tests ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_sshd()
    fleet = Fleet(docs_spec(), Path(tmp_path_factory.mktemp("docs-fleet")))
    fleet.start()
    try:
        yield fleet
    finally:
        fleet.stop()


def cases() -> Iterator[Any]:
    """Each document on both inventories. `make test` runs the one an operator starts from, without
    versions (a document that plans offline: with them, and without them only the check that it says
    so); the other runs in `make test-matrix`, with the fault matrix."""
    for doc in DOCS:
        name = doc.relative_to(REPO / "docs").as_posix()
        if not documented_commands(doc):
            continue
        for versions in (True, False):
            slow_variant = versions and name not in OFFLINE
            marks = [pytest.mark.matrix_only] if slow_variant else []
            label = "with-versions" if versions else "without-versions"
            yield pytest.param(doc, versions, marks=marks, id=f"{name}-{label}")


@pytest.mark.fleet
@pytest.mark.parametrize(("doc", "versions"), list(cases()))
def test_every_command_a_document_shows_runs_against_the_fleet(
    doc: Path, docs_fleet: Fleet, tmp_path: Path, versions: bool
) -> None:
    commands = documented_commands(doc)
    name = doc.relative_to(REPO / "docs").as_posix()
    if not versions and name in OFFLINE:
        assert OFFLINE[name] in doc.read_text()  # the document says the inventory must give the versions
        return
    docs_fleet.reset()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
    }
    env.pop("COLUMNS", None)
    setting = Setting(docs_fleet, tmp_path, env)
    failures = []
    with ExitStack() as stack:
        overrides = INVENTORY[name](setting, stack) if name in INVENTORY else {}
        write_inventories(docs_fleet, tmp_path, overrides, versions)
        for documented in commands:
            command = adjust(documented.command)
            if name in PREPARE:
                command = PREPARE[name](setting, command)
            result = setting.run(command)
            if result.returncode != 0:
                failures.append(f"{documented}\n  ran: {command}\n  exit {result.returncode}: "
                                f"{(result.stderr or result.stdout).strip()[-600:]}")  # fmt: skip
    assert not failures, "\n".join(failures)


EXPECTED = {
    "tutorial.md": [
        "xsoar-mt inventory validate inventory.example.yaml",
        "xsoar-mt upgrade plan -i inventory.example.yaml --to 6.12",
        "xsoar-mt upgrade plan -i inventory.example.yaml --to 6.11 --only main",
        "xsoar-mt upgrade plan -i inventory.example.yaml --to 6.12 --out plan.json",
        "xsoar-mt upgrade run -i inventory.example.yaml --plan plan.json",
    ],
    "how-to/deliver-installers.md": [
        "xsoar-mt preflight -i inventory.yaml --to 6.12",
        "xsoar-mt upgrade run -i inventory.yaml --to 6.12",
    ],
    "how-to/plan-the-upgrade-night.md": [
        "xsoar-mt upgrade plan -i inventory.yaml --to 6.11 --waves 1,25%,100% --window-end 06:00 --probe",
        "xsoar-mt upgrade plan -i inventory.yaml --to 6.11 --waves 1,25%,100% --tenant-impact",
        "xsoar-mt upgrade plan -i inventory.yaml --to 6.11 --waves 1,25%,100% -o csv > notice.csv",
        "xsoar-mt upgrade run -i inventory.yaml --to 6.11 --waves 1,25%,100% --window-end 06:00",
        "xsoar-mt upgrade run -i inventory.yaml --resume latest --window-end 06:00",
    ],
    "how-to/report-the-night.md": [
        "xsoar-mt upgrade run -i inventory.yaml --to 6.12",
        "xsoar-mt report latest -i inventory.yaml --out reports",
        "xsoar-mt report latest --md change-4711.md",
    ],
    "how-to/prepare-by-day.md": [
        "xsoar-mt upgrade plan -i inventory.yaml --to 6.12 --probe",
        "xsoar-mt upgrade prepare -i inventory.yaml --to 6.12",
        "xsoar-mt upgrade prepare -i inventory.yaml --resume latest",
        "xsoar-mt upgrade run -i inventory.yaml --to 6.12",
    ],
    "how-to/resume-after-a-failure.md": [
        "xsoar-mt upgrade run -i inventory.yaml --resume 20261201-021654-88a1 --yes",
    ],
    "how-to/roll-back.md": ["xsoar-mt status -i inventory.yaml"],
    "how-to/run-from-ci.md": [
        "xsoar-mt inventory validate staging.yaml -o json",
        "xsoar-mt upgrade plan -i staging.yaml --to 6.12 -o json --out plan.json",
        "xsoar-mt upgrade run  -i staging.yaml --to 6.12 --dry-run -o json > commands.jsonl",
        "xsoar-mt upgrade run -i prod.yaml --plan plan.json",
    ],
}


@pytest.mark.parametrize("name", EXPECTED)
def test_the_commands_of_a_document_are_found_in_order_without_their_comments(name: str) -> None:
    assert [d.command for d in documented_commands(REPO / "docs" / name)] == EXPECTED[name]


def test_only_the_bastion_how_to_shows_no_command() -> None:
    empty = {d.relative_to(REPO / "docs").as_posix() for d in DOCS if not documented_commands(d)}
    assert empty == {"how-to/use-a-bastion.md"}
    assert set(EXPECTED) | empty == {d.relative_to(REPO / "docs").as_posix() for d in DOCS}


def test_a_run_that_would_ask_gets_yes_and_a_dry_run_or_redirect_keeps_its_place() -> None:
    assert (
        adjust("xsoar-mt upgrade run -i a.yaml --to 6.12") == "xsoar-mt upgrade run -i a.yaml --to 6.12 --yes"
    )
    assert adjust("xsoar-mt upgrade run -i a.yaml --dry-run -o json > c.jsonl").endswith("> c.jsonl")
    assert "--yes" not in adjust("xsoar-mt upgrade run -i a.yaml --dry-run")
    assert adjust("xsoar-mt upgrade prepare -i a.yaml --to 6.12").endswith(" --yes")
    assert adjust("xsoar-mt upgrade plan -i a.yaml --to 6.12") == "xsoar-mt upgrade plan -i a.yaml --to 6.12"
