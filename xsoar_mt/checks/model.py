"""Preflight checks as data: their names and severities, findings, the report, and ignoring failures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from xsoar_mt.errors import ExitCode, UsageError
from xsoar_mt.observed import Observed, Reading


class FindingVerdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    IGNORED = "ignored"  # a failure of a skippable check the operator chose to ignore


class Severity(StrEnum):
    MANDATORY = "mandatory"  # a failure always blocks
    SKIPPABLE = "skippable"  # a failure blocks unless named in --ignore-preflight-errors


@dataclass(frozen=True)
class Check:
    name: str
    severity: Severity
    looks_at: str


CHECKS: Mapping[str, Check] = {
    c.name: c
    for c in (
        Check("ssh", Severity.MANDATORY, "reachable over SSH, authenticated, host key known and matching"),
        Check("sudo", Severity.MANDATORY, "sudo works without a prompt or with the configured password"),
        Check("version", Severity.MANDATORY, "running versions, the skew verdict now and along the plan"),
        Check(
            "working-directory",
            Severity.MANDATORY,
            "installer.directory and commands.backup_dir and every parent: no symlink, owned by root or the "
            "SSH user, not writable by group or others",
        ),
        Check(
            "installer", Severity.SKIPPABLE, "the download link answers from each server, or the local file"
        ),
        Check("disk", Severity.SKIPPABLE, "free space for the installer and under /var/lib/demisto"),
        Check("tmp-noexec", Severity.SKIPPABLE, "whether the installer's extraction directory allows exec"),
        Check("communication", Severity.SKIPPABLE, "the vendor's TCP matrix, tested from the servers"),
        Check("tls", Severity.SKIPPABLE, "TLS version, old versions refused, certificate, HA groups alike"),
        Check("system", Severity.SKIPPABLE, "CPU cores, memory and disk against the vendor's sizing"),
        Check("elasticsearch", Severity.SKIPPABLE, "cluster health and free shards for the new indices"),
        Check(
            "api-key", Severity.SKIPPABLE, "where the API key comes from and whether it is a main-account key"
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    """One check's verdict on one server (or on the deployment, the cluster or the local machine)."""

    check: str
    server: str
    verdict: FindingVerdict
    detail: str  # may end in ` [...]`: what was seen on this server, e.g. its certificate
    fix: str = ""

    @property
    def headline(self) -> str:
        """The detail without the server's own facts in brackets at its end: what servers can share."""
        head, bracket, _ = self.detail.rpartition(" [")
        return head if bracket and self.detail.endswith("]") else self.detail

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": CHECKS[self.check].severity.value,
            "server": self.server,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Link:
    """A TCP path the vendor's communication matrix asks for (or notes as not required)."""

    source: str  # server name
    target: str  # server name, or `tenant@server`
    address: str
    port: int
    why: str
    required: bool = True


class PathState(StrEnum):
    OPEN = "open"
    REFUSED = "refused"  # closed, or nothing listens
    TIMEOUT = "timeout"  # no answer: filtered by a firewall
    UNTESTED = "untested"  # the source server could not be reached, or has no way to test
    STOPPED = "stopped"  # refused, but the service there is stopped (a failed run's leftover, say)


@dataclass(frozen=True)
class PathResult:
    link: Link
    state: PathState

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.link.source,
            "to": self.link.target,
            "address": self.link.address,
            "port": self.link.port,
            "why": self.link.why,
            "required": self.link.required,
            "state": self.state.value,
        }


@dataclass(frozen=True)
class PreflightReport:
    target: str
    findings: tuple[Finding, ...]
    paths: tuple[PathResult, ...] = ()
    ignored: tuple[str, ...] = ()
    seconds: float = 0.0
    ssh: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    observed: Observed = field(default_factory=Observed)  # every server, as resolved from what was read
    readings: Mapping[str, Reading] = field(default_factory=dict)  # what each server answered
    extract_dirs: Mapping[str, str] = field(default_factory=dict)  # -target added where /tmp is noexec

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """The failures that stop an upgrade (mandatory ones always; skippable ones unless ignored)."""
        return tuple(f for f in self.findings if f.verdict is FindingVerdict.FAIL)

    @property
    def ok(self) -> bool:
        return not self.blocking

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.PREFLIGHT_FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "blocking": len(self.blocking),
            "ignored_checks": list(self.ignored),
            "seconds": round(self.seconds, 3),
            "findings": [f.to_dict() for f in self.findings],
            "communication": [p.to_dict() for p in self.paths],
        }


def parse_ignore(text: str | Iterable[str] | None) -> frozenset[str]:
    """`--ignore-preflight-errors=disk,tls` (or `all`): the skippable checks whose failures are ignored.

    `all` means every skippable check; naming a mandatory check, or an unknown one, is refused.
    """
    if text is None:
        return frozenset()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = {i.strip().lower() for i in items if i.strip()}
    if "all" in names:
        names.discard("all")
        names |= {c.name for c in CHECKS.values() if c.severity is Severity.SKIPPABLE}
    unknown = sorted(n for n in names if n not in CHECKS)
    if unknown:
        raise UsageError(
            f"--ignore-preflight-errors: no check named {', '.join(unknown)}",
            hint="known checks: " + ", ".join(CHECKS),
        )
    mandatory = sorted(n for n in names if CHECKS[n].severity is Severity.MANDATORY)
    if mandatory:
        raise UsageError(
            f"--ignore-preflight-errors: {', '.join(mandatory)} "
            f"{'is a mandatory check' if len(mandatory) == 1 else 'are mandatory checks'} and cannot be ignored",
            hint="mandatory checks: "
            + ", ".join(c.name for c in CHECKS.values() if c.severity is Severity.MANDATORY)
            + "; fix what they report instead",
        )
    return frozenset(names)


def apply_ignore(findings: Iterable[Finding], ignore: frozenset[str]) -> tuple[Finding, ...]:
    """Failures of ignored (skippable) checks become `ignored`; the finding and its detail stay visible."""
    out = []
    for finding in findings:
        if finding.verdict is FindingVerdict.FAIL and finding.check in ignore:
            finding = replace(
                finding, verdict=FindingVerdict.IGNORED, detail=f"{finding.detail} (ignored as asked)"
            )
        out.append(finding)
    return tuple(out)
