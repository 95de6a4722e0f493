"""Preflight checks: what would stop an upgrade, found before anything is changed."""

from xsoar_mt.checks.model import (
    CHECKS,
    Check,
    Finding,
    FindingVerdict,
    PreflightReport,
    Severity,
    parse_ignore,
)
from xsoar_mt.checks.preflight import run_preflight
from xsoar_mt.checks.verdicts import PreflightOptions

__all__ = [
    "CHECKS",
    "Check",
    "Finding",
    "FindingVerdict",
    "PreflightOptions",
    "PreflightReport",
    "Severity",
    "parse_ignore",
    "run_preflight",
]
