"""`inventory validate` and `upgrade plan` through Typer's CliRunner: output, formats and exit codes.

Golden output: `golden/plan-example-6.12.txt` is the text plan of inventory.example.yaml to 6.12, rendered
120 columns wide, and `golden/plan-example-6.12-detail.txt` the same with --detail. After an intended change
to the rendering, regenerate them with `make golden` (it sets XSOAR_MT_UPDATE_GOLDEN=1; no other value
rewrites the files) and review the diff before committing it. Under CI the variable is refused: CI
checks the files, it never rewrites them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.cli.piped import SSH_IMPORTS
from tests.golden import assert_matches, update_requested
from xsoar_mt.cli import app
from xsoar_mt.errors import ExitCode
from xsoar_mt.plan import PLAN_FORMAT_VERSION
from xsoar_mt.usecases.saved_plan import read_plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"
GOLDEN = Path(__file__).parent / "golden"
runner = CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})


def edited(inventory: Path, old: str, new: str) -> Path:
    text = inventory.read_text()
    assert old in text
    inventory.write_text(text.replace(old, new))
    return inventory


# -- inventory validate ----------------------------------------------------------------------------


def test_validate_prints_the_topology_as_a_tree_with_versions_and_tenants() -> None:
    result = runner.invoke(app, ["inventory", "validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "acme-mssp (bolt, port 443)" in out
    assert "main (DR pair)" in out
    assert "main-b secondary  10.20.0.11:22  6.10.0" in out
    assert "host group apac (single)" in out
    assert "apac-1  10.20.3.10:2222  6.10.0" in out
    assert "initech (acc_initech, port 18502)" in out
    assert out.rstrip().endswith("valid: 7 servers in 4 groups, 5 tenants")


def test_validate_json_gives_the_topology_for_machines() -> None:
    result = runner.invoke(app, ["inventory", "validate", str(EXAMPLE), "--output", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["inventory"]["main"]["topology"] == "dr"
    assert [g["name"] for g in data["inventory"]["hosts"]] == ["emea", "us-east", "apac"]
    assert data["inventory"]["hosts"][0]["tenants"][1] == {
        "name": "initech",
        "account": "acc_initech",
        "port": 18502,
    }


def test_an_invalid_inventory_exits_3_with_one_line_per_problem_and_no_traceback(inventory: Path) -> None:
    edited(inventory, "  database: bolt ", "  databse: bolt ")
    edited(inventory, "- name: umbrella", "- name: umb rella")
    result = runner.invoke(app, ["inventory", "validate", str(inventory)])
    assert result.exit_code == ExitCode.INVALID_INVENTORY == 3
    assert result.stderr.splitlines() == [
        f"error: {inventory}:7: deployment.databse: unknown key; did you mean `database`?",
        f"error: {inventory}:50: hosts[1].tenants[0].name: tenant name 'umb rella' must be letters, digits, . _ - "
        "with no white space",
    ]
    assert "Traceback" not in result.output


def test_an_invalid_inventory_as_json_lists_the_problems_and_exits_3(inventory: Path) -> None:
    edited(inventory, "  database: bolt ", "  databse: bolt ")
    result = runner.invoke(app, ["inventory", "validate", str(inventory), "-o", "json"])
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "valid": False,
        "problems": [f"{inventory}:7: deployment.databse: unknown key; did you mean `database`?"],
    }


def test_a_missing_inventory_file_exits_3_naming_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inventory", "validate", str(tmp_path / "none.yaml")])
    assert result.exit_code == 3
    assert "none.yaml: cannot read the inventory" in result.stderr


def test_a_build_number_on_one_main_server_does_not_crash_validation(inventory: Path) -> None:
    edited(
        inventory,
        "name: main-a, address: 10.20.0.10, version: 6.10.0}",
        "name: main-a, address: 10.20.0.10, version: '6.10.0 (B187344)'}",
    )
    result = runner.invoke(app, ["inventory", "validate", str(inventory)])
    assert result.exit_code == 0, result.output
    assert "main-a primary  10.20.0.10:22  6.10.0 (B187344)" in result.stdout


# -- upgrade plan: exit codes ----------------------------------------------------------------------


def test_a_plan_with_work_to_do_exits_0() -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12"])
    assert result.exit_code == 0, result.output


def test_a_plan_with_nothing_to_do_exits_5(inventory: Path) -> None:
    inventory.write_text(inventory.read_text().replace("version: 6.10.0", "version: 6.12.0"))
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.12"])
    assert result.exit_code == ExitCode.NOTHING_TO_DO == 5
    assert "Nothing to do: every server in scope already runs 6.12." in result.stdout


def test_a_plan_that_cannot_keep_the_skew_rule_exits_4_with_the_reason(inventory: Path) -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.12", "--only", "main"])
    assert result.exit_code == ExitCode.PLAN_REFUSED == 4
    assert result.stderr.startswith("error: installing 6.12 on main-b would leave the deployment unsupported")
    assert "hint: widen the scope" in result.stderr
    assert "Traceback" not in result.output


def test_an_8_x_target_exits_4_explaining_it_is_a_migration() -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "8.0"])
    assert result.exit_code == 4
    assert "migration to a different platform" in result.stderr


def test_a_plan_from_an_invalid_inventory_exits_3(inventory: Path) -> None:
    edited(
        inventory,
        "name: use-b, address: 10.20.2.11, version: 6.10.0",
        "name: use-b, address: 10.20.2.11, version: 6.3.0",
    )
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.12"])
    assert result.exit_code == 3
    assert "use-b.version" not in result.stderr
    assert (
        f"error: {inventory}:48: hosts[1].dr.secondary.version: 6.3 is not a known release" in result.stderr
    )


def test_an_unknown_output_format_is_a_usage_error_exiting_2() -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "--output", "xml"])
    assert result.exit_code == ExitCode.USAGE == 2


def test_a_plan_without_a_target_is_a_usage_error_exiting_2() -> None:
    assert runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE)]).exit_code == 2


def test_an_unknown_target_release_is_a_usage_error_exiting_2() -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.3"])
    assert result.exit_code == 2
    assert "error: --to: 6.3 is not a known release (6.0 to 6.14)" in result.stderr


def test_only_with_anything_but_main_is_a_usage_error_exiting_2() -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "--only", "hosts"])
    assert result.exit_code == 2


def test_an_unknown_group_exits_with_the_known_groups_named() -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.11", "--group", "mars"])
    assert result.exit_code == 2
    assert "--group mars: no such host group (known: emea, us-east, apac)" in result.stderr


# -- upgrade plan: formats and the saved plan ------------------------------------------------------


def test_the_json_plan_carries_its_format_version_and_basis() -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format_version"] == PLAN_FORMAT_VERSION
    assert data["hops"] == ["6.11", "6.12"]
    assert len(data["basis"]["inventory_sha256"]) == 64
    assert data["phases"][0]["id"] == "prepare" and data["phases"][-1]["id"] == "validate"


def test_the_yaml_plan_carries_its_format_version() -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "-o", "yaml"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["format_version"] == PLAN_FORMAT_VERSION
    assert data["target"] == "6.12"


def test_json_and_yaml_plans_hold_the_same_data() -> None:
    as_json = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "-o", "json"]).stdout
    as_yaml = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "-o", "yaml"]).stdout
    assert json.loads(as_json) == yaml.safe_load(as_yaml)


def test_out_writes_a_plan_file_that_reads_back_equal(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    result = runner.invoke(
        app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "-o", "json", "--out", str(saved)]
    )
    assert result.exit_code == 0, result.output
    from xsoar_mt.plan import Plan

    assert read_plan(saved) == Plan.from_dict(json.loads(result.stdout))
    assert saved.stat().st_mode & 0o077 == 0, "a saved plan is readable by its owner only"


def test_the_text_plan_says_where_it_was_saved(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "--out", str(saved)])
    assert f"xsoar-mt upgrade run -i {EXAMPLE} --plan {saved}" in " ".join(result.stdout.split())


def test_only_main_with_hosts_ending_one_behind_warns_and_exits_0(inventory: Path) -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--to", "6.11", "--only", "main"])
    assert result.exit_code == 0, result.output
    assert "warning: after this plan, hosts left out of scope lag main by one release" in " ".join(
        result.stdout.split()
    )


@pytest.mark.parametrize(
    ("environ", "rewrites"),
    [
        ({}, False),
        ({"XSOAR_MT_UPDATE_GOLDEN": "1"}, True),
        ({"XSOAR_MT_UPDATE_GOLDEN": "0"}, False),
        ({"XSOAR_MT_UPDATE_GOLDEN": "yes"}, False),
        ({"XSOAR_MT_UPDATE_GOLDEN": "1", "CI": "false"}, True),
        ({"CI": "true"}, False),
    ],
)
def test_only_update_golden_1_rewrites_the_golden_file(environ: dict[str, str], rewrites: bool) -> None:
    assert update_requested(environ) is rewrites


@pytest.mark.parametrize("value", ["1", "0"])
def test_the_golden_update_variable_is_refused_under_ci(value: str) -> None:
    with pytest.raises(pytest.UsageError, match="under CI"):
        update_requested({"XSOAR_MT_UPDATE_GOLDEN": value, "CI": "true"})


GOLDEN_PLANS = {"plan-example-6.12.txt": [], "plan-example-6.12-detail.txt": ["--detail"]}


@pytest.mark.parametrize("name", GOLDEN_PLANS)
def test_the_text_plan_matches_the_golden_file(name: str) -> None:
    result = runner.invoke(app, ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", *GOLDEN_PLANS[name]])
    assert result.exit_code == 0, result.output
    assert_matches(result.stdout, GOLDEN / name)


@pytest.mark.parametrize("name", GOLDEN_PLANS)
def test_the_golden_plan_is_120_columns_wide_at_most(name: str) -> None:
    lines = (GOLDEN / name).read_text().splitlines()
    assert max(len(line) for line in lines) <= 120


# -- the program -----------------------------------------------------------------------------------


def test_python_dash_m_xsoar_mt_help_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xsoar_mt", "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "inventory" in result.stdout and "upgrade" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12"],
        ["inventory", "validate", str(EXAMPLE)],
    ],
    ids=["help", "upgrade-plan", "inventory-validate"],
)
def test_the_cli_never_imports_fabric_or_paramiko_to_plan_or_validate(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SSH_IMPORTS, *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_every_command_declares_its_parameters_as_objects_not_strings() -> None:
    """Typer reads each command's annotations to build its options. Written as strings (a module with
    `from __future__ import annotations`), each one is compiled and evaluated on every start: ~240 of
    them made the command tree four times slower to build, for --help and every command."""
    import typer

    from xsoar_mt.cli import app

    def callbacks(command: object) -> list[tuple[str, object]]:
        commands = getattr(command, "commands", None)  # a group (Typer has its own copy of Click's classes)
        if commands is not None:
            return [c for sub in commands.values() for c in callbacks(sub)]
        return [(getattr(command, "name", ""), getattr(command, "callback", None))]

    as_strings = [
        name
        for name, callback in callbacks(typer.main.get_command(app))
        for annotation in getattr(getattr(callback, "__wrapped__", callback), "__annotations__", {}).values()
        if isinstance(annotation, str)
    ]
    assert len(callbacks(typer.main.get_command(app))) >= 10  # every command, not just the root
    assert as_strings == []
