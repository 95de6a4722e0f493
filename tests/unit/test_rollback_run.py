"""The pure parts of `rollback run` and its step kinds: which servers a resumed rollback takes back again,
the backup record read back from a server, the purge's installer job, and the snapshot API client (against
the Elasticsearch stand-in on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest

from tests.elasticsearch_stub import ClusterState, elasticsearch_stub
from xsoar_mt.engine.installer_job import InstallFiles
from xsoar_mt.errors import UsageError
from xsoar_mt.inventory import parse_inventory
from xsoar_mt.plan import Action, Basis, Phase, Plan, Scope, Step
from xsoar_mt.remote import CommandKind
from xsoar_mt.rollback.backups import BackupRecord, NoBackup
from xsoar_mt.rollback.records import read_server_record, record_command, unfinished_servers
from xsoar_mt.skew import SkewVerdict
from xsoar_mt.snapshots import SnapshotError, request, restore, take
from xsoar_mt.usecases.saved_plan import refuse_rollback_plan

INVENTORY = """
inventory_version: 1
deployment: {name: t}
installer: {link: {env: XSOAR_TEST_LINK}}
main:
  server: {name: m1, address: 127.0.0.1}
hosts:
  - name: g1
    server: {name: h1, address: 127.0.1.1}
"""

RECORD = {"release": "6.11", "build": "1234", "path": "/var/tmp/xsoar-mt/backup/a.tar.gz", "size": 10,
          "sha256": "a" * 64, "run_id": "20261206-230000-ab12", "taken_at": 1796590800.0}  # fmt: skip


def step(phase: str, action: Action, server: str) -> Step:
    return Step(
        f"{phase}/{action.value}/{server}", phase, action, (server,), "true", "why", "6.11", SkewVerdict.OK
    )


def plan(target: str = "rollback") -> Plan:
    phases = (
        Phase("g1@6.11", "g1", (step("g1@6.11", Action.STOP, "h1"), step("g1@6.11", Action.HEALTHY, "h1")),
              "g1", "6.11"),
        Phase("main@6.11", "main", (step("main@6.11", Action.STOP, "m1"), step("main@6.11", Action.HEALTHY, "m1")),
              "main", "6.11"),
    )  # fmt: skip
    return Plan("t", target, Scope(), (), phases, Basis("x", {}, target, Scope()))


def started(step_id: str, server: str) -> dict[str, Any]:
    return {"kind": "step-started", "step": step_id, "servers": [server]}


def finished(step_id: str) -> dict[str, Any]:
    return {"kind": "step-finished", "step": step_id, "data": {"outcome": "ok"}}


def test_a_resumed_rollback_takes_again_the_servers_of_a_group_whose_way_back_began_and_did_not_finish() -> (
    None
):
    records = [started("g1@6.11/stop/h1", "h1"), finished("g1@6.11/stop/h1")]
    assert unfinished_servers(records, [plan()]) == {"h1"}


def test_a_group_whose_way_back_finished_or_never_began_is_not_taken_again() -> None:
    records = [started("g1@6.11/stop/h1", "h1"), finished("g1@6.11/stop/h1"),
               started("g1@6.11/wait-healthy/h1", "h1"), finished("g1@6.11/wait-healthy/h1")]  # fmt: skip
    assert unfinished_servers(records, [plan()]) == frozenset()


def test_a_backup_record_read_back_from_a_server_is_framed_and_read_strictly() -> None:
    inv = parse_inventory(INVENTORY)

    def framed(text: str) -> str:
        return f"xsoar-mt-backup-record: {base64.b64encode(text.encode()).decode()}\n"

    good = read_server_record("h1", framed(json.dumps(RECORD) + "\n"), inv)
    assert isinstance(good, BackupRecord) and good.sha256 == "a" * 64
    assert read_server_record("h1", "xsoar-mt-backup-record: -\n", inv) is None  # none on the server
    forged = {**RECORD, "restore_as": "root"}
    for answer in (
        framed("{not json"),
        framed(json.dumps(forged)),
        framed(json.dumps({**RECORD, "size": -1})),
        framed("{}") + framed(json.dumps(RECORD)),  # a second line
        # a file that holds a line of the answer itself: read as the one JSON text it is, and refused
        framed("{}\nxsoar-mt-backup-record: " + json.dumps(RECORD)),
        f"xsoar-mt-backup-record: {json.dumps(RECORD)}\n",  # not framed
        "",
    ):
        assert isinstance(read_server_record("h1", answer, inv), NoBackup), answer


def test_the_backup_record_is_read_framed_from_the_path_it_is_given() -> None:
    command = record_command("/var/lib/xsoar mt/backup-record.json")
    assert "xm_encf '/var/lib/xsoar mt/backup-record.json'" in command


def test_upgrade_run_refuses_a_saved_rollback_plan_naming_it(tmp_path: Any) -> None:
    with pytest.raises(UsageError, match="this is a rollback plan"):
        refuse_rollback_plan(plan("rollback"), tmp_path / "rollback.json")
    refuse_rollback_plan(plan("6.12"), tmp_path / "upgrade.json")  # an upgrade plan passes


def test_the_purge_runs_as_an_installer_job_of_its_own_and_leaves_the_marker_alone() -> None:
    files = InstallFiles("/opt/xsoar-mt", "6.11", job="purge")
    launch = files.launch("sudo /opt/xsoar-mt/demisto-6.11.sh -- -purge", None)
    assert launch.kind is CommandKind.PURGE_LAUNCH and files.poll(0).kind is CommandKind.PURGE_POLL
    assert "/opt/xsoar-mt/purge-6.11.rc" in launch and "install-6.11" not in launch
    assert "state.json" not in launch  # a purge installs nothing: no marker is written
    install = InstallFiles("/opt/xsoar-mt", "6.11").launch("sudo x -- -multi-tenant", '{"v": 1, "at": ')
    assert "state.json" in install and install.kind is CommandKind.INSTALL_LAUNCH


def test_the_run_restores_the_snapshot_of_the_steps_group_as_given_not_one_its_command_text_names() -> None:
    from xsoar_mt.engine.steps.restore_snapshot import RestoreSnapshot

    with elasticsearch_stub() as es:
        take(es.url, "backups", "before", None)
        take(es.url, "backups", "named-in-the-text", None)
        run = snapshot_run(es.url)
        RestoreSnapshot().run(run, snapshot_step(es.url, named="named-in-the-text"))
        assert es.state.requests.count("POST /_snapshot/backups/before/_restore") == 1
        assert not [r for r in es.state.requests if "named-in-the-text/_restore" in r]


def test_a_snapshot_restored_brings_back_the_indices_as_they_were_and_closes_them_first() -> None:
    with elasticsearch_stub(ClusterState(credentials="elastic:pw")) as es:
        request(es.url, "PUT", "/incidents/_doc/1", "elastic:pw", {"a": 1})
        take(es.url, "backups", "before", "elastic:pw")
        request(es.url, "PUT", "/incidents/_doc/2", "elastic:pw", {"a": 2})
        assert restore(es.url, "backups", "before", "elastic:pw") == 1
        assert request(es.url, "GET", "/incidents/_count", "elastic:pw")["count"] == 1
        assert "POST /incidents/_close" in es.state.requests
        assert es.state.requests.index("POST /incidents/_close") < es.state.requests.index(
            "POST /_snapshot/backups/before/_restore"
        )
        assert restore(es.url, "backups", "before", "elastic:pw") == 1  # again: harmless


def test_a_snapshot_into_a_repository_the_cluster_does_not_have_fails_naming_it() -> None:
    with elasticsearch_stub() as es, pytest.raises(SnapshotError, match="answered HTTP 404"):
        take(es.url, "nowhere", "before", None)


def test_a_redirect_to_another_origin_is_refused_and_the_credentials_stay() -> None:
    with elasticsearch_stub() as other, elasticsearch_stub(ClusterState(redirect_to=other.url)) as es:
        with pytest.raises(SnapshotError, match="redirected to another address"):
            take(es.url, "backups", "before", "elastic:pw")
        assert other.state.seen_authorization == []


def test_a_snapshot_name_elasticsearch_would_refuse_is_refused_before_any_request() -> None:
    with elasticsearch_stub() as es:
        with pytest.raises(SnapshotError, match="not a name"):
            take(es.url, "backups", "../_all", None)
        assert es.state.requests == []


def snapshot_step(url: str, named: str = "before") -> Step:
    return Step("g1@6.11/restore-snapshot/h1", "g1@6.11", Action.RESTORE_SNAPSHOT, ("h1",),
                f"POST {url}/_snapshot/backups/{named}/_restore?wait_for_completion=true", "why", "6.11",
                SkewVerdict.OK)  # fmt: skip


def snapshot_run(url: str, *, abandon: bool = False) -> Any:
    """As much of a RunContext as the restore-snapshot handler reads: group g1 goes back to `before`."""
    from types import SimpleNamespace

    from xsoar_mt.engine.waiter import Waiter

    emitted: list[tuple[str, str]] = []
    return SimpleNamespace(
        inv=SimpleNamespace(elasticsearch_url=url, elasticsearch_snapshot_repository="backups"),
        secrets=SimpleNamespace(elasticsearch=None),
        waiter=Waiter(sleep=lambda s: None),
        options=SimpleNamespace(reconnect_timeout=30.0),
        abandon=abandon,
        clock=lambda: 0.0,
        emitted=emitted,
        emit=lambda kind, message, *a, **k: emitted.append((kind, message)),
        phase_of=lambda step: SimpleNamespace(group="g1"),
        snapshots={"g1": "before"},
    )


def test_a_restore_whose_connection_closes_before_the_answer_is_made_again_and_succeeds() -> None:
    from xsoar_mt.engine.steps.restore_snapshot import RestoreSnapshot

    with elasticsearch_stub() as es:
        request(es.url, "PUT", "/incidents/_doc/1", None, {"a": 1})
        take(es.url, "backups", "before", None)
        request(es.url, "PUT", "/incidents/_doc/2", None, {"a": 2})
        es.state.faults.append({"match": "_restore", "action": "drop", "left": 1, "seconds": 0})
        run = snapshot_run(es.url)
        RestoreSnapshot().run(run, snapshot_step(es.url))
        assert es.state.requests.count("POST /_snapshot/backups/before/_restore") == 2  # dropped, then again
        assert request(es.url, "GET", "/incidents/_count", None)["count"] == 1
        kinds = [k for k, _ in run.emitted]
        assert kinds == ["warning", "snapshot-restored"], run.emitted
        assert "the connection closed before an answer" in run.emitted[0][1]


def test_a_restore_the_cluster_answers_with_an_error_fails_the_step_without_trying_again() -> None:
    from xsoar_mt.engine.model import StepFailed
    from xsoar_mt.engine.steps.restore_snapshot import RestoreSnapshot

    with elasticsearch_stub() as es:
        take(es.url, "backups", "before", None)
        es.state.faults.append({"match": "_restore", "action": "fail", "left": 1000})
        with pytest.raises(StepFailed, match="answered HTTP 500") as failed:
            RestoreSnapshot().run(snapshot_run(es.url), snapshot_step(es.url))
        assert not failed.value.interrupted and failed.value.servers == ("h1",)
        assert es.state.requests.count("POST /_snapshot/backups/before/_restore") == 1


def test_a_second_interrupt_stops_waiting_for_a_restore_the_cluster_is_still_doing() -> None:
    from xsoar_mt.engine.model import StepFailed
    from xsoar_mt.engine.steps.restore_snapshot import RestoreSnapshot

    with elasticsearch_stub() as es:
        request(es.url, "PUT", "/incidents/_doc/1", None, {"a": 1})
        take(es.url, "backups", "before", None)
        es.state.faults.append({"match": "_restore", "action": "slow", "left": 1, "seconds": 3})
        run = snapshot_run(es.url)

        def interrupt_twice_once_the_restore_is_asked() -> None:
            while es.state.faults[0]["left"]:
                time.sleep(0.01)
            run.abandon = True

        threading.Thread(target=interrupt_twice_once_the_restore_is_asked, daemon=True).start()
        with pytest.raises(StepFailed, match="second interrupt") as failed:
            RestoreSnapshot().run(run, snapshot_step(es.url))
        assert failed.value.interrupted
        assert "incidents" in es.state.closed  # the cluster had not finished restoring when the step gave up


def test_a_dropped_snapshot_request_is_unreachable_and_an_error_answer_is_not() -> None:
    from xsoar_mt.snapshots import SnapshotUnreachable

    with elasticsearch_stub() as es:
        es.state.faults.append({"match": "_snapshot", "action": "drop", "left": 1, "seconds": 0})
        with pytest.raises(SnapshotUnreachable, match="closed before an answer"):
            take(es.url, "backups", "before", None)
        es.state.faults[:] = [{"match": "_snapshot", "action": "fail", "left": 1}]
        with pytest.raises(SnapshotError, match="answered HTTP 500") as answered:
            take(es.url, "backups", "before", None)
        assert not isinstance(answered.value, SnapshotUnreachable)


def test_a_rollback_step_that_would_leave_a_host_ahead_of_main_is_refused_at_run_time() -> None:
    """The plan was made when the hosts were back on 6.11 already; the run sees h2 on 6.12 again. Taking main's
    first server back to 6.11 would leave h2 ahead of main: refused before that install, by rollback's rule."""
    from dataclasses import replace

    from tests.unit.engine_setup import FAST, LINK, Collected
    from tests.unit.engine_setup import INVENTORY as DR_INVENTORY
    from tests.unit.scripted_servers import ScriptedFleet
    from xsoar_mt.engine import Executor, RunSecrets, ServerState
    from xsoar_mt.observed import resolve
    from xsoar_mt.releases import Version
    from xsoar_mt.rollback.planner import RollbackFacts, plan_rollback

    inventory = parse_inventory(DR_INVENTORY, "inv.yaml")
    versions = {"m1": "6.12.0", "m2": "6.12.0", "h1": "6.11.0", "h2": "6.11.0"}
    records = {n: BackupRecord(n, "6.11", None, f"/b/{n}.tgz", 1, "a" * 64, "r1", 1.0) for n in versions}
    rollback = plan_rollback(inventory, {n: Version.parse(v) for n, v in versions.items()},
                             RollbackFacts(backups=records), Scope(main=True, groups=()))  # fmt: skip
    fleet = ScriptedFleet(versions)
    observed = resolve(inventory, {}, {})
    shells = {s.name: fleet.shell(s.name) for s in inventory.servers}
    executor = Executor(inventory, rollback.plan, shells.__getitem__, Collected(), observed, RunSecrets(link=LINK),
                        FAST, builds=rollback.builds)  # fmt: skip
    for name, version in versions.items():
        executor.state[name] = ServerState(replace(executor.state[name].view, version=Version.parse(version)))
    executor.state["h2"] = ServerState(replace(executor.state["h2"].view, version=Version.parse("6.12.0")))
    report = executor.execute()
    assert report.outcome == "failed"
    assert "/install/m2" in report.failures[0] and "ahead" in report.failures[0]
    launched = [c for _, c, _ in fleet.calls if "nohup setsid" in c]
    assert launched and all("-purge" in c for c in launched)  # m2 was purged; nothing was installed


class SnapshotRun:
    """What the backup step's snapshot reads of the run: the inventory, the run id, secrets, events."""

    def __init__(self, url: str, repository: str) -> None:
        from dataclasses import replace as copy

        from xsoar_mt.secrets import RunSecrets

        base = parse_inventory(INVENTORY)
        self.inv = copy(base, database="elasticsearch", elasticsearch_url=url,
                        elasticsearch_snapshot_repository=repository)  # fmt: skip
        self.run_id = "20261207-001500-ab12"
        self.write_markers = True
        self.secrets = RunSecrets()
        self.events: list[str] = []

    def emit(self, kind: str, message: str, *args: Any, **data: Any) -> None:
        self.events.append(kind)


def test_the_upgrades_first_backup_takes_one_elasticsearch_snapshot_for_the_run_named_after_it() -> None:
    from xsoar_mt.engine.steps.backup import Backup

    backup = Backup()
    with elasticsearch_stub() as es:
        run = SnapshotRun(es.url, "backups")
        for server in ("m1", "h1"):
            backup._snapshot(run, step("prepare", Action.BACKUP, server), server)  # type: ignore[arg-type]
        assert list(es.state.snapshots) == ["backups/xsoar-mt-20261207-001500-ab12"]
    assert backup.snapshot == "xsoar-mt-20261207-001500-ab12" and run.events == ["snapshot-taken"]


def test_a_snapshot_that_cannot_be_taken_fails_the_backup_step_before_anything_is_stopped() -> None:
    from xsoar_mt.engine.model import StepFailed
    from xsoar_mt.engine.steps.backup import Backup

    with elasticsearch_stub() as es:
        run = SnapshotRun(es.url, "not-registered")
        with pytest.raises(StepFailed, match="Elasticsearch snapshot before the upgrade") as failed:
            Backup()._snapshot(run, step("prepare", Action.BACKUP, "m1"), "m1")  # type: ignore[arg-type]
    assert failed.value.hint is not None and "nothing was stopped" in failed.value.hint


def test_a_resumed_rollback_keeps_its_waves_and_refuses_other_waves(tmp_path: Any) -> None:
    from xsoar_mt.journal import RunDir
    from xsoar_mt.plan import Waves
    from xsoar_mt.usecases.rollback_run import RollbackRunRequest, _intent
    from xsoar_mt.waves import WaveSpec

    run = tmp_path / "20261207T010000Z-ab12"
    run.mkdir()
    started = {"spec": "1,100%", "groups": {"g1": 1, "g2": 2}}
    intent = {"kind": "run-intent", "target": "rollback", "scope": Scope().to_dict(), "waves": started}
    (run / "journal.jsonl").write_text(json.dumps(intent) + "\n")
    kept = _intent(RollbackRunRequest(resume="latest"), RunDir(run), None)
    assert kept.waves == Waves.from_dict(started)
    same = _intent(RollbackRunRequest(resume="latest", waves=WaveSpec.parse("1,100%")), RunDir(run), None)
    assert same.waves == Waves.from_dict(started)
    with pytest.raises(UsageError, match="started in waves 1,100%, and a resume keeps them"):
        _intent(RollbackRunRequest(resume="latest", waves=WaveSpec.parse("2")), RunDir(run), None)


def test_a_rollback_whose_working_directory_check_refuses_leaves_no_run_lock_on_this_machine(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from xsoar_mt.errors import PreflightFailed
    from xsoar_mt.state_dir import StateDir
    from xsoar_mt.usecases import run_locks
    from xsoar_mt.usecases.rollback_run import _Locks

    def refused(*args: Any) -> None:
        raise PreflightFailed("h1: the working directory is not private: nothing is written there")

    monkeypatch.setattr(run_locks, "prepare_all", refused)
    state = StateDir(tmp_path / "state")
    session = SimpleNamespace(
        state=state, known=SimpleNamespace(key="t"), inventory=parse_inventory(INVENTORY), shells=None
    )
    with pytest.raises(PreflightFailed), _Locks(session, "20261207-050000-ab12", real=True):  # type: ignore[arg-type]
        raise AssertionError("the run went on after the refusal")
    assert not state.lock("t").exists()  # the next run is not told to break a lock nobody holds
