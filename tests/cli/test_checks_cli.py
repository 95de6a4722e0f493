"""`preflight`, `status` and `validate` through the CLI with scripted shells: flags, exit codes, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import inventories as make
from tests.cli.wired import WiredRunner
from tests.unit.recorded_survey import RECORDED
from xsoar_mt.cli import app
from xsoar_mt.remote import Recorder, RecordingShell, RemoteShell, Result

runner = WiredRunner()

INVENTORY = make.as_yaml(
    make.inventory(
        make.main(make.single(make.server("m1", "127.0.0.1", "6.11.0", ssh_port=2201))),
        [make.host("h1", make.single(make.server("h1", "127.0.0.1", "6.11.0", ssh_port=2202)), ["acme"])],
        name="cli",
        deployment={"database": "bolt", "communication_port": 1},
        ssh={"user": "ops"},
        installer={"delivery": "upload", "file": "demisto-6.12.sh"},
    )
)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    (tmp_path / "demisto-6.12.sh").write_text("#!/bin/sh\n")
    return path


def scripted(monkeypatch: pytest.MonkeyPatch, survey: str) -> Recorder:
    recorder = Recorder()

    def respond(server: str, command: str) -> Result:
        if "__xsoar_mt_sudo" in command:
            return Result(server, command, 0, "__xsoar_mt_sudo=0\n__xsoar_mt_status=0\n")
        return Result(server, command, 0, survey)

    monkeypatch.setattr(runner, "shells", lambda name: RecordingShell(name, recorder, respond))
    return recorder


def refuse_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    def shell(name: str) -> RemoteShell:
        raise AssertionError("no server may be contacted")

    monkeypatch.setattr(runner, "shells", shell)


def test_ignoring_a_mandatory_check_exits_2_before_any_connection(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_ssh(monkeypatch)
    result = runner.invoke(
        app, ["preflight", "-i", str(inventory), "--to", "6.12", "--ignore-preflight-errors=ssh,disk"]
    )
    assert result.exit_code == 2
    assert "ssh is a mandatory check and cannot be ignored" in result.output


def test_ignoring_an_unknown_check_exits_2_and_names_the_known_ones(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_ssh(monkeypatch)
    result = runner.invoke(
        app, ["preflight", "-i", str(inventory), "--to", "6.12", "--ignore-preflight-errors=dsk"]
    )
    assert result.exit_code == 2
    assert "no check named dsk" in result.output and "tmp-noexec" in result.output


def test_preflight_exits_7_on_a_failure_and_0_once_it_is_ignored(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = scripted(monkeypatch, RECORDED)
    result = runner.invoke(app, ["preflight", "-i", str(inventory), "--to", "6.12", "-o", "json"])
    assert result.exit_code == 7, result.output
    data = json.loads(result.output)
    failing = {f["check"] for f in data["findings"] if f["verdict"] == "fail"}
    assert failing == {"disk"}  # /tmp noexec only warns: the run adds -target
    assert {s for s, _ in recorder.lines} == {"m1", "h1"}
    assert len(recorder.lines) == 4  # two round trips per server
    ignored = runner.invoke(
        app,
        [
            "preflight",
            "-i",
            str(inventory),
            "--to",
            "6.12",
            "-o",
            "json",
            "--ignore-preflight-errors=disk",
        ],
    )
    assert ignored.exit_code == 0, ignored.output
    assert json.loads(ignored.output)["ignored_checks"] == ["disk"]


def test_preflight_text_shows_the_counts_the_problems_with_their_fix_and_the_untested_paths(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, RECORDED)
    result = runner.invoke(app, ["preflight", "-i", str(inventory), "--to", "6.12"], env={"COLUMNS": "200"})
    assert result.exit_code == 7
    assert result.output.splitlines()[2].split() == ["ssh", "2", "-", "-"]
    assert (
        "fail disk on m1, h1\n  /var/lib/demisto: 0.1 GiB free on /var, needs 10.0 GiB\n  fix: "
        in result.output
    )
    assert "gets -target /var/lib/xsoar-mt/extract" in result.output
    assert "Communication matrix: the paths not open" in result.output  # untested: nc is missing
    assert "block the upgrade" in result.output


def test_preflight_verbose_lists_every_check_on_every_server(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, RECORDED)
    result = runner.invoke(app, ["preflight", "-i", str(inventory), "--to", "6.12", "--verbose"],
                           env={"COLUMNS": "200"})  # fmt: skip
    rows = [line.split("│")[1:4] for line in result.output.splitlines() if line.startswith("│ ssh")]
    assert [[c.strip() for c in row] for row in rows] == [["ssh", "m1", "pass"], ["ssh", "h1", "pass"]]


def test_status_json_lists_every_server_with_its_role_and_version(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, '{"demistoVersion": "6.11.0"}')
    result = runner.invoke(app, ["status", "-i", str(inventory), "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = [(s["server"], s["role"], s["version"], s["skew"]) for s in json.loads(result.output)["servers"]]
    assert rows == [("m1", "main", "6.11.0", "ok"), ("h1", "host", "6.11.0", "ok")]
