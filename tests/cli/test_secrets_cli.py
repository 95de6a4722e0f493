"""One set of secrets through every output of `upgrade run`, `preflight` and `report`: never shown in any form.

The secrets are chosen so that each form output can carry them differs from the value itself: they hold
`/`, `+`, `=`, `&`, a space, a quote, a backslash and non-ASCII letters, so their URL-encoded and JSON
forms are other strings. The scripted servers echo them where a real server would (the installer's output
quoting the download link, a failing link check printing the URL), and the test searches the console
text, the JSON lines, the journal, the run's copy of its plan, the per-server logs, the preflight
findings and the report's HTML, Markdown and JSON for every form.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests import inventories as make
from tests.cli.wired import WiredRunner
from tests.unit.scripted_servers import ScriptedFleet
from xsoar_mt.cli import app
from xsoar_mt.secrets import REDACTOR

runner = WiredRunner()

TOKEN = "tok/én+9=&x y"
LINK = f"https://download.demisto.com/download-params/?token={quote_plus(TOKEN)}&email=ops@example.com"
SUDO = 'pâss wörd/"q"\\+1'
API_KEY = "kéy +/=&Z9"
SECRETS = {"download token": TOKEN, "download link": LINK, "sudo password": SUDO, "API key": API_KEY}

INVENTORY = make.as_yaml(
    make.inventory(
        make.main(make.single(make.server("m1", "127.0.0.1", "6.11.0", ssh_port=2201))),
        [make.host("h1", make.single(make.server("h1", "127.0.0.1", "6.11.0", ssh_port=2202)), ["acme"])],
        name="cli",
        deployment={"database": "bolt", "communication_port": 1, "api_key": {"env": "XSOAR_TEST_API_KEY"}},
        ssh={"user": "ops", "sudo_password": {"env": "XSOAR_TEST_SUDO"}},
        installer={"link": {"env": "XSOAR_TEST_LINK"}},
        health={"timeout": 1, "interval": 0.01, "max_interval": 0.01},
    )
)


def forms(value: str) -> dict[str, str]:
    """Every form of `value` that output may carry, by name, each a different string here."""
    return {
        "as is": value,
        "URL-encoded": quote(value, safe=""),
        "form-encoded": quote_plus(value),
        "in a JSON string": json.dumps(value)[1:-1],
    }


def test_each_secret_differs_from_its_url_encoded_and_json_forms() -> None:
    # else the search below for the encoded forms would prove nothing a search for the value does not
    for name in ("download token", "sudo password", "API key"):
        found = forms(SECRETS[name])
        assert len(set(found.values())) == len(found), found


def leaks(text: str) -> list[str]:
    return [f"{secret} ({form})" for secret, value in SECRETS.items() for form, shown in forms(value).items()
            if shown in text]  # fmt: skip


def survey(server: str) -> str:
    """A server's survey output: its version, and a link check that failed and quoted the link."""
    version = base64.b64encode(f'{{"demistoVersion": "6.11.0", "server": "{server}"}}'.encode()).decode()
    link = base64.b64encode(f"tool=wget\n{LINK}: ERROR 403: Forbidden.".encode()).decode()
    return (  # as the survey script frames it: each section's output in base64 on one line
        f"==xsoar-mt== version\n==body== {version}\n==rc== 0\n"
        f"==xsoar-mt== installer-link\n==body== {link}\n==rc== 8\n"
    )


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedFleet]:
    monkeypatch.setenv("XSOAR_TEST_LINK", LINK)
    monkeypatch.setenv("XSOAR_TEST_SUDO", SUDO)
    monkeypatch.setenv("XSOAR_TEST_API_KEY", API_KEY)
    monkeypatch.setattr(REDACTOR, "_values", set())  # what this test registers is forgotten after it
    scripted = ScriptedFleet({"m1": "6.11.0", "h1": "6.11.0"})
    for server in scripted.servers.values():
        server.survey = survey(server.name)
        # an installer that quotes what it was given: the link, the password it was fed, the key, each as
        # is and in a request line where it is URL-encoded on its own
        server.says = (
            f"fetching {LINK}\nsudo: {SUDO}\nAuthorization: {API_KEY}\n"
            f"GET /download-params/?downloadName=6_12_latest&token={quote_plus(TOKEN)}\n"
            f"GET https://ops:{quote(SUDO, safe='')}@mirror.example/?key={quote(API_KEY, safe='')}\n"
        )
    scripted.servers["h1"].install_fails = True

    monkeypatch.setattr(runner, "shells", scripted.shell)
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    yield scripted


def invoke(tmp_path: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "-i", str(tmp_path / "inventory.yaml")])


def test_no_form_of_a_secret_reaches_any_output_of_a_failed_run_its_resume_or_preflight(
    fleet: ScriptedFleet, tmp_path: Path
) -> None:
    state = ["--state-dir", str(tmp_path / "state"), "--yes", "--ignore-preflight-errors=all"]
    outputs = {
        "run, JSON lines": invoke(tmp_path, "upgrade", "run", "--to", "6.12", "-o", "json", *state),
        "resume, console text": invoke(tmp_path, "upgrade", "run", "--resume", "latest", *state),
        "preflight, JSON": invoke(tmp_path, "preflight", "--to", "6.12", "-o", "json"),
        "preflight, text": invoke(tmp_path, "preflight", "--to", "6.12"),
    }
    # the report is clean because its sources are, not because this process learnt the secrets: forget them
    REDACTOR.clear()
    report_dir = tmp_path / "report"
    outputs["report"] = invoke(tmp_path, "report", "latest", "--state-dir", str(tmp_path / "state"), "--out",
                               str(report_dir))  # fmt: skip
    assert outputs["report"].exit_code == 0, outputs["report"].output
    for name in ("run, JSON lines", "resume, console text"):
        assert outputs[name].exit_code == 6, outputs[name].output  # h1's installer failed both times
    assert outputs["preflight, JSON"].exit_code == 7  # the link check failed on both servers

    # the secrets did reach the places they are meant for, so their absence below means something
    stdins = "".join(stdin or "" for _, _, stdin in fleet.calls)
    assert quote_plus(TOKEN) in stdins and f"Authorization: {API_KEY}" in stdins
    assert "installing..." in (tmp_path / "state").joinpath(*next_log(tmp_path)).read_text()
    findings = json.loads(outputs["preflight, JSON"].stdout)["findings"]
    assert any(f["check"] == "installer" and "ERROR 403" in f["detail"] for f in findings)

    for name, result in outputs.items():
        assert leaks(result.stdout + result.stderr) == [], f"{name} shows a secret"
    json_lines = [json.loads(line) for line in outputs["run, JSON lines"].stdout.splitlines()]
    assert {e["kind"] for e in json_lines} >= {"step-output", "warning", "step-finished"}
    assert leaks(json.dumps(json_lines, ensure_ascii=False)) == []  # nor once the JSON is decoded
    produced = sorted(p for p in (tmp_path / "state").rglob("*") if p.is_file())
    kinds = {p.name if p.suffix != ".log" else "a server log" for p in produced}
    assert {"journal.jsonl", "a server log"} <= kinds and any(p.name.startswith("plan-") for p in produced)
    reports = sorted(report_dir.iterdir())
    assert [p.suffix for p in reports] == [".html", ".json", ".md"]
    assert 'data-outcome="failed"' in reports[0].read_text()  # the report tells the failed install
    produced += reports
    for path in produced:
        text = path.read_text()
        assert leaks(text) == [], f"{path.name} holds a secret"
        if path.suffix in (".jsonl", ".json"):
            decoded = (
                [json.loads(line) for line in text.splitlines()]
                if path.suffix == ".jsonl"
                else [json.loads(text)]
            )
            assert leaks(json.dumps(decoded, ensure_ascii=False)) == [], f"{path.name} holds a secret in JSON"


def next_log(tmp_path: Path) -> tuple[str, ...]:
    (log,) = (tmp_path / "state").glob("runs/*/logs/h1.log")
    return log.relative_to(tmp_path / "state").parts
