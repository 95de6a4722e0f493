"""`xsoar-mt report` of a real night on the fleet: a run that fails, its resume, and the report of both,
checked against the journal (and the servers' own record), then shown in headless Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.runs import journal, run, xsoar_mt

# its module-scoped fleet is started once: every test of the file on the same pytest-xdist worker
pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("report-fleet")]


@dataclass(frozen=True)
class Night:
    inventory: Path
    records: list[dict[str, Any]]  # the journal
    report: dict[str, Any]  # the report's JSON
    html: Path
    markdown: str
    stops: dict[str, int]  # server -> stops the server itself recorded


@pytest.fixture(scope="module")
def night(fleet_session: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    """single, in two waves: h1 is short of disk, which the preflight is told to ignore, so its installer
    fails (the first wave); a resume with the disk freed finishes; then `report latest` writes all
    three files."""
    fleet = fleet_session
    fleet.reset()
    fleet.add_installer("6.12")
    work = tmp_path_factory.mktemp("night")
    fleet.server("single-h1").set_fault(low_disk=True)
    inv = fleet.inventory("single", work / "inventory.yaml")
    failed = run(
        inv, "--to", "6.12", "--waves", "1,100%", "--window-end", "+3h", "--ignore-preflight-errors=disk"
    )
    assert failed.returncode == 6, failed.stdout + failed.stderr
    fleet.server("single-h1").clear_faults()
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    out = xsoar_mt(
        "report", "latest", "--state-dir", str(work / "state"), "--out", str(work / "report"), cwd=work
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (html,) = (work / "report").glob("*.html")
    (md,) = (work / "report").glob("*.md")
    (data,) = (work / "report").glob("*.json")
    assert str(html) in out.stdout and str(md) in out.stdout and str(data) in out.stdout
    stops: dict[str, int] = {}
    for event in fleet.events():
        if event["event"] == "stop":
            stops[event["server"]] = stops.get(event["server"], 0) + 1
    yield Night(inv, journal(inv), json.loads(data.read_text()), html, md.read_text(), stops)


def step_runs(records: list[dict[str, Any]]) -> list[tuple[int, str, str, float, float, str]]:
    """(attempt, step, server, start, end, outcome) of every step on every server, read from the journal
    here, independently of the report's code."""
    out = []
    attempt = 0
    started: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["kind"] in ("run-intent", "run-resumed"):
            attempt += 1
        elif record["kind"] == "step-started":
            started[record["step"]] = record
        elif record["kind"] == "step-finished":
            begun = started.pop(record["step"])
            failed = record["data"].get("failed") or record["servers"]
            for server in record["servers"]:
                outcome = record["data"]["outcome"]
                outcome = "failed" if outcome == "failed" and server in failed else "ok"
                out.append((attempt, record["step"], server, begun["ts"], record["ts"], outcome))
    return sorted(out)


def outages_from_journal(records: list[dict[str, Any]], server: str) -> list[tuple[float, float | None]]:
    """A single server's outages: from the record saying it stopped to the one saying it is healthy."""
    out: list[tuple[float, float | None]] = []
    for record in records:
        if record["kind"] != "server-state" or record["data"]["server"] != server:
            continue
        data = record["data"]
        if data["service"] in ("stopped", "failed") and (not out or out[-1][1] is not None):
            out.append((record["ts"], None))
        elif data["service"] == "running" and data["healthy"] is True and out and out[-1][1] is None:
            out[-1] = (out[-1][0], record["ts"])
    return out


def test_the_report_of_a_failed_run_and_its_resume_shows_both_runs_the_failure_and_the_ignored_finding(
    night: Night,
) -> None:
    report = night.report
    attempts = report["attempts"]
    assert [(a["resumed"], a["outcome"]) for a in attempts] == [(False, "failed"), (True, "succeeded")]
    intent = next(r for r in night.records if r["kind"] == "run-intent")
    for attempt in attempts:
        assert attempt["run_id"] == intent["upgrade"] == report["upgrade"]
        assert attempt["operator"] == intent["operator"] and attempt["machine"] == intent["machine"]
        assert attempt["inventory_sha256"] == intent["inventory_sha256"] != "not recorded"
    failed = [r for r in night.records if r["kind"] == "step-finished" and r["data"]["outcome"] == "failed"]
    assert [f["data"]["error"] for f in failed] == list(attempts[0]["failures"])
    assert len(failed) == 1 and "single-h1" in attempts[0]["failures"][0]
    assert {(f["check"], f["server"], f["attempt"]) for f in report["ignored"]} == {("disk", "single-h1", 1)}
    assert report["validation"]["outcome"] == "ok"
    assert {s["server"]: (s["before"], s["after"]) for s in report["servers"]} == {
        "single-main": ("6.11.0", "6.12.0"), "single-h1": ("6.11.0", "6.12.0"), "single-h2": ("6.11.0", "6.12.0"),
    }  # fmt: skip
    assert (
        "failed" in night.markdown and "Resume 1" in night.markdown and "disk on single-h1" in night.markdown
    )


def test_every_step_of_the_journal_is_in_the_report_at_its_time_with_its_outcome(night: Night) -> None:
    expected = step_runs(night.records)
    got = sorted(
        (s["attempt"], s["step"], server, s["start"], s["end"],
         "failed" if s["outcome"] == "failed" and (not s["failed_on"] or server in s["failed_on"]) else "ok")
        for s in night.report["steps"]
        for server in s["servers"]
    )  # fmt: skip
    assert got == expected
    assert any(o == "failed" for *_, o in expected)


def test_each_tenants_outage_windows_are_those_the_journal_records_and_match_the_servers_own_stops(
    night: Night,
) -> None:
    hosts = {"ops": "single-main", "acme": "single-h1", "beta": "single-h1", "gamma": "single-h2"}
    tenants = {t["tenant"]: t for t in night.report["tenants"]}
    assert set(tenants) == set(hosts)
    for tenant, server in hosts.items():
        windows = [(w["start"], w["end"]) for w in tenants[tenant]["outages"]]
        assert windows == outages_from_journal(night.records, server), tenant
        assert len(windows) == night.stops[server], tenant  # one outage for each stop the server saw
        assert all(end is not None for _, end in windows)
        assert tenants[tenant]["estimated_down_minutes"] > 0  # the plan's estimate stands beside them
    # h1 stopped in the failed run and served again only after its resume installed it
    (acme,) = tenants["acme"]["outages"]
    resume = next(r["ts"] for r in night.records if r["kind"] == "run-resumed")
    assert acme["start"] < resume < acme["end"]
    assert tenants["gamma"]["degraded"] and not tenants["ops"]["degraded"]  # hosts lag main; main never does


# -- in a real browser ----------------------------------------------------------------------------------


BARS = """Array.from(document.querySelectorAll('svg.timeline rect.bar')).map(r => {
  const box = r.getBoundingClientRect();
  return {step: r.dataset.step, server: r.dataset.server, attempt: Number(r.dataset.attempt),
          start: Number(r.dataset.start), end: Number(r.dataset.end), outcome: r.dataset.outcome,
          left: box.left, width: box.width, visible: box.width > 0 && box.height > 0};
})"""


def test_the_html_report_renders_in_chromium_with_no_console_message_and_a_bar_per_step_at_its_time(
    night: Night, tmp_path: Path
) -> None:
    from tests.browser import open_page

    with open_page(night.html) as page:
        bars = page.evaluate(BARS)
        headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        shot = tmp_path / "report.png"  # never into the repository
        page.screenshot(shot, 1280, 900)
        console = list(page.console)
    assert console == []
    assert shot.stat().st_size > 10_000
    assert "Timeline" in headings and "Tenants" in headings
    expected = step_runs(night.records)
    got = sorted((b["attempt"], b["step"], b["server"], b["start"], b["end"], b["outcome"]) for b in bars)
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g[3] == pytest.approx(e[3], abs=0.001) and g[4] == pytest.approx(e[4], abs=0.001)
        assert g[5] == e[5]
    assert all(b["visible"] for b in bars)
    # within one run the drawn position follows the time: left edges in the same order as the starts,
    # at one scale (pixels per second) for every bar of that run
    for attempt in {b["attempt"] for b in bars}:
        mine = sorted((b for b in bars if b["attempt"] == attempt), key=lambda b: b["start"])
        first, last = mine[0], mine[-1]
        scale = (last["left"] - first["left"]) / (last["start"] - first["start"])
        for bar in mine:
            assert bar["left"] == pytest.approx(
                first["left"] + scale * (bar["start"] - first["start"]), abs=1.0
            )
    # the resume's bars begin right of the failed run's
    assert min(b["left"] for b in bars if b["attempt"] == 2) > max(
        b["left"] for b in bars if b["attempt"] == 1
    )


def test_the_console_check_sees_an_error_on_a_page_that_logs_one(tmp_path: Path) -> None:
    from tests.browser import open_page

    page_file = tmp_path / "broken.html"
    page_file.write_text(
        "<!DOCTYPE html><html><body><script>console.error('boom'); missing();</script></body></html>"
    )
    with open_page(page_file) as page:
        console = list(page.console)
    assert any("boom" in line for line in console) and any("exception" in line for line in console), console
