"""The report model from journals written here: stitching runs by lineage, tenants' real windows, steps
cut off, older journals, and the three renderings of one model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.journals import start, step, view, write
from xsoar_mt.errors import InvalidInput, UsageError
from xsoar_mt.report import ReportFiles, report_upgrade
from xsoar_mt.report.model import NOT_RECORDED, Interval, find_runs, read_report
from xsoar_mt.report.timeline import render_timeline

INVENTORY = """\
inventory_version: 1
deployment: {name: t, communication_port: 1, database: elasticsearch, elasticsearch_url: "https://127.0.0.1:9200"}
main: {server: {name: m1, address: 127.0.0.1}, tenants: [{name: ops}]}
hosts:
  - name: ha
    ha: {servers: [{name: a1, address: 127.0.0.2}, {name: a2, address: 127.0.0.3}]}
    tenants: [{name: acme}]
  - name: h
    server: {name: p1, address: 127.0.0.4}
    tenants: [{name: beta}]
"""
DR_INVENTORY = """\
inventory_version: 1
deployment: {name: t, communication_port: 1}
main: {server: {name: m1, address: 127.0.0.1}, tenants: [{name: ops}]}
hosts:
  - name: dr
    dr: {primary: {name: p1, address: 127.0.0.4}, secondary: {name: s1, address: 127.0.0.5}}
    tenants: [{name: beta}]
"""


def state(ts: float, server: str, **changes: Any) -> dict[str, Any]:
    data = {**view(server), **changes}
    return {"ts": ts, "kind": "server-state", "servers": [server], "data": data}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def test_an_older_journal_without_who_ran_it_reports_each_field_as_not_recorded(tmp_path: Path) -> None:
    write(tmp_path, "20260101-000000-aaaa", [start(100.0), {"ts": 101.0, "kind": "run-finished",
                                                           "data": {"outcome": "succeeded"}}])  # fmt: skip
    (attempt,) = read_report(tmp_path, "latest", None).attempts
    assert (attempt.operator, attempt.machine, attempt.xsoar_mt_version, attempt.inventory_sha256) == (
        NOT_RECORDED, NOT_RECORDED, NOT_RECORDED, NOT_RECORDED,
    )  # fmt: skip
    assert attempt.outcome == "succeeded"


def test_runs_are_joined_by_their_upgrade_id_and_a_run_of_another_upgrade_is_left_out(tmp_path: Path) -> None:
    write(tmp_path, "20260101-000000-aaaa", [start(100.0, upgrade="20260101-000000-aaaa", operator="ann")])
    write(tmp_path, "20260101-010000-bbbb", [start(200.0, upgrade="20260101-010000-bbbb")])
    write(tmp_path, "20260102-000000-cccc", [start(300.0, upgrade="20260101-000000-aaaa", operator="bob")])
    upgrade, paths = find_runs(tmp_path, "20260102-000000-cccc")
    assert upgrade == "20260101-000000-aaaa"
    assert [p.name for p in paths] == ["20260101-000000-aaaa", "20260102-000000-cccc"]
    report = read_report(tmp_path, "20260101-000000-aaaa", None)
    assert [(a.run_id, a.operator) for a in report.attempts] == [
        ("20260101-000000-aaaa", "ann"), ("20260102-000000-cccc", "bob"),
    ]  # fmt: skip
    # a journal from before the lineage field stands for its own upgrade only
    assert find_runs(tmp_path, "20260101-010000-bbbb")[1] == [tmp_path / "runs" / "20260101-010000-bbbb"]


def test_a_resume_in_the_same_journal_is_a_second_run_with_its_own_outcome(tmp_path: Path) -> None:
    records = [
        start(100.0, upgrade="u"),
        *step(101.0, 102.0, "ha@6.12/install/a1", ["a1"], "failed", error="step failed: boom", failed=["a1"]),
        {"ts": 103.0, "kind": "run-finished", "data": {"outcome": "failed"}},
        start(500.0, "run-resumed", upgrade="u"),
        *step(501.0, 502.0, "ha@6.12/install/a1", ["a1"]),
        {"ts": 503.0, "kind": "run-finished", "data": {"outcome": "succeeded"}},
    ]
    write(tmp_path, "u", records)
    report = read_report(tmp_path, "u", None)
    assert [(a.number, a.resumed, a.outcome, a.failures) for a in report.attempts] == [
        (1, False, "failed", ("step failed: boom",)), (2, True, "succeeded", ()),
    ]  # fmt: skip
    assert [(s.attempt, s.outcome) for s in report.steps] == [(1, "failed"), (2, "ok")]
    assert report.outcome == "succeeded"
    assert [m.kind for m in report.marks] == ["resume"]


def test_a_step_never_finished_is_unfinished_and_ends_at_its_runs_last_record(tmp_path: Path) -> None:
    write(tmp_path, "u", [start(100.0), *step(101.0, None, "m@6.12/install/m1", ["m1"]), state(107.5, "m1")])
    report = read_report(tmp_path, "u", None)
    (cut,) = report.steps
    assert (cut.outcome, cut.start, cut.end) == ("unfinished", 101.0, 107.5)
    assert report.attempts[0].outcome == "ended without a recap"


def test_an_ha_groups_tenant_is_down_only_while_every_server_of_the_group_is_down(
    tmp_path: Path, inventory: Path
) -> None:
    records = [
        start(100.0),
        state(110.0, "a1", service="stopped", healthy=False),
        state(111.0, "a2", service="stopped", healthy=False),
        state(120.0, "a1", service="running", healthy=None),  # started, not yet healthy: still down
        state(125.0, "a1", service="running", healthy=True, version="6.12.0"),
        state(140.0, "a2", service="running", healthy=True, version="6.12.0"),
    ]
    write(tmp_path, "u", records)
    tenants = {t.tenant: t for t in read_report(tmp_path, "u", inventory).tenants}
    assert tenants["acme"].outages == (Interval(111.0, 125.0),)
    assert tenants["ops"].outages == () and tenants["beta"].outages == ()


def test_a_dr_secondary_stopped_alone_is_no_outage_but_its_primary_stopped_is(tmp_path: Path) -> None:
    inventory = tmp_path / "dr.yaml"
    inventory.write_text(DR_INVENTORY)
    records = [
        start(100.0),
        state(110.0, "s1", service="stopped", healthy=False),
        state(120.0, "s1", service="running", healthy=True, version="6.12.0"),
        state(130.0, "p1", service="stopped", healthy=False),
        state(150.0, "p1", service="running", healthy=True, version="6.12.0"),
    ]
    write(tmp_path, "u", records)
    (beta,) = [t for t in read_report(tmp_path, "u", inventory).tenants if t.tenant == "beta"]
    assert beta.outages == (Interval(130.0, 150.0),)


def test_a_server_still_stopped_when_the_journal_ends_is_an_outage_left_open(
    tmp_path: Path, inventory: Path
) -> None:
    write(
        tmp_path,
        "u",
        [start(100.0), state(110.0, "m1", service="stopped", healthy=False), state(130.0, "a1")],
    )
    report = read_report(tmp_path, "u", inventory)
    (ops,) = [t for t in report.tenants if t.tenant == "ops"]
    assert ops.outages == (Interval(110.0, None),)
    assert ops.outages[0].seconds(report.ended) == 20.0


def test_a_host_group_is_degraded_from_mains_upgrade_until_its_own_lowest_server_catches_up(
    tmp_path: Path, inventory: Path
) -> None:
    records = [
        start(100.0),
        state(110.0, "m1", version=None, service="stopped", healthy=False),  # installing: version unknown
        state(120.0, "m1", version="6.12.0"),
        state(130.0, "a1", version="6.12.0"),
        state(150.0, "a2", version="6.12.0"),
    ]
    write(tmp_path, "u", records)
    tenants = {t.tenant: t for t in read_report(tmp_path, "u", inventory).tenants}
    assert tenants["acme"].degraded == (Interval(120.0, 150.0),)
    assert tenants["beta"].degraded == (Interval(120.0, None),)  # p1 caught up only after the journal ends
    assert tenants["ops"].degraded == ()


def test_report_latest_takes_the_newest_run_and_a_missing_run_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no run to report"):
        find_runs(tmp_path, "latest")
    write(tmp_path, "20260101-000000-aaaa", [start(100.0)])
    write(tmp_path, "20260102-000000-bbbb", [start(200.0)])
    assert find_runs(tmp_path, "latest")[0] == "20260102-000000-bbbb"
    with pytest.raises(UsageError, match="report nope: no such run"):
        find_runs(tmp_path, "nope")
    with pytest.raises(UsageError, match="no such run"):
        find_runs(tmp_path, "../runs")


def test_the_three_files_come_from_one_model_and_the_svg_has_a_bar_per_step_and_server(
    tmp_path: Path, inventory: Path
) -> None:
    records = [
        start(100.0, window_end=400.0),
        *step(101.0, 111.0, "ha@6.12/stop/a1", ["a1", "a2"]),
        *step(111.0, 130.0, "ha@6.12/install/a1", ["a1"], "failed", error="it broke", failed=["a1"]),
        {"ts": 131.0, "kind": "run-finished", "data": {"outcome": "failed"}},
    ]
    write(tmp_path / "state", "u", records)
    report, written = report_upgrade(tmp_path / "state", "u", inventory, out=tmp_path / "out")
    assert [p.name for p in written] == [
        "xsoar-mt-report-u.html",
        "xsoar-mt-report-u.md",
        "xsoar-mt-report-u.json",
    ]
    html, md, data = (p.read_text() for p in written)
    assert json.loads(data)["steps"][1]["error"] == "it broke"
    assert "it broke" in html and "it broke" in md
    bars = re.findall(r'<rect class="bar (\w+)"[^>]*data-step="([^"]+)" data-server="([^"]+)"', html)
    assert sorted(bars) == [("failed", "ha@6.12/install/a1", "a1"), ("ok", "ha@6.12/stop/a1", "a1"),
                            ("ok", "ha@6.12/stop/a1", "a2")]  # fmt: skip
    assert 'data-mark="window-end"' in render_timeline(report)
    assert "<script" not in html and "http" not in html.replace("http-equiv", "").replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # nothing to fetch, nothing to run
    only = report_upgrade(tmp_path / "state", "u", inventory, ReportFiles(markdown=tmp_path / "t.md"))[1]
    assert only == [tmp_path / "t.md"]


def test_a_journal_with_fields_of_the_wrong_type_is_still_reported_without_an_internal_error(
    tmp_path: Path, inventory: Path
) -> None:
    records = [
        start(100.0, operator=7, observed={"m1": "running", "a1": {"service": 3}}),
        {"ts": "soon", "kind": "step-started", "step": "x/stop/m1", "servers": "m1", "data": []},
        {
            "ts": 103.0,
            "kind": "step-finished",
            "step": "x/stop/m1",
            "servers": {"m1": 1},
            "data": {"failed": 5},
        },
        {"ts": 104.0, "kind": "warning", "servers": {"a": 1}, "data": {"verdict": "ignored", "check": 3}},
        {"ts": 105.0, "kind": "server-state", "data": {"server": ["m1"], "service": "stopped"}},
        {"ts": 106.0, "kind": "run-finished", "data": "done"},
    ]
    write(tmp_path, "u", records)
    report = read_report(tmp_path, "u", inventory)
    assert report.attempts[0].operator == NOT_RECORDED
    assert [(s.step, s.servers, s.outcome) for s in report.steps] == [("x/stop/m1", (), "ok")]
    assert [(f.check, f.server) for f in report.ignored] == [(NOT_RECORDED, "")]
    assert render_timeline(report).startswith("<svg")


def test_a_failure_quoting_lines_of_server_output_stays_in_one_markdown_list_item(tmp_path: Path) -> None:
    from xsoar_mt.report.markdown import render_markdown

    records = [
        start(100.0),
        *step(101.0, 102.0, "m@6.12/install/m1", ["m1"], "failed", error="exited 1:\nline one\nline two"),
        {"ts": 103.0, "kind": "run-finished", "data": {"outcome": "failed"}},
    ]
    write(tmp_path, "u", records)
    text = render_markdown(read_report(tmp_path, "u", None))
    (item,) = [line for line in text.splitlines() if line.startswith("- The run")]
    assert item.endswith("failed; exited 1: | line one | line two")
    assert "\nline one" not in text


def test_an_interrupted_run_and_a_closed_window_are_told_and_marked(tmp_path: Path) -> None:
    records = [
        start(100.0, upgrade="u", window_end=150.0),
        {"ts": 101.0, "kind": "wave-started", "data": {"wave": 1}},
        *step(102.0, 110.0, "h@6.12/stop/a1", ["a1"]),
        {"ts": 111.0, "kind": "window-closed", "data": {"phase": "h2@6.12"}},
        {"ts": 112.0, "kind": "run-finished", "data": {"outcome": "window-closed"}},
        start(200.0, "run-resumed", upgrade="u"),
        *step(201.0, None, "h2@6.12/stop/p1", ["p1"]),
        {"ts": 205.0, "kind": "run-finished", "data": {"outcome": "interrupted"}},
    ]
    write(tmp_path, "u", records)
    report = read_report(tmp_path, "u", None)
    assert [a.outcome for a in report.attempts] == ["window-closed", "interrupted"]
    assert [(m.kind, m.at) for m in report.marks] == [
        ("wave", 101.0),
        ("window-closed", 111.0),
        ("resume", 200.0),
    ]
    assert report.steps[-1].outcome == "unfinished" and report.steps[-1].end == 205.0
    svg = render_timeline(report)
    assert 'data-mark="wave" data-at="101.000"' in svg and 'data-mark="window-closed"' in svg
    assert 'class="bar unfinished"' in svg


def test_an_ignored_finding_is_read_from_its_records_fields_and_an_older_record_from_its_message(
    tmp_path: Path, inventory: Path
) -> None:
    records = [
        start(100.0),
        {  # the fields win: the message is only what the console showed
            "ts": 101.0,
            "kind": "warning",
            "message": "shown: anything at all",
            "data": {"verdict": "ignored", "check": "disk", "server": "a1", "detail": "9% free on /"},
        },
        {  # a journal from before the fields: read back out of the message
            "ts": 102.0,
            "kind": "warning",
            "message": "preflight ports on m1: 443: refused",
            "data": {"verdict": "ignored", "check": "ports"},
        },
        {"ts": 106.0, "kind": "run-finished", "data": {"outcome": "succeeded"}},
    ]
    write(tmp_path, "f", records)
    report = read_report(tmp_path, "f", inventory)
    assert [(f.check, f.server, f.detail) for f in report.ignored] == [
        ("disk", "a1", "9% free on /"),
        ("ports", "m1", "443: refused"),
    ]
