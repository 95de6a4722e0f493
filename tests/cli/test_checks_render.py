"""Preflight and status as text, from hand-made reports: short by default, every row on request."""

from __future__ import annotations

import io
from dataclasses import dataclass

from rich.console import Console

from xsoar_mt.checks.model import Finding, FindingVerdict, Link, PathResult, PathState, PreflightReport
from xsoar_mt.cli.checks_render import render_preflight, render_status
from xsoar_mt.releases import Version
from xsoar_mt.skew import SkewVerdict
from xsoar_mt.status import ServerStatus, StatusReport

CHECKS_PER_SERVER = (
    "ssh",
    "sudo",
    "version",
    "installer",
    "disk",
    "tmp-noexec",
    "communication",
    "tls",
    "system",
)
EXPIRING = "the certificate expires in 29 days"


def text(report: PreflightReport, **options: bool) -> str:
    out = io.StringIO()
    render_preflight(report, Console(file=out, width=1_000_000, highlight=False), **options)
    return out.getvalue()


def fleet_report(servers: int, *, closed: bool = False) -> PreflightReport:
    """Every check passes on every server, but each certificate expires in 29 days (each its own)."""
    names = ["main"] + [f"h{i}" for i in range(1, servers)]
    findings = []
    for check in CHECKS_PER_SERVER:
        for name in names:
            if check == "tls":
                facts = f"TLSv1.3; certificate CN={name}.example, issuer CN=ca, 29 days left"
                findings.append(
                    Finding(
                        "tls", name, FindingVerdict.WARN, f"{EXPIRING} [{facts}]", "renew the certificate"
                    )
                )
            else:
                findings.append(Finding(check, name, FindingVerdict.PASS, f"{check} fine"))
    findings.append(Finding("api-key", "deployment", FindingVerdict.PASS, "no API key configured"))
    paths = [
        PathResult(Link("main", name, "10.0.0.1", 443, "main to host"), PathState.OPEN) for name in names[1:]
    ]
    if closed:
        paths[3] = PathResult(paths[3].link, PathState.REFUSED)
    return PreflightReport("6.12", tuple(findings), tuple(paths), seconds=3.0)


def test_preflight_of_42_servers_with_one_shared_warning_fits_in_40_lines() -> None:
    lines = text(fleet_report(42)).splitlines()
    assert len(lines) <= 40


def test_each_check_is_one_line_with_its_pass_warn_and_fail_counts() -> None:
    lines = text(fleet_report(42)).splitlines()
    assert lines[0] == "Preflight checks for 6.12 on 42 servers"
    assert lines[1].split() == ["check", "pass", "warn", "fail"]
    assert lines[2].split() == ["ssh", "42", "-", "-"]
    assert next(line for line in lines if line.startswith("tls")).split() == ["tls", "-", "42", "-"]


def test_a_warning_shared_by_many_servers_is_one_line_naming_them() -> None:
    out = text(fleet_report(42))
    assert out.count(EXPIRING) == 1
    assert "warn tls on 42 servers: main, h1, h2, h3 and 38 more\n" in out
    assert f"  {EXPIRING}\n  fix: renew the certificate\n" in out


def test_verbose_shows_every_finding_with_its_own_facts() -> None:
    out = text(fleet_report(5), verbose=True)
    assert out.count(EXPIRING) == 5
    assert "CN=h3.example" in out


def test_the_matrix_appears_only_when_a_required_path_is_not_open_or_when_asked() -> None:
    assert "Communication matrix" not in text(fleet_report(6))
    assert "Communication matrix" in text(fleet_report(6), matrix=True)
    shown = text(fleet_report(6, closed=True))
    assert "Communication matrix: the paths not open" in shown
    assert "refused" in shown and "h4" in shown and "h2" not in shown.split("Communication matrix")[1]


def test_identical_failures_group_but_different_ones_stay_apart() -> None:
    findings = (
        Finding("disk", "a", FindingVerdict.FAIL, "0.1 GiB free on /var, needs 10.0 GiB", "free space"),
        Finding("disk", "b", FindingVerdict.FAIL, "0.1 GiB free on /var, needs 10.0 GiB", "free space"),
        Finding("disk", "c", FindingVerdict.FAIL, "0.5 GiB free on /var, needs 10.0 GiB", "free space"),
        Finding("ssh", "a", FindingVerdict.PASS, "ok"),
        Finding("ssh", "b", FindingVerdict.PASS, "ok"),
        Finding("ssh", "c", FindingVerdict.PASS, "ok"),
    )
    out = text(PreflightReport("6.12", findings))
    assert "fail disk on a, b\n  0.1 GiB free" in out
    assert "fail disk on c\n  0.5 GiB free" in out
    assert "3 finding(s) block the upgrade" in out


@dataclass(frozen=True)
class SourcedStatus(ServerStatus):
    """A status row carrying where its version came from, as the lead's status.py will."""

    source: str | None = None


def test_status_is_one_row_per_server_with_unknown_skew_and_the_version_source() -> None:
    rows = (
        SourcedStatus(
            "m1",
            "main",
            "main",
            "10.0.0.1",
            True,
            True,
            Version.parse("6.12.0"),
            SkewVerdict.OK,
            source="api",
        ),
        SourcedStatus("h1", "host", "h1", "10.0.0.2", False, None, None, None, "unreachable", source=None),
    )
    out = io.StringIO()
    render_status(
        StatusReport("d", rows, SkewVerdict.OK, (), ()), Console(file=out, width=300, highlight=False)
    )
    table = [line for line in out.getvalue().splitlines() if line.startswith("│")]
    assert len(table) == 2
    assert table[0].split("│")[5].strip() == "api"
    assert table[1].split("│")[8].strip() == "unknown"
