"""`upgrade plan` and `upgrade run` for the upgrade night: --waves, --window-end, --tenant-impact, -o csv."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.inventories import forty_groups_yaml
from xsoar_mt.cli import app
from xsoar_mt.inventory import load_inventory
from xsoar_mt.known import KnownState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"
TENANTS = ["globex", "initech", "umbrella", "tyrell", "wayne"]
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})


def plan(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def forty(tmp_path: Path) -> Path:
    path = tmp_path / "forty-groups.yaml"
    path.write_text(forty_groups_yaml())
    return path


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--waves", "0,50%"], "--waves 0,50%"),
        (["--waves", "1,x"], "--waves 1,x"),
        (["--window-end", "soon"], "--window-end soon"),
        (["--window-end", "2001-01-01T02:00"], "--window-end 2001-01-01T02:00"),
    ],
)
def test_a_bad_waves_or_window_value_is_one_error_line_naming_the_flag_exit_2(
    flags: list[str], named: str
) -> None:
    for command in (["upgrade", "plan", "--to", "6.12"], ["upgrade", "run", "--to", "6.12", "--dry-run"]):
        result = runner.invoke(app, [*command, "-i", str(EXAMPLE), *flags])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: {named}:")


def test_plan_json_and_yaml_give_one_tenant_impact_entry_per_tenant() -> None:
    code, out, _ = plan("-o", "json", "--waves", "1,100%")
    assert code == 0
    data = json.loads(out)
    assert [row["tenant"] for row in data["tenant_impact"]] == TENANTS
    assert data["waves"] == {"spec": "1,100%", "groups": {"emea": 1, "us-east": 2, "apac": 2}}
    umbrella = next(row for row in data["tenant_impact"] if row["tenant"] == "umbrella")
    assert umbrella["group"] == "us-east" and umbrella["wave"] == 2 and umbrella["total_down_minutes"] > 0
    assert [(w["kind"], w["hop"]) for w in umbrella["windows"]] == [("degraded", "6.11"), ("down", "6.11"),
                                                                    ("degraded", "6.12"), ("down", "6.12")]  # fmt: skip
    code, out, _ = plan("-o", "yaml")
    assert code == 0 and "tenant_impact:" in out and "- tenant: wayne" in out


def test_csv_writes_one_row_per_window_two_outages_per_tenant_in_a_two_hop_plan() -> None:
    code, out, _ = plan("-o", "csv", "--waves", "1,100%")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["tenant", "group", "hop", "wave", "kind", "start", "end", "minutes"]
    downs = [r for r in rows if r["kind"] == "down"]
    assert [r["tenant"] for r in downs] == [t for t in TENANTS for _ in range(2)]  # 6.10 -> 6.11 -> 6.12
    for first, second in zip(downs[::2], downs[1::2], strict=True):
        assert (first["hop"], second["hop"]) == ("6.11", "6.12")
        assert float(first["end"]) <= float(second["start"])  # two outages, not one merged window
        for row in (first, second):
            assert float(row["end"]) - float(row["start"]) == float(row["minutes"]) > 0
    assert rows[0]["wave"] == "1"


def test_tenant_impact_prints_a_table_with_every_tenant() -> None:
    code, out, _ = plan("--tenant-impact")
    assert code == 0
    assert out.startswith("Tenant impact for acme-mssp to 6.12: 5 tenants")
    for tenant in TENANTS:
        assert f"\n{tenant} " in out


def test_the_plan_summary_names_the_waves_and_where_the_window_closes(forty: Path) -> None:
    result = runner.invoke(
        app,
        ["upgrade", "plan", "-i", str(forty), "--to", "6.11", "--waves", "1,25%,100%", "--window-end", "+3h"],
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "host groups in 3 waves of 1, 10 and 29 (--waves 1,25%,100%), each wave all at once" in out
    assert "by the estimate the run stops before" in out
    assert "-- the window closes here:" in out
    for title in ("Wave 1 of 3 to 6.11: 1 host group", "Wave 2 of 3 to 6.11: 10 host groups, all at once"):
        assert title in out
    assert out.count("Commands (each shown once") == 1


def test_a_window_long_enough_says_the_whole_run_fits(forty: Path) -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(forty), "--to", "6.11", "--waves", "1,25%,100%",
                                 "--window-end", "+24h"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "by the estimate the whole run fits" in result.stdout
    assert "-- the window closes here" not in result.stdout


def test_the_plan_says_when_it_uses_learned_durations(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    shutil.copy(EXAMPLE, inventory)
    state = tmp_path / "state"
    KnownState(state, load_inventory(inventory)).record_durations({"apac-1": {"install": 40.0}}, "r1")
    result = runner.invoke(
        app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.11", "--state-dir", str(state)]
    )
    assert result.exit_code == 0, result.output
    assert "learned durations: 1 server's own stop, install, start and wait-healthy minutes" in result.stdout
    apac = next(line for line in result.stdout.splitlines() if "apac (single)" in line)
    assert apac.endswith(" 51 min")  # down: stop 1 + install 40 (from the record) + start 5 + wait-healthy 5
    plain = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.11"])
    assert "learned durations" not in plain.stdout


def test_a_dry_run_stops_where_the_window_would_close_exit_11(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["upgrade", "run", "-i", str(EXAMPLE), "--to", "6.12", "--dry-run", "--waves", "1,100%", "--window-end",
         "+3h", "--state-dir", str(tmp_path / "state")],
    )  # fmt: skip
    assert result.exit_code == 11, result.output
    out = result.stdout
    assert "by the estimate the window closes before main@6.12" in out
    assert "window closed at a safe point" in out
    assert "left for the next window: 4 group upgrades: main@6.12" in out
    assert "main@6.12/install" not in out


def test_a_download_link_on_the_old_host_is_named_as_rewritten_in_the_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "XSOAR_DOWNLOAD_LINK", "https://download.demisto.works/download-params/?token=t0k3n&eula=accept"
    )
    code, out, _ = plan()
    assert code == 0
    assert "note: the download link's host download.demisto.works is rewritten to download.demisto.com" in out
    assert "t0k3n" not in out
    monkeypatch.setenv("XSOAR_DOWNLOAD_LINK", "https://download.demisto.com/download-params/?token=t0k3n")
    assert "rewritten" not in plan()[1]
