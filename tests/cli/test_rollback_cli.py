"""`rollback plan`: the text an operator reads, the saved plan, and each refusal with its exit code.

The deployment is the example inventory after an upgrade to 6.12: the local record under --state-dir says
every server runs 6.12.0 and holds the backup xsoar-mt took of each before the upgrade (on 6.10).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from xsoar_mt.cli import app
from xsoar_mt.inventory import load_inventory
from xsoar_mt.known import KnownState
from xsoar_mt.plan import Plan, Scope
from xsoar_mt.usecases.rollback_plan import RollbackRequest, make_rollback_plan
from xsoar_mt.usecases.saved_plan import check_saved_plan, read_plan
from xsoar_mt.usecases.session import Session

runner = CliRunner()
TAKEN = 1796590800.0  # 2026-12-06 21:00:00Z


def record(release: str = "6.10", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "release": release,
        "build": "187344",
        "path": "/var/tmp/xsoar-mt/backup/demisto-before-6.11-20261206T210000Z-ab12.tar.gz",
        "size": 3 * 1024**3,
        "sha256": "5f" * 32,
        "run_id": "20261206T205500Z-ab12",
        "taken_at": TAKEN,
    }
    data.update(changes)
    return data


def upgraded(
    inventory: Path,
    state: Path,
    *,
    versions: dict[str, str] | None = None,
    records: dict[str, Any] | None = None,
) -> None:
    """The local record as an upgrade to 6.12 leaves it: every server seen on 6.12.0, each one's backup."""
    inv = load_inventory(inventory)
    known = KnownState(state, inv)
    servers = {
        s.name: {
            "version": (versions or {}).get(s.name, "6.12.0"),
            "source": "api",
            "at": TAKEN + 7200,
            "service": "running",
        }
        for s in inv.servers
    }
    backups = {s.name: [record()] for s in inv.servers} if records is None else records
    known.path.parent.mkdir(parents=True, exist_ok=True)
    known.path.write_text(json.dumps({"servers": servers, "backup_records": backups}))


def rollback(inventory: Path, state: Path, *args: str) -> Any:
    return runner.invoke(app, ["rollback", "plan", "-i", str(inventory), "--state-dir", str(state), *args])


def test_the_plan_says_per_group_what_comes_back_and_what_is_lost(inventory: Path, tmp_path: Path) -> None:
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Rollback plan for acme-mssp: 4 server groups go back, host groups before main"
    assert (
        "  host group emea (DR pair): 6.12 -> 6.10 (build 187344); backup taken 2026-12-06 21:00:00Z, "
        "6.0 GiB (2 servers)" in lines
    )
    assert "      lost: everything written on its servers after 2026-12-06 21:00:00Z" in lines
    assert "  6.10: downloadName 6_10_187344, each server downloads it" in lines
    groups = [ln.split(":")[0].strip() for ln in lines if ln.startswith("  ") and "->" in ln]
    assert groups == [
        "host group emea (DR pair)",
        "host group us-east (DR pair)",
        "host group apac (single)",
        "main (DR pair)",
    ]


def test_upload_delivery_from_a_link_names_the_old_release_and_build_downloaded_here_and_sent(
    inventory: Path, tmp_path: Path
) -> None:
    inventory.write_text(inventory.read_text().replace("delivery: server-download", "delivery: upload"))
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path)
    assert result.exit_code == 0, result.output
    assert (
        "  6.10: upload of demisto-6_10_187344.sh (downloaded once on this machine from the link) over SFTP "
        "unless the server holds it already, then the sha256 check on each server"
    ) in result.output.splitlines()


def test_upload_delivery_of_the_operators_files_names_the_old_releases_own_file(
    inventory: Path, tmp_path: Path
) -> None:
    text = inventory.read_text().replace("delivery: server-download", "delivery: upload")
    text = text.replace("  link:\n    env: XSOAR_DOWNLOAD_LINK", "  file: installers/demisto-{release}.sh")
    inventory.write_text(text)
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path)
    assert result.exit_code == 0, result.output
    old = inventory.resolve().parent / "installers" / "demisto-6.10.sh"
    assert f"  6.10: upload of {old} over SFTP unless the server holds it already" in result.output


def test_detail_shows_the_purge_and_each_servers_own_restore(inventory: Path, tmp_path: Path) -> None:
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path, "--detail")
    assert (
        "$ sudo /var/lib/xsoar-mt/demisto-6.10.sh -- -multi-tenant -do-not-start-server -purge"
        in result.output
    )
    assert (
        "tar -xzf /var/tmp/xsoar-mt/backup/demisto-before-6.11-20261206T210000Z-ab12.tar.gz -C /"
        in result.output
    )


def test_a_saved_rollback_plan_reads_back_and_passes_the_saved_plan_checks(
    inventory: Path, tmp_path: Path
) -> None:
    upgraded(inventory, tmp_path)
    saved = tmp_path / "rollback.json"
    assert rollback(inventory, tmp_path, "--out", str(saved)).exit_code == 0
    plan = read_plan(saved, load_inventory(inventory))
    assert plan.target == "rollback"
    rebuilt = _rebuilt(inventory, tmp_path)
    check_saved_plan(plan, rebuilt, Scope())


def test_a_saved_rollback_plan_is_stale_once_a_servers_version_changes(
    inventory: Path, tmp_path: Path
) -> None:
    from xsoar_mt.errors import StalePlan

    upgraded(inventory, tmp_path)
    saved = tmp_path / "rollback.json"
    assert rollback(inventory, tmp_path, "--out", str(saved)).exit_code == 0
    upgraded(inventory, tmp_path, versions={"apac-1": "6.11.0"})
    rebuilt = _rebuilt(inventory, tmp_path)
    with pytest.raises(StalePlan, match=re.escape("apac-1: planned from 6.12.0, now 6.11.0")):
        check_saved_plan(read_plan(saved), rebuilt, Scope())


def test_json_output_is_the_saved_plan_with_what_comes_back(inventory: Path, tmp_path: Path) -> None:
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path, "-o", "json")
    data = json.loads(result.output)
    assert data["target"] == "rollback" and data["format_version"] == 1
    assert [r["group"] for r in data["rollback"]] == ["emea", "us-east", "apac", "main"]
    assert data["rollback"][0]["held_until_main_is_back"] is True


def test_no_recorded_backup_is_refused_with_exit_7_naming_each_server(
    inventory: Path, tmp_path: Path
) -> None:
    upgraded(inventory, tmp_path, records={})
    result = rollback(inventory, tmp_path)
    assert result.exit_code == 7, result.output
    assert "error: main-a: no backup recorded" in result.output
    assert "hint: nothing was changed" in result.output


def test_a_record_that_is_not_what_xsoar_mt_writes_is_refused_with_exit_7(
    inventory: Path, tmp_path: Path
) -> None:
    inv = load_inventory(inventory)
    records: dict[str, Any] = {s.name: [record()] for s in inv.servers}
    records["use-b"] = [record(sha256="not-a-checksum")]
    upgraded(inventory, tmp_path, records=records)
    result = rollback(inventory, tmp_path)
    assert result.exit_code == 7, result.output
    assert (
        "error: use-b: the backup record's sha256 'not-a-checksum' is not 64 lowercase hex digits"
        in result.output
    )
    assert "Traceback" not in result.output


def test_main_alone_while_hosts_run_the_newer_release_is_refused_with_exit_4(
    inventory: Path, tmp_path: Path
) -> None:
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path, "--only", "main")
    assert result.exit_code == 4, result.output
    assert "ahead of main" in result.output
    assert "hint: roll the host groups of" in result.output


def test_one_group_two_releases_behind_main_is_refused_with_exit_4(inventory: Path, tmp_path: Path) -> None:
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path, "--group", "apac")
    assert result.exit_code == 4, result.output
    assert "host group apac (single) would go back to 6.10, 2 releases behind main (6.12)" in result.output


def test_one_group_whose_upgrade_failed_goes_back_alone(inventory: Path, tmp_path: Path) -> None:
    inv = load_inventory(inventory)
    records = {s.name: [record("6.11")] for s in inv.servers}
    upgraded(inventory, tmp_path, records=records)
    result = rollback(inventory, tmp_path, "--group", "apac")
    assert result.exit_code == 0, result.output
    assert "  host group apac (single): 6.12 -> 6.11 (build 187344)" in result.output
    assert "lag main by one release (apac-1)" in result.output


def test_nothing_newer_than_the_backups_exits_5(inventory: Path, tmp_path: Path) -> None:
    inv = load_inventory(inventory)
    upgraded(inventory, tmp_path, versions={s.name: "6.10.0" for s in inv.servers})
    result = rollback(inventory, tmp_path)
    assert result.exit_code == 5, result.output
    assert "Nothing to roll back in acme-mssp" in result.output


def es_inventory(tmp_path: Path) -> Path:
    source = (Path(__file__).resolve().parents[2] / "examples" / "ha-elasticsearch.yaml").read_text()
    path = tmp_path / "es.yaml"
    path.write_text(source)
    return path


def test_elasticsearch_without_a_snapshot_repository_is_refused_with_exit_4(tmp_path: Path) -> None:
    inventory = es_inventory(tmp_path)
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path)
    assert result.exit_code == 4, result.output
    assert "names no snapshot repository" in result.output and "cannot come back" in result.output
    assert "hint: give --release-only" in result.output


def test_release_only_is_stated_in_the_plans_first_line(tmp_path: Path) -> None:
    inventory = es_inventory(tmp_path)
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path, "--release-only")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("RELEASE ONLY: the releases go back, the data does NOT")


def test_rollback_plan_never_loads_the_ssh_library(inventory: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    upgraded(inventory, tmp_path)
    code = (
        "import sys; from xsoar_mt.cli import main; sys.argv=['xsoar-mt','rollback','plan','-i',sys.argv[1],"
        "'--state-dir',sys.argv[2]]\ntry: main()\nexcept SystemExit: pass\n"
        "print('LOADED' if 'paramiko' in sys.modules or 'fabric' in sys.modules else 'CLEAN')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(inventory), str(tmp_path)], capture_output=True, text=True
    )
    assert done.stdout.strip().splitlines()[-1] == "CLEAN"


def test_upgrade_run_refuses_a_saved_rollback_plan_before_anything_runs(
    inventory: Path, tmp_path: Path
) -> None:
    upgraded(inventory, tmp_path)
    saved = tmp_path / "rollback.json"
    assert rollback(inventory, tmp_path, "--out", str(saved)).exit_code == 0
    result = runner.invoke(
        app,
        [
            "upgrade",
            "run",
            "-i",
            str(inventory),
            "--plan",
            str(saved),
            "--dry-run",
            "--state-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2, result.output  # the wrong command for this plan: a usage error
    assert "this is a rollback plan" in result.output and "rollback run --plan" in result.output
    assert "sudo" not in result.output


def test_waves_put_the_host_groups_going_back_in_waves(inventory: Path, tmp_path: Path) -> None:
    upgraded(inventory, tmp_path)
    result = rollback(inventory, tmp_path, "--waves", "1,100%", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["waves"] == {"spec": "1,100%", "groups": {"emea": 1, "us-east": 2, "apac": 2}}
    assert data["parallel"] is None  # each wave all at once, as upgrade's waves
    phases = [p["id"] for p in data["phases"]]
    assert phases.index("emea@6.10") < phases.index("validate:wave-1") < phases.index("us-east@6.10")
    assert phases.index("apac@6.10") < phases.index("main@6.10")  # every host group before main
    text = rollback(inventory, tmp_path, "--waves", "1,100%").output
    assert (
        "  host group emea (DR pair): back to 6.10 (started once main is back) [wave 1]" in text.splitlines()
    )
    assert "host groups in 2 waves of 1 and 2 (--waves 1,100%), each wave all at once, before main):" in text


def test_parallel_is_how_many_host_groups_go_back_at_once_in_the_plan_text_and_json(
    inventory: Path, tmp_path: Path
) -> None:
    upgraded(inventory, tmp_path)
    one = rollback(inventory, tmp_path)
    assert "host groups one at a time, before main):" in one.output
    two = rollback(inventory, tmp_path, "--parallel", "2")
    assert two.exit_code == 0, two.output
    assert "up to 2 host groups at once, before main):" in two.output
    data = json.loads(rollback(inventory, tmp_path, "--parallel", "2", "-o", "json").output)
    alone = json.loads(rollback(inventory, tmp_path, "-o", "json").output)
    assert data["parallel"] == 2 and alone["parallel"] is None
    assert data["expected_minutes"] < alone["expected_minutes"]  # two lanes: a shorter night
    assert data["phases"] == alone["phases"]  # the same steps in the same order: only the pace differs
    for flag in ("--parallel", "0"), ("--parallel", "65"), ("--waves", "nonsense"):
        refused = rollback(inventory, tmp_path, *flag)
        assert refused.exit_code == 2, (flag, refused.output)


def _rebuilt(inventory: Path, state_dir: Path) -> Plan:
    """The rollback plan made now from the local record, as `rollback run --plan` would compare it."""
    with Session(inventory, state_dir) as session:
        return make_rollback_plan(session, RollbackRequest(Scope())).rollback.plan


def test_rollback_run_refuses_an_upgrade_plan_and_a_resume_with_a_plan(
    inventory: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "upgrade.json"
    fresh = tmp_path / "fresh"  # no local record: the plan comes from the inventory's versions (6.10)
    made = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.11", "--out", str(plan),
                               "--state-dir", str(fresh)])  # fmt: skip
    assert made.exit_code == 0, made.output
    wrong = runner.invoke(app, ["rollback", "run", "-i", str(inventory), "--plan", str(plan), "--dry-run",
                                "--state-dir", str(fresh)])  # fmt: skip
    assert wrong.exit_code == 2 and "this is an upgrade plan" in wrong.output, wrong.output
    both = runner.invoke(app, ["rollback", "run", "-i", str(inventory), "--plan", str(plan), "--resume", "latest",
                               "--dry-run", "--state-dir", str(fresh)])  # fmt: skip
    assert both.exit_code == 2 and "do not go together" in both.output
    no_terminal = runner.invoke(app, ["rollback", "run", "-i", str(inventory), "--state-dir", str(fresh)])
    assert no_terminal.exit_code == 2 and "--yes" in no_terminal.output
