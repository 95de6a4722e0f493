"""The plan as text, read as an operator reads it: summary first, one line per group per hop, each command
whole and once, every step with --detail. Run through the real entry point with standard output piped."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tests.cli.piped import piped
from tests.inventories import forty_groups_yaml
from xsoar_mt.cli.plan_text import render_plan, sequence
from xsoar_mt.estimate import estimate
from xsoar_mt.inventory import Inventory, load_inventory, parse_inventory
from xsoar_mt.plan import Plan
from xsoar_mt.planner import plan_upgrade, with_extract_dirs
from xsoar_mt.window import closing

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"
MAX_LINES = 300  # the aim for the 40-group deployment, piped


@pytest.fixture(scope="module")
def forty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forty") / "forty-groups.yaml"
    path.write_text(forty_groups_yaml())
    return path


@pytest.fixture(scope="module")
def forty_text(forty: Path) -> str:
    result = piped("upgrade", "plan", "-i", str(forty), "--to", "6.12")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def forty_plan(forty: Path) -> dict[str, object]:
    result = piped("upgrade", "plan", "-i", str(forty), "--to", "6.12", "-o", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def commands_of(plan: dict[str, object]) -> set[str]:
    return {s["command"] for p in plan["phases"] for s in p["steps"]}  # type: ignore[attr-defined,index]


def test_the_forty_group_plan_piped_fits_in_300_lines(forty_text: str) -> None:
    assert len(forty_text.splitlines()) <= MAX_LINES


def test_the_forty_group_plan_piped_shows_every_command_whole_and_cuts_nothing(
    forty_text: str, forty_plan: dict[str, object]
) -> None:
    lines = forty_text.splitlines()
    for command in commands_of(forty_plan):
        assert any(command in line for line in lines), f"not whole on one line: {command}"
    assert "…" not in forty_text


def test_identical_commands_on_many_servers_are_shown_once(
    forty_text: str, forty_plan: dict[str, object]
) -> None:
    for command in commands_of(forty_plan):
        assert forty_text.count(command) == 1, command


def test_the_summary_comes_first_with_the_night_and_how_long_hosts_lag(forty_text: str) -> None:
    head = forty_text.splitlines()[:8]
    assert head[0] == "Upgrade plan for generated: 6.10 -> 6.11 -> 6.12 (2 hops; scope: everything)"
    assert head[1].startswith(
        "  62 servers to upgrade in 41 groups (main: DR pair; hosts: 20 single, 20 DR pairs), 80 tenants; 621 steps"
    )
    assert re.match(r"  expected length of the night: \d+ h \d\d min", head[2])
    lag = [line for line in head if line.startswith("  hop 6.11: hosts lag main (skew degraded) for ")]
    assert lag and "until the last of 40 host groups is upgraded" in lag[0]
    assert "content sync between main and the host" in forty_text.split("Prepare")[0]


def test_each_group_has_one_line_per_hop_with_its_actions_and_downtime(forty_text: str) -> None:
    rows = [line for line in forty_text.splitlines() if re.match(r"\s*\d+-\d+\s+d07 \(DR pair\)", line)]
    assert len(rows) == 2  # one per hop
    assert (
        "stop d07-p -> stop+install+start+wait-healthy d07-s -> install+start+wait-healthy d07-p" in rows[0]
    )
    assert rows[0].endswith("52 min")


def test_detail_prints_every_step_numbered_with_its_command() -> None:
    result = piped("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "--detail")
    assert result.returncode == 0, result.stderr
    plan = json.loads(piped("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", "-o", "json").stdout)
    steps = [s for p in plan["phases"] for s in p["steps"]]
    numbered = re.findall(r"^│\s*(\d+) │", result.stdout, re.M)
    assert [int(n) for n in numbered] == list(range(1, len(steps) + 1))
    for step in steps:
        assert step["command"] in result.stdout


def test_upload_delivery_shows_the_transfer_then_the_sha256_check(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(EXAMPLE.read_text().replace("delivery: server-download", "delivery: upload"))
    result = piped("upgrade", "plan", "-i", str(inventory), "--to", "6.12")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("  fetch-installer 6.12")]
    assert lines[at + 1].strip() == (
        "upload of demisto-6_12_latest.sh (downloaded once on this machine from the link) over SFTP unless "
        "the server holds it already, then the sha256 check:"
    )
    assert (
        lines[at + 2]
        .strip()
        .startswith("IFS= read -r want; got=$(sha256sum /var/lib/xsoar-mt/demisto-6.12.sh")
    )


def test_a_server_with_a_command_of_its_own_is_named_with_it() -> None:
    inventory = load_inventory(EXAMPLE)
    plan = with_extract_dirs(
        plan_upgrade(inventory, inventory.versions(), "6.12"),
        inventory,
        {"apac-1": "/var/tmp/xsoar-mt/extract"},
    )
    text = rendered(plan, inventory)
    for release in ("6.11", "6.12"):
        own = (
            f"sudo /var/lib/xsoar-mt/demisto-{release}.sh -target /var/tmp/xsoar-mt/extract -- -multi-tenant"
        )
        assert f"install {release} on apac-1  {own}" in text


def test_columns_wraps_the_plan_without_cutting_anything() -> None:
    result = piped("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", COLUMNS="60")
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 60
    assert "…" not in result.stdout
    flat = "".join(result.stdout.split())
    assert "sudo /var/lib/xsoar-mt/demisto-6.12.sh -- -multi-tenant".replace(" ", "") in flat


def test_no_color_keeps_colour_out_even_when_colour_is_forced() -> None:
    coloured = piped("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", FORCE_COLOR="1")
    assert re.search(r"\x1b\[[0-9;]*3[1-7]m", coloured.stdout), "FORCE_COLOR gives colour: the test can fail"
    plain = piped("upgrade", "plan", "-i", str(EXAMPLE), "--to", "6.12", FORCE_COLOR="1", NO_COLOR="1")
    assert not re.search(r"\x1b\[[0-9;]*3[1-7]m", plain.stdout)


def test_a_dr_pair_reads_secondary_first_and_a_single_host_as_its_actions() -> None:
    inventory = load_inventory(EXAMPLE)
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    by_id = {p.id: p for p in plan.phases}
    assert sequence(by_id["emea@6.11"]) == (
        "stop emea-a -> stop+install+start+wait-healthy emea-b -> install+start+wait-healthy emea-a"
    )
    assert sequence(by_id["apac@6.11"]) == "stop -> install -> start -> wait-healthy"


def rendered(plan: Plan, inventory: Inventory) -> str:
    out = io.StringIO()
    render_plan(plan, inventory, Console(file=out, width=1000, highlight=False))
    return out.getvalue()


def test_where_the_window_closes_mid_hop_the_rows_before_it_the_line_then_the_rest_under_one_title() -> None:
    inventory = load_inventory(EXAMPLE)
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    timing = estimate(plan, inventory.durations)
    where = closing(timing, 180)
    assert where is not None and where.phase.id == "apac@6.11" and where.done  # closes after three groups
    now = datetime(2026, 12, 1, 22, 0).astimezone()
    out = io.StringIO()
    render_plan(plan, inventory, Console(file=out, width=1000, highlight=False), timing=timing,
                window=(now, now + timedelta(minutes=180), where))  # fmt: skip
    lines = out.getvalue().splitlines()

    def line_of(text: str) -> int:
        found = [i for i, line in enumerate(lines) if text in line]
        assert len(found) == 1, (text, found)
        return found[0]

    order = [
        line_of("To 6.11: main, then 3 host groups, one at a time"),
        line_of("main (DR pair)"),
        line_of("us-east (DR pair)"),
        line_of("-- the window closes here: apac@6.11 and 0 group upgrades after it"),
        line_of("apac (single)"),
        line_of("Commands (each shown once"),
        line_of("Validate (steps"),
    ]
    assert order == sorted(order)


def test_detail_shows_each_step_s_reason_and_numbers_agree_with_their_nouns() -> None:
    inventory = load_inventory(EXAMPLE)
    plan = plan_upgrade(inventory, inventory.versions(), "6.12")
    buffer = io.StringIO()
    render_plan(plan, inventory, Console(file=buffer, width=100_000), detail=True)
    detail = buffer.getvalue()
    for step in plan.steps:  # the `why` of the JSON, on the screen too
        assert step.why in detail, step.id
    from tests.inventories import build
    from tests.inventories import single_group as single

    alone = build("bolt", single("main", "6.11"), [single("a", "6.11")])  # no tenant: one validation step
    buffer = io.StringIO()
    render_plan(plan_upgrade(alone, alone.versions(), "6.12"), alone, Console(file=buffer, width=100_000))
    text = buffer.getvalue()
    assert not re.search(r"\(steps \d+[;)]", text), text  # one step is `step 25`, not `steps 25`
    assert re.search(r"\(step \d+[;)]", text)
    assert not re.search(r"\b1 (tenants|paths|servers|groups)\b", text)


@pytest.mark.parametrize("width", [1000, 160, 120, 60])
def test_group_tables_laid_out_directly_read_exactly_as_rich_lays_them_out(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group tables of a plan are laid out without Rich when they fit (plan_text._plain_lines, for
    speed); the text must be the same as Rich's, at widths where every table fits, some do and none do."""
    from xsoar_mt.cli import plan_text

    inventory = parse_inventory(forty_groups_yaml(), "forty-groups.yaml")
    example = load_inventory(EXAMPLE)
    plans = [
        (plan_upgrade(inventory, inventory.versions(), "6.12"), inventory),
        (plan_upgrade(example, example.versions(), "6.12"), example),
        (plan_upgrade(example, example.versions(), "6.11"), example),
    ]
    direct_tables = 0
    lay_out = plan_text._plain_lines

    def counted(out: Console, table: Table, rows: Sequence[Sequence[str | Text]] = ()) -> list[str] | None:
        nonlocal direct_tables
        lines = lay_out(out, table, rows)
        direct_tables += lines is not None
        return lines

    def text(plan: Plan, inventory: Inventory) -> str:
        out = io.StringIO()
        render_plan(plan, inventory, Console(file=out, width=width, highlight=False))
        return out.getvalue()

    monkeypatch.setattr(plan_text, "_plain_lines", counted)
    direct = [text(plan, inv) for plan, inv in plans]
    monkeypatch.setattr(plan_text, "_plain_lines", lambda out, table, rows=(): None)
    by_rich = [text(plan, inv) for plan, inv in plans]
    assert direct == by_rich
    if width >= 160:
        assert direct_tables > 0, "no table was laid out directly: the comparison proves nothing"
    if width == 60:
        assert direct_tables == 0  # too narrow: every group table wraps, so Rich lays them all out
