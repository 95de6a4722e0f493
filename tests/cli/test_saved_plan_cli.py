"""`upgrade run --plan`: a saved plan runs only when it is exactly what its inventory gives now.

At run time the plan is made again from the inventory and the versions observed, and compared with the
saved one step by step: any edit, another `--to`, or another `--only`/`--group` is refused with exit 8
naming what differs. A plan naming a server the inventory lacks, or a file that is not a plan, is
refused with exit 3 before anything runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from xsoar_mt.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.example.yaml"
runner = CliRunner()


def make_plan(inventory: Path, path: Path, *args: str) -> dict[str, Any]:
    made = runner.invoke(app, ["upgrade", "plan", "-i", str(inventory), "--out", str(path), *args])
    assert made.exit_code == 0, made.output
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def dry_run(inventory: Path, plan: Path, *args: str) -> Any:
    return runner.invoke(
        app, ["upgrade", "run", "-i", str(inventory), "--plan", str(plan), "--dry-run", *args]
    )


def rewrite(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2))


def test_a_step_whose_command_was_edited_is_refused_naming_the_step(inventory: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    step = data["phases"][1]["steps"][0]
    step["command"] = "rm -rf / --no-preserve-root"
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert f"step {len(data['phases'][0]['steps']) + 1} ({step['id']}): command differs: " in result.output
    assert "plan 'rm -rf / --no-preserve-root', made now 'sudo service demisto stop'" in result.output
    assert "would run" not in result.output and "main-a: rm" not in result.output


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["phases"][1]["steps"][2].update(servers=["main-a"]), "servers differs"),
        (lambda d: d["phases"][1]["steps"][0].update(why="reviewed"), "why differs"),
        (lambda d: d["phases"][1]["steps"][4].update(per_server={"main-a": "true"}), "per_server differs"),
        (lambda d: d["phases"][1]["steps"].pop(), "step 16 (emea@6.11/stop/emea-a): id differs"),
        (lambda d: d["phases"][-1]["steps"].pop(), "(validate/tenants/main-a) is missing from the plan"),
        # a validation step's kind is read back from its id: another kind there is an edit like any other
        (
            lambda d: d["phases"][-1]["steps"][0].update(id="validate/tenants/main-a"),
            "(validate/tenants/main-a): id differs",
        ),
        (lambda d: d["phases"][1]["steps"].reverse(), "id differs"),
        (lambda d: d["phases"][1].update(group="emea"), "phase main@6.11: group differs"),
        (lambda d: d.update(deployment="other"), "deployment differs"),
    ],
)
def test_any_other_edit_of_a_saved_plan_is_refused(
    inventory: Path, tmp_path: Path, edit: Any, expected: str
) -> None:
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    edit(data)
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert expected in result.output
    assert "the saved plan differs from the plan its inventory gives now" in result.output


def test_a_plan_for_6_11_run_with_to_6_12_is_refused_not_run(inventory: Path, tmp_path: Path) -> None:
    plan = tmp_path / "p611.json"
    make_plan(inventory, plan, "--to", "6.11")
    result = dry_run(inventory, plan, "--to", "6.12")
    assert result.exit_code == 8, result.output
    assert "target differs: the plan goes to 6.11, --to asks for 6.12" in result.output
    assert "run:" not in result.output  # no step was started


def test_a_plan_run_with_its_own_to_runs(inventory: Path, tmp_path: Path) -> None:
    plan = tmp_path / "p611.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    result = dry_run(inventory, plan, "--to", "6.11.0")
    assert result.exit_code == 0, result.output
    assert f"run: {sum(len(p['steps']) for p in data['phases'])} steps to 6.11" in result.output


@pytest.mark.parametrize(
    ("made_with", "run_with", "expected"),
    [
        (
            (),
            ("--only", "main", "--group", "emea"),
            "scope differs: the plan covers everything, the command line main, group emea",
        ),
        ((), ("--group", "emea"), "scope differs: the plan covers everything, the command line group emea"),
        (("--group", "emea"), ("--group", "apac"), "the plan covers group emea, the command line group apac"),
    ],
)
def test_a_plan_run_with_another_scope_is_refused(
    inventory: Path, tmp_path: Path, made_with: tuple[str, ...], run_with: tuple[str, ...], expected: str
) -> None:
    text = inventory.read_text()
    for main in ("main-a, address: 10.20.0.10", "main-b, address: 10.20.0.11"):
        text = text.replace(f"{main}, version: 6.10.0", f"{main}, version: 6.11.0")
    inventory.write_text(text)  # main already on 6.11: host groups alone may be planned
    plan = tmp_path / "plan.json"
    make_plan(inventory, plan, "--to", "6.11", *made_with)
    result = dry_run(inventory, plan, *run_with)
    assert result.exit_code == 8, result.output
    assert expected in result.output


def test_a_plan_made_for_main_only_runs_without_repeating_only(inventory: Path, tmp_path: Path) -> None:
    plan = tmp_path / "main.json"
    data = make_plan(inventory, plan, "--to", "6.11", "--only", "main")
    steps = sum(len(p["steps"]) for p in data["phases"])
    for result in (dry_run(inventory, plan), dry_run(inventory, plan, "--only", "main")):
        assert result.exit_code == 0, result.output
        assert f"run: {steps} steps to 6.11" in result.output  # the saved plan's steps, main's alone


def test_a_step_naming_a_server_not_in_the_inventory_is_refused_before_anything_runs(
    inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    data["phases"][1]["steps"][1]["servers"] = ["main-a", "ghost"]
    rewrite(plan, data)
    monkeypatch.setenv("XSOAR_DOWNLOAD_LINK", "https://download.demisto.com/download-params/?token=t0ken")
    state = tmp_path / "state"
    result = runner.invoke(app, ["upgrade", "run", "-i", str(inventory), "--plan", str(plan), "--yes",
                                 "--state-dir", str(state)])  # fmt: skip
    assert result.exit_code == 3, result.output
    step = data["phases"][1]["steps"][1]["id"]
    assert (
        f"error: {plan}: step '{step}' names server 'ghost', which is not in the inventory" in result.output
    )
    assert not state.exists()  # no lock taken, no run started, no server contacted


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[1, 2, 3]", "not a valid xsoar-mt plan: the plan: expected an object, found a list"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "not a JSON plan: the file is not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "not a JSON plan: nested too deeply"),
        (
            b'{"format_version": 1, "deployment": 5}',
            "not a valid xsoar-mt plan: deployment: expected text, found '5'",
        ),
        (b'{"format_version": "1"}', "plan format_version '1' is not 1"),
        (b"", ":1: not a JSON plan: Expecting value"),
    ],
)
def test_a_plan_file_that_is_not_a_plan_exits_3_in_one_line(
    inventory: Path, tmp_path: Path, content: bytes, expected: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_bytes(content)
    result = dry_run(inventory, plan)
    assert result.exit_code == 3, result.output
    assert result.output.startswith(f"error: {plan}")
    assert expected in result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) <= 2


def test_a_step_field_of_the_wrong_type_is_named_by_its_path(inventory: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    data["phases"][2]["steps"][0]["servers"] = "emea-b"
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 3, result.output
    assert "phases[2].steps[0].servers: expected a list of text, found 'emea-b'" in result.output


def test_main_steps_moved_into_prepare_in_the_same_order_are_refused(inventory: Path, tmp_path: Path) -> None:
    # `prepare` runs its steps side by side: main's backup, stop and install would all start at once.
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    prepare, main = data["phases"][0], data["phases"][1]
    assert (prepare["id"], main["id"]) == ("prepare", "main@6.11")
    prepare["steps"] += main["steps"]
    main["steps"] = []
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert "would run" not in result.output


def test_main_steps_relabelled_into_prepare_are_refused_by_the_phase_outline(
    inventory: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    moved = data["phases"][1]["steps"]
    for step in moved:
        step["phase"] = "prepare"
    data["phases"][0]["steps"] += moved
    data["phases"][1]["steps"] = []
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert "phase differs" in result.output or "phase prepare: steps differs" in result.output


def test_a_phase_emptied_with_its_steps_kept_elsewhere_is_refused_by_its_step_ids() -> None:
    from dataclasses import replace

    from xsoar_mt.plan import Plan

    plan = Plan.from_dict(_tiny_plan())
    prepare, main = plan.phases
    moved = replace(
        plan, phases=(replace(prepare, steps=prepare.steps + main.steps), replace(main, steps=()))
    )
    assert list(moved.steps) == list(plan.steps)  # the same steps, each unchanged, in the same order
    assert moved.first_difference(plan) == (
        'phase prepare: steps differs: plan ["prepare/1", "main@6.11/2"], made now ["prepare/1"]'
    )


def _tiny_plan() -> dict[str, Any]:
    def step(phase: str, n: int) -> dict[str, Any]:
        return {"id": f"{phase}/{n}", "phase": phase, "action": "stop", "servers": ["a"], "command": "true",
                "why": "w", "release": "6.11", "sets_release": None, "verdict_after": "ok"}  # fmt: skip

    return {
        "format_version": 1, "deployment": "d", "target": "6.11", "scope": {"main": True, "groups": None},
        "hops": ["6.11"], "warnings": [], "degraded_functions": [], "downtime_minutes": {}, "skipped": [],
        "basis": {"inventory_sha256": "x", "versions": {}, "target": "6.11", "scope": {"main": True, "groups": None}},
        "phases": [
            {"id": "prepare", "title": "p", "group": None, "release": None, "steps": [step("prepare", 1)]},
            {"id": "main@6.11", "title": "m", "group": "main", "release": "6.11", "steps": [step("main@6.11", 2)]},
        ],
    }  # fmt: skip


def test_waves_forged_in_the_file_are_refused_since_the_run_rebuilds_them_from_the_spec(
    inventory: Path, tmp_path: Path
) -> None:
    text = inventory.read_text()
    for main in ("main-a, address: 10.20.0.10", "main-b, address: 10.20.0.11"):
        text = text.replace(f"{main}, version: 6.10.0", f"{main}, version: 6.11.0")
    inventory.write_text(text)
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11", "--waves", "1")
    assert data["waves"]["spec"] == "1" and max(data["waves"]["groups"].values()) > 1
    assert dry_run(inventory, plan).exit_code == 0
    data["waves"]["groups"] = dict.fromkeys(data["waves"]["groups"], 1)
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert "waves differs" in result.output


def test_a_wave_spec_edited_to_something_unreadable_is_refused_with_exit_8(
    inventory: Path, tmp_path: Path
) -> None:
    text = inventory.read_text()
    for main in ("main-a, address: 10.20.0.10", "main-b, address: 10.20.0.11"):
        text = text.replace(f"{main}, version: 6.10.0", f"{main}, version: 6.11.0")
    inventory.write_text(text)
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11", "--waves", "1")
    data["waves"]["spec"] = "all at once"
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert "waves.spec: 'all at once' is not a wave spec" in result.output


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (
            lambda text: text.replace('"deployment": ', '"deployment": "other", "deployment": ', 1),
            "deployment",
        ),
        (lambda text: text.replace('"command": ', '"command": "rm -rf /", "command": ', 1), "command"),
    ],
)
def test_a_key_given_twice_is_refused_naming_it(inventory: Path, tmp_path: Path, edit: Any, key: str) -> None:
    plan = tmp_path / "plan.json"
    make_plan(inventory, plan, "--to", "6.11")
    plan.write_text(edit(json.dumps(json.loads(plan.read_text()))))
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert f"key '{key}' appears twice in one object" in result.output


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda d: d.update(parallel=16), "parallel: unknown key"),
        (lambda d: d["phases"][1].update(parallel=True), "phases[1].parallel: unknown key"),
        (lambda d: d["phases"][1]["steps"][0].update(sudo=False), "phases[1].steps[0].sudo: unknown key"),
        (lambda d: d["basis"].update(note="x"), "basis.note: unknown key"),
        (lambda d: d["scope"].update(all=True), "scope.all: unknown key"),
    ],
)
def test_an_unknown_key_is_refused_naming_its_path(
    inventory: Path, tmp_path: Path, edit: Any, path: str
) -> None:
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    edit(data)
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert path in result.output and len(result.output.splitlines()) <= 2


def test_two_steps_of_a_phase_swapped_are_refused(inventory: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    data = make_plan(inventory, plan, "--to", "6.11")
    steps = data["phases"][1]["steps"]
    steps[0], steps[1] = steps[1], steps[0]
    rewrite(plan, data)
    result = dry_run(inventory, plan)
    assert result.exit_code == 8, result.output
    assert "id differs" in result.output


@pytest.mark.parametrize("kind", ["fifo", "device", "large"])
def test_a_plan_that_is_not_a_regular_file_or_too_large_gets_one_line(
    inventory: Path, tmp_path: Path, kind: str
) -> None:
    import os

    plan = tmp_path / "plan.json"
    if kind == "fifo":
        os.mkfifo(plan)
    elif kind == "device":
        plan = Path("/dev/zero")
    else:
        with plan.open("wb") as handle:
            handle.truncate(16 * 1024 * 1024 + 1)
    result = dry_run(inventory, plan)
    assert result.exit_code == 3, result.output
    expected = "larger than the 16 MiB" if kind == "large" else "not a regular file"
    assert result.output.startswith(f"error: {plan}: cannot read the plan: ") and expected in result.output
    assert len(result.output.splitlines()) <= 2
