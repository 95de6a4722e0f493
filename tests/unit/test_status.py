"""`status` judged from the observed state: which servers count, and when the deployment cannot be judged."""

from __future__ import annotations

from tests.inventories import GroupSpec, build
from xsoar_mt.observed import Reading, resolve
from xsoar_mt.releases import Version
from xsoar_mt.skew import SkewVerdict
from xsoar_mt.status import judge_status

V = Version.parse


def test_a_stopped_server_is_judged_on_the_inventorys_version_and_an_unreachable_one_is_unknown() -> None:
    inv = build(
        "bolt",
        GroupSpec("main", "single", ("6.11",)),
        [GroupSpec("a", "single", ("6.10",)), GroupSpec("b", "single", ("6.11",))],
    )
    readings = {
        "main-0": Reading("main-0", 1.0, sudo_ok=True, status_code=0, api_version=V("6.11.0")),
        "a-0": Reading("a-0", 1.0, sudo_ok=True, status_code=3),  # stopped, no marker
        "b-0": Reading("b-0", 1.0, error="connection refused"),
    }
    report = judge_status(inv, resolve(inv, readings, {}))
    rows = {r.server: (r.source, r.service, r.reachable, r.skew) for r in report.servers}
    assert rows == {
        "main-0": ("api", "running", True, SkewVerdict.OK),
        "a-0": ("inventory", "stopped", True, SkewVerdict.DEGRADED),
        "b-0": ("inventory", "unknown", False, None),
    }
    assert report.skew is None
    assert report.skew_reasons[0] == "cannot judge: version unknown for b-0"
    assert "connection refused" in next(r.detail for r in report.servers if r.server == "b-0")
