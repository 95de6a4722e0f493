"""Canary: random secrets go through every command against the fleet and never appear anywhere.

Searched: the console output of each command, every file the commands produced (plans, journals, logs,
the report's HTML, Markdown and JSON),
the fleet's record of every command line run over SSH, the argv of every process those commands started
(the fleet traces each execve with strace), its event log, and every file left in the servers' homes. Not searched: the files that hold the secrets on purpose (the inventory's secret files
and the fleet's own configuration of what it expects).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from tests.elasticsearch_stub import ClusterState, elasticsearch_stub
from tests.fleet.fleet import Fleet, require_sshd
from tests.fleet.inventory import write_secret
from tests.fleet.spec import FleetSpec

# its module-scoped fleet is started once: every test of the file on the same pytest-xdist worker
pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("secrets-canary")]

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok" + secrets.token_hex(12)
SUDO = "sudo" + secrets.token_hex(12)
API_KEY = "key" + secrets.token_hex(12)
ES_PASSWORD = "es" + secrets.token_hex(12)
SECRETS = {"download token": TOKEN, "sudo password": SUDO, "API key": API_KEY,
           "Elasticsearch password": ES_PASSWORD}  # fmt: skip


@pytest.fixture(scope="module")
def canary_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_sshd()
    spec = FleetSpec.from_dict(
        {
            "download_token": TOKEN,
            "trace_exec": True,
            "deployments": [
                {
                    "name": "canary",
                    "database": "elasticsearch",
                    "api_key": API_KEY,
                    "version": "6.11.0",
                    "main": {"server": {"name": "c-main", "sudo_password": SUDO}, "tenants": ["ops"]},
                    "hosts": [
                        {
                            "name": "h1",
                            "server": {"name": "c-h1", "sudo_password": SUDO},
                            "tenants": ["acme"],
                        },
                        {
                            "name": "h2",
                            "server": {"name": "c-h2", "sudo_password": SUDO},
                            "tenants": ["beta"],
                        },
                    ],
                }
            ],
        }
    )
    fleet = Fleet(spec, tmp_path_factory.mktemp("canary-fleet"))
    fleet.start()
    try:
        yield fleet
    finally:
        fleet.stop()


def xsoar_mt(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xsoar_mt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


def forms(value: str) -> set[str]:
    return {value, quote(value, safe="")}


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if any(f in text for f in forms(value))]


def files_under(root: Path, skip: set[Path]) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and not any(path.is_relative_to(s) for s in skip):
            yield path


def test_no_secret_appears_in_any_output_file_or_remote_command_line(
    canary_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = canary_fleet
    fleet.add_installer("6.12")
    work = tmp_path / "work"
    work.mkdir()
    cluster = ClusterState(credentials=f"elastic:{ES_PASSWORD}")
    stack = contextlib.ExitStack()
    es = stack.enter_context(elasticsearch_stub(cluster))
    credentials = write_secret(fleet, "es-credentials", f"elastic:{ES_PASSWORD}")
    inv = fleet.inventory("canary", work / "inventory.yaml")
    data = yaml.safe_load(inv.read_text())
    data["deployment"].update(elasticsearch_url=es.url, elasticsearch_credentials={"file": str(credentials)})
    inv.write_text(yaml.safe_dump(data))
    state = ["--state-dir", str(work / "state")]
    fleet.server("c-h2").set_fault(installer_fails=True)

    outputs = {
        "plan": xsoar_mt(
            work, "upgrade", "plan", "-i", str(inv), "--to", "6.12", "--out", str(work / "plan.json")
        ),
        "plan json": xsoar_mt(work, "upgrade", "plan", "-i", str(inv), "--to", "6.12", "-o", "json"),
        "dry run": xsoar_mt(
            work, "upgrade", "run", "-i", str(inv), "--to", "6.12", "--dry-run", "--probe", *state
        ),
        "failed run": xsoar_mt(work, "upgrade", "run", "-i", str(inv), "--to", "6.12", "--yes", *state),
    }
    assert outputs["failed run"].returncode == 6, outputs["failed run"].stderr
    fleet.server("c-h2").clear_faults()
    outputs["resume"] = xsoar_mt(work, "upgrade", "run", "-i", str(inv), "--resume", "latest", "--yes", "-o", "json",
                                 *state)  # fmt: skip
    assert outputs["resume"].returncode == 0, outputs["resume"].stdout + outputs["resume"].stderr
    outputs["debug error"] = xsoar_mt(work, "--debug", "upgrade", "run", "-i", str(inv), "--to", "6.12", "--yes",
                                      "--state-dir", str(work / "state"), "--force-unlock", "nope")  # fmt: skip
    outputs["report"] = xsoar_mt(
        work, "report", "latest", "-i", str(inv), "--out", str(work / "report"), *state
    )
    assert outputs["report"].returncode == 0, outputs["report"].stdout + outputs["report"].stderr
    for command in ("preflight", "validate"):
        outputs[command] = xsoar_mt(work, command, "-i", str(inv), "--to", "6.12")
        assert "No such command" not in outputs[command].stderr, f"{command} is not available"
    # the way back: the old release's link is checked from each server and its installer fetched again
    # (no snapshot repository is named, so the release alone goes back)
    fleet.add_installer("6.11")
    outputs["rollback plan"] = xsoar_mt(work, "rollback", "plan", "-i", str(inv), "--probe", "--release-only",
                                        "--out", str(work / "rollback.json"), *state)  # fmt: skip
    assert outputs["rollback plan"].returncode == 0, (
        outputs["rollback plan"].stdout + outputs["rollback plan"].stderr
    )
    outputs["rollback"] = xsoar_mt(work, "rollback", "run", "-i", str(inv), "--release-only", "--yes", "-o", "json",
                                   *state)  # fmt: skip
    assert outputs["rollback"].returncode == 0, outputs["rollback"].stdout + outputs["rollback"].stderr
    assert all(server.version.startswith("6.11") for server in fleet.servers("canary"))

    stack.close()
    # the credentials really were used: every request to the cluster carried them (and none went without)
    assert cluster.seen_authorization and all(
        a and a.startswith("Basic ") for a in cluster.seen_authorization
    )

    for name, result in outputs.items():
        assert leaks(result.stdout + result.stderr) == [], f"{name} printed a secret"

    produced = list(files_under(work, skip={work / "inventory.yaml"}))
    assert any(p.name == "journal.jsonl" for p in produced) and any(p.suffix == ".log" for p in produced)
    assert {p.suffix for p in produced if p.parent == work / "report"} == {".html", ".md", ".json"}
    for path in produced:
        assert leaks(path.read_text(errors="replace")) == [], f"{path} holds a secret"

    commands = fleet.commands()
    assert len(commands) > 20
    for record in commands:
        assert leaks(record["command"]) == [], f"a command line on {record['server']} holds a secret"
    assert leaks(fleet.event_log.read_text()) == []
    argvs = fleet.process_argvs()
    assert len(argvs) > 100
    # the servers downloaded the installer: wget ran, and the link reached it on stdin, not in its argv
    wgets = [a for _, _, a in argvs if a[:1] == ["wget"] and "--spider" not in a]  # the downloads
    assert wgets and all(
        a[:3] == ["wget", "-q", "-O"]
        and a[3].startswith(("xsoar-mt/demisto-6.12.sh.part.", "xsoar-mt/demisto-6.11.sh.part."))
        and a[4:] == ["-i", "-"]
        for a in wgets
    ), wgets
    assert any(a[3].startswith("xsoar-mt/demisto-6.11.sh.part.") for a in wgets)  # the rollback's fetch too
    checks = [a for _, _, a in argvs if a[:1] == ["wget"] and "--spider" in a]  # the old link's check
    assert checks and all(a[-2:] == ["-i", "-"] for a in checks), checks
    for server, _, argv in argvs:
        assert leaks("\0".join(argv)) == [], f"a process on {server} had a secret in its argv: {argv[:3]}"
    for server in fleet.servers("canary"):
        for path in files_under(server.home, skip=set()):
            assert leaks(path.read_text(errors="replace")) == [], f"{path} on {server.name} holds a secret"


def test_the_fleet_records_the_argv_of_every_process_and_not_shell_builtins(canary_fleet: Fleet) -> None:
    probe = "argv-probe-" + secrets.token_hex(4)
    done = canary_fleet.ssh(
        "c-main", f'x={probe}; printf \'%s\' "$x" | /bin/cat >/dev/null; (/bin/echo "$x" >/dev/null &); wait'
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 5  # the background echo may start after the SSH command returned
    while True:
        traced = canary_fleet.process_argvs("c-main")
        (session,) = {
            s for _, s, argv in traced if argv[:2] == ["/bin/bash", "-c"] and f"x={probe}" in argv[2]
        }
        argvs = [argv for _, s, argv in traced if s == session]
        if ["/bin/echo", probe] in argvs or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ["/bin/cat"] in argvs  # printf is a builtin: its argument is in no process's argv
    assert ["/bin/echo", probe] in argvs  # a process started in the background is traced too
    assert sorted(a[0] for a in argvs) == ["/bin/bash", "/bin/cat", "/bin/echo"]  # printf ran as no process
