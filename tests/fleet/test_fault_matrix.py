"""The fault matrix: every fault at every kind of step in every host-group shape, then `--resume`.

Faults: a command fails (until cleared), the SSH connection drops (once, for two seconds), Ctrl-C once,
Ctrl-C twice, health never comes. Steps: backup, fetch, stop, install, start, wait-healthy, validate.
Shapes: a single host, an HA group, a DR pair (each with a single main, 6.11 to 6.12). Each case checks:
the run ends with the exit code of docs/reference/exit-codes.md and a recap that matches the servers;
after the fault is cleared `--resume` finishes; no vendor-order violation; no release installed twice on
a server; no backup overwritten. `make test` runs the cases of SLICE; `make test-matrix` runs them all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.runs import (
    events_of,
    interrupt_when,
    order_violations,
    recap_versions,
    run,
    run_json,
    start_run,
    versions,
)
from tests.recap_check import assert_recap_agrees_with_journal

pytestmark = [pytest.mark.fleet, pytest.mark.fault_matrix]

FAULTS = ("fail", "drop", "ctrl-c", "ctrl-c-twice", "unhealthy")
STEPS = ("backup", "fetch", "stop", "install", "start", "wait-healthy", "validate")
SHAPES = ("single", "ha", "dr")

# What each step runs on its server, as the fleet sees the SSH command line.
MATCH = {
    "backup": r"tar -czf",
    "fetch": r"read -r link",
    "stop": r"service demisto stop",
    "start": r"service demisto start",
    "wait-healthy": r"/health",
    "validate": r"for t in",
}

# The exit code each fault leaves at each step (None: the fault cannot happen at that step). A dropped
# connection is reconnected and the step run again (all steps are idempotent, an install is followed);
# Ctrl-C once finishes the group under way; when it comes during the last step there is nothing left
# to skip and the run ends normally.
EXPECTED: dict[str, dict[str, int | None]] = {
    "fail": {s: 6 for s in STEPS} | {"validate": 9},
    "drop": dict.fromkeys(STEPS, 0),
    "ctrl-c": dict.fromkeys(STEPS, 130) | {"validate": 0},
    "ctrl-c-twice": dict.fromkeys(STEPS, 130),
    "unhealthy": dict.fromkeys(STEPS, None) | {"wait-healthy": 6, "validate": 9},
}

# The representative cases `make test` runs: each kind of fault once, in each shape once. Every case,
# these included, runs in `make test-matrix`, which CI runs after `make test`.
SLICE = {
    ("fail", "install", "ha"),
    ("drop", "stop", "single"),
    ("ctrl-c", "install", "dr"),
    ("ctrl-c-twice", "install", "ha"),
    ("unhealthy", "wait-healthy", "dr"),
}


@dataclass(frozen=True)
class Shape:
    deployment: str
    servers: tuple[str, ...]
    main: str

    def target(self, step: str) -> str:
        """The server the fault hits: the one the step acts on first."""
        if step == "validate":
            return self.main  # validation runs on main
        if self.deployment == "drhosts":
            primary, secondary = self.servers
            return primary if step == "stop" else secondary  # the primary is stopped first
        return self.servers[0]


SHAPE = {
    "single": Shape("single", ("single-h1",), "single-main"),
    "ha": Shape("hahosts", ("hahosts-g1a", "hahosts-g1b"), "hahosts-main"),
    "dr": Shape("drhosts", ("drhosts-d1p", "drhosts-d1s"), "drhosts-main"),
}


def cases() -> list[Any]:
    found = []
    for fault in FAULTS:
        for step in STEPS:
            if EXPECTED[fault][step] is None:
                continue
            for shape in SHAPES:
                marks = [] if (fault, step, shape) in SLICE else [pytest.mark.matrix_only]
                found.append(pytest.param(fault, step, shape, marks=marks, id=f"{fault}-{step}-{shape}"))
    return found


def backups(fleet: Fleet, deployment: str) -> dict[Path, tuple[int, int]]:
    """Every backup file on the deployment's servers: (size, modification time)."""
    found = {}
    for server in fleet.servers(deployment):
        folder = server.home / "xsoar-mt" / "backup"
        for path in folder.glob("*.tar.gz") if folder.exists() else ():
            info = path.stat()
            found[path] = (info.st_size, info.st_mtime_ns)
    return found


def settle(fleet: Fleet, name: str, timeout: float = 60) -> None:
    """Wait until no SSH session of the server still runs a command."""
    from tests.fleet.remote import pid_alive

    sessions = fleet.server(name).dir / "state" / "sessions"
    deadline = time.monotonic() + timeout
    while any(pid_alive(int(p.name)) for p in sessions.iterdir() if p.name.isdigit()):
        assert time.monotonic() < deadline, f"a command on {name} is still running"
        time.sleep(0.1)


def fault_seen(fleet: Fleet, server: str) -> bool:
    return any(e["event"] == "fault" and e["server"] == server for e in fleet.events())


def install_began(fleet: Fleet, server: str) -> bool:
    return any(e["event"] == "install_begin" and e["server"] == server for e in fleet.events())


def first_run(
    fleet: Fleet, inv: Path, fault: str, step: str, shape: Shape
) -> tuple[int, list[dict[str, Any]]]:
    """Arm the fault, run to 6.12, and return the exit code and the run's events."""
    server = fleet.server(shape.target(step))
    if fault == "fail":
        if step == "install":
            server.set_fault(installer_fails=True)
        else:
            server.set_fault(commands=[{"match": MATCH[step], "action": "fail", "times": 1000}])
    elif fault == "drop":
        if step == "install":
            server.set_fault(ssh_drop_seconds=2)
        else:
            server.set_fault(commands=[{"match": MATCH[step], "action": "drop", "seconds": 2}])
    elif fault == "unhealthy" and step == "wait-healthy":
        server.set_fault(health_503_seconds=10**6)
    if fault in ("fail", "drop") or (fault, step) == ("unhealthy", "wait-healthy"):
        result, events = run_json(inv, "--to", "6.12")
        return result.returncode, events

    process = start_run(inv, "--to", "6.12")
    if fault == "unhealthy":  # validate: the group's tenants stop answering once the run is under way
        group = [fleet.server(n) for n in shape.servers]
        deadline = time.monotonic() + 120
        while not any(install_began(fleet, s.name) for s in group):
            assert process.poll() is None and time.monotonic() < deadline, "the run never reached the group"
            time.sleep(0.05)
        for member in group:
            member.set_fault(tenants_503=True)
        out, _ = process.communicate(timeout=300)
        return process.returncode, events_of(out)
    times = 2 if fault == "ctrl-c-twice" else 1
    if step == "install":
        server.set_fault(install_seconds=4)
        out, _ = interrupt_when(process, lambda: install_began(fleet, server.name), times)
    else:
        server.set_fault(commands=[{"match": MATCH[step], "action": "slow", "seconds": 4}])
        out, _ = interrupt_when(process, lambda: fault_seen(fleet, server.name), times)
    return process.returncode, events_of(out)


@pytest.mark.parametrize(("fault", "step", "shape_name"), cases())
def test_a_fault_halts_the_run_with_a_true_recap_and_resume_finishes(
    fleet: Fleet, tmp_path: Path, fault: str, step: str, shape_name: str
) -> None:
    shape = SHAPE[shape_name]
    fleet.add_installer("6.12")
    inv = fleet.inventory(shape.deployment, tmp_path / "inventory.yaml",
                          health={"timeout": 4, "interval": 0.2, "max_interval": 0.5})  # fmt: skip
    code, events = first_run(fleet, inv, fault, step, shape)
    assert code == EXPECTED[fault][step], f"exit {code}\n" + "\n".join(
        e["message"] for e in events if e["kind"] in ("step-finished", "warning", "run-finished")
    )
    assert_recap_agrees_with_journal(tmp_path / "state")  # each server's outcome and last step, as journaled
    recap = recap_versions(events)
    (finished,) = [e for e in events if e["kind"] == "run-finished"]
    for server in fleet.servers(shape.deployment):
        said = finished["data"]["fleet"][server.name]
        if recap[server.name] is None:  # unknown: only while an installer failed, vanished or still runs
            assert said["unknown"], said
        else:
            assert recap[server.name] == server.version, (server.name, said)
        if said["running"] is not None and not said["unknown"]:
            assert said["running"] == server.running, (server.name, said)
    taken = backups(fleet, shape.deployment)

    if fault == "ctrl-c-twice":  # a command cut off here may still run there: the operator lets it end
        settle(fleet, shape.target(step))
    for server in fleet.servers(shape.deployment):
        server.clear_faults()
    resumed = run(inv, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(versions(fleet, shape.deployment).values()) == {"6.12.0"}
    assert all(s.running for s in fleet.servers(shape.deployment))
    assert order_violations(fleet) == []
    done: set[tuple[str, str]] = set()
    for event in fleet.events():  # no release is installed again on a server that completed it
        key = (event["server"], event.get("version_after", ""))
        if event["event"] == "install_begin":
            assert key not in done, f"{key} installed again after it completed\n{resumed.stdout}"
        elif event["event"] == "install_end":
            done.add(key)
    after = backups(fleet, shape.deployment)
    for path, seen in taken.items():
        assert after.get(path) == seen, f"backup {path.name} was overwritten or removed"


# -- rollback's own steps ---------------------------------------------------------------------------------
# The same faults at the steps only a rollback has: the old release's fetch, the purge, the restore of a
# backup's files, and (with Elasticsearch) the restore of the snapshot. Each case: upgrade to 6.12, data
# written after it, the fault armed, `rollback run` ends with the expected exit code and a recap that
# agrees with its journal; after the fault is cleared `rollback run --resume latest` finishes: every server
# back on 6.11 and running, the data written after the upgrade gone (files, and Elasticsearch documents),
# the recap agreeing with the journal, every snapshot restore the journal calls done answered by the
# cluster while that step ran, no order violation.
#
# restore-snapshot talks HTTP from this machine to Elasticsearch, not SSH to a server: its faults are the
# cluster's (tests/elasticsearch_stub.py rules): "fail" is Elasticsearch answering HTTP 500, "drop" is the
# connection closed without an answer (and every request for 2 seconds, the cluster out of reach: the
# HTTP equivalent of sshd going away for 2 seconds), Ctrl-C once and twice come while the cluster is
# restoring (the request answers 4 seconds late). Only HA deployments use Elasticsearch in the fleet (a
# single host and a DR pair run BoltDB, as the vendor's DR requires), so the step exists in the HA shape only.

ROLLBACK_FAULTS = ("fail", "drop", "ctrl-c", "ctrl-c-twice")
ROLLBACK_STEPS = ("fetch", "purge", "restore", "restore-snapshot")
ROLLBACK_MATCH = {
    "fetch": r"read -r link",
    "purge": r"-- .*-purge",
    "restore": r"want=",
    "restore-snapshot": r"^POST /_snapshot/[^/]+/[^/]+/_restore$",  # a request line at the cluster
}
ROLLBACK_EXPECTED = {"fail": 6, "drop": 0, "ctrl-c": 130, "ctrl-c-twice": 130}
ROLLBACK_SLICE = {  # as SLICE: the rollback's own steps, a failure and a dropped connection
    ("drop", "fetch", "dr"),
    ("fail", "restore-snapshot", "ha"),
}


def rollback_cases() -> list[Any]:
    found = []
    for fault in ROLLBACK_FAULTS:
        for step in ROLLBACK_STEPS:
            for shape in SHAPES:
                if shape != "single" and (fault, step, shape) not in ROLLBACK_SLICE and step == "fetch":
                    continue  # the fetch is one prepare step whatever the shape: the single host covers it
                if step == "restore-snapshot" and SHAPE[shape].deployment != "hahosts":
                    continue  # no Elasticsearch, no snapshot to restore (see above)
                marks = [] if (fault, step, shape) in ROLLBACK_SLICE else [pytest.mark.matrix_only]
                found.append(
                    pytest.param(fault, step, shape, marks=marks, id=f"rollback-{fault}-{step}-{shape}")
                )
    return found


def rollback_target(shape: Shape) -> str:
    """The server a rollback acts on first: a DR pair's secondary goes back first."""
    return shape.servers[-1] if shape.deployment == "drhosts" else shape.servers[0]


def rollback_cmd(inv: Path, *args: str) -> list[str]:
    return ["rollback", "run", "-i", str(inv), "--yes", "--state-dir", str(inv.parent / "state"), *args]


WRITTEN = Path("var") / "lib" / "demisto" / "written-after-the-upgrade"


def upgraded_with_data(fleet: Fleet, shape: Shape, tmp_path: Path) -> tuple[Path, str | None]:
    """The deployment upgraded to 6.12 (a snapshot repository named when it runs Elasticsearch), then data
    written after the upgrade on every server and, with Elasticsearch, into an index that held one
    document before it. The inventory, and the index (None without Elasticsearch)."""
    import yaml

    inv = fleet.inventory(shape.deployment, tmp_path / "inventory.yaml",
                          health={"timeout": 10, "interval": 0.2, "max_interval": 0.5})  # fmt: skip
    index = None
    if fleet.spec.deployment(shape.deployment).database == "elasticsearch":
        data = yaml.safe_load(inv.read_text())
        data["deployment"]["elasticsearch_snapshot_repository"] = "backups"
        inv.write_text(yaml.safe_dump(data, sort_keys=False))
        index = f"matrix-{tmp_path.name.lower().replace('_', '-')}"[:100]
        es_request(fleet, "PUT", f"/{index}/_doc/before", {"written": "before the upgrade"})
    upgraded = run(inv, "--to", "6.12")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    for server in fleet.servers(shape.deployment):
        (server.home / WRITTEN).write_text("lost\n")
    if index is not None:
        es_request(fleet, "PUT", f"/{index}/_doc/after", {"written": "after the upgrade"})
    return inv, index


def es_request(fleet: Fleet, method: str, path: str, body: Any = None) -> Any:
    from xsoar_mt.snapshots import request

    return request(fleet.elasticsearch_url, method, path, None, body)


def arm_rollback_fault(fleet: Fleet, shape: Shape, fault: str, step: str) -> tuple[str, Any]:
    """Arm `fault` at the first `step` of the rollback; the name of who sees it (a server, or the cluster)
    and a check that it was hit."""
    match = ROLLBACK_MATCH[step]
    if fault == "fail":
        rule = {"match": match, "action": "fail", "times": 1000}
    elif fault == "drop":
        rule = {"match": match, "action": "drop", "seconds": 2, "times": 1}
    else:
        rule = {"match": match, "action": "slow", "seconds": 4, "times": 1}
    if step == "restore-snapshot":
        fleet.set_elasticsearch_faults([rule])
        return "elasticsearch", lambda: fault_seen(fleet, "elasticsearch")
    target = fleet.server(rollback_target(shape))
    target.set_fault(commands=[rule])
    return target.name, lambda: fault_seen(fleet, target.name)


def settle_elasticsearch(fleet: Fleet, timeout: float = 60) -> None:
    """Wait until every request the cluster was told to answer late has been answered."""
    deadline = time.monotonic() + timeout
    while True:
        events = [e for e in fleet.events() if e["server"] == "elasticsearch"]
        slowed = sum(1 for e in events if e["event"] == "fault" and e["detail"].startswith("slow "))
        if sum(1 for e in events if e["event"] == "fault_over") >= slowed:
            return
        assert time.monotonic() < deadline, "a request to Elasticsearch is still being answered"
        time.sleep(0.1)


def restores_unanswered(fleet: Fleet, state_dir: Path) -> list[str]:
    """Each restore-snapshot step the journal (the first run and its resumes) says finished ok while the
    cluster restored no snapshot between the step's start and that finish (a restore called done that
    did not happen), and each one begun that never finished ok (a restore the resume left out).
    Ordering only: journal and cluster stamp with this machine's clock."""
    import json

    from tests.recap_check import latest_run_dir

    run_dir = latest_run_dir(state_dir)
    assert run_dir is not None
    records = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    restored = [e["ts"] for e in fleet.events() if e["event"] == "snapshot_restored"]
    started: dict[str, float] = {}
    finished: set[str] = set()
    wrong = []
    for record in records:
        step = str(record.get("step") or "")
        if "/restore-snapshot/" not in step:
            continue
        if record["kind"] == "step-started":
            started[step] = record["ts"]
            continue
        done = record["kind"] == "step-finished" and record["data"]["outcome"] == "ok"
        if done and not any(started[step] - 0.001 <= at <= record["ts"] + 0.001 for at in restored):
            wrong.append(f"{step}: done at {record['ts']}, but the cluster restored nothing while it ran")
        if done:
            finished.add(step)
    return wrong + [f"{step}: begun, never done" for step in started if step not in finished]


@pytest.mark.parametrize(("fault", "step", "shape_name"), rollback_cases())
def test_a_fault_in_a_rollback_step_halts_it_and_resume_finishes_the_rollback(
    fleet: Fleet, tmp_path: Path, fault: str, step: str, shape_name: str
) -> None:
    import subprocess
    import sys

    from tests.fleet.runs import REPO, xsoar_mt

    shape = SHAPE[shape_name]
    inv, index = upgraded_with_data(fleet, shape, tmp_path)
    at, hit = arm_rollback_fault(fleet, shape, fault, step)
    if fault in ("fail", "drop"):
        first = xsoar_mt(*rollback_cmd(inv, "-o", "json"), cwd=tmp_path)
        code, events = first.returncode, events_of(first.stdout)
    else:
        process = subprocess.Popen([sys.executable, "-m", "xsoar_mt", *rollback_cmd(inv, "-o", "json")],
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**__import__("os").environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        out, _ = interrupt_when(process, hit, 2 if fault == "ctrl-c-twice" else 1)
        code, events = process.returncode, events_of(out)
    assert code == ROLLBACK_EXPECTED[fault], f"exit {code}\n" + "\n".join(
        e["message"] for e in events if e["kind"] in ("step-finished", "warning", "run-finished")
    )
    assert hit(), f"the fault at {step} was never hit"
    assert_recap_agrees_with_journal(tmp_path / "state")
    if fault == "ctrl-c-twice" and at == "elasticsearch":
        settle_elasticsearch(fleet)
    elif fault == "ctrl-c-twice":
        settle(fleet, at)
    fleet.clear_elasticsearch_faults()
    for server in fleet.servers(shape.deployment):
        server.clear_faults()
    resumed = xsoar_mt(*rollback_cmd(inv, "--resume", "latest"), cwd=tmp_path)
    # a resume always gates and validates, also when the first run had finished (a dropped connection)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr
    assert_recap_agrees_with_journal(tmp_path / "state", resumed.stdout)
    for server in fleet.servers(shape.deployment):
        assert (server.version, server.running) == ("6.11.0", True), server.name
        assert not (server.home / WRITTEN).exists(), server.name
    if index is not None:  # the document written after the upgrade is gone, the one before is back
        assert restores_unanswered(fleet, tmp_path / "state") == []
        assert es_request(fleet, "GET", f"/{index}/_count")["count"] == 1
    assert order_violations(fleet) == []
