"""Each guard of the local record (known.py) has a test that fails when it is wrong: the record is read
back only as far as it is this version's, a broken one is named and set aside, durations are
non-negative numbers of the measured kinds, and the file is private and replaced whole."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from xsoar_mt.inventory import Inventory, parse_inventory
from xsoar_mt.known import KnownState, deployment_key, write_private


def inventory(name: str = "acme", addresses: tuple[str, str] = ("10.0.0.1", "10.0.0.2")) -> Inventory:
    data = {
        "inventory_version": 1,
        "deployment": {"name": name, "database": "bolt"},
        "installer": {"link": {"env": "XM_LINK"}},
        "main": {"dr": {"primary": {"name": "m-p", "address": addresses[0]},
                        "secondary": {"name": "m-s", "address": addresses[1]}}},
    }  # fmt: skip
    return parse_inventory(yaml.safe_dump(data), "inv.yaml")


def saved(tmp_path: Path, data: object) -> KnownState:
    state = KnownState(tmp_path, inventory())
    state.path.parent.mkdir(parents=True, exist_ok=True)
    state.path.write_text(json.dumps(data))
    return KnownState(tmp_path, inventory())


def test_the_deployment_key_is_its_name_made_safe_and_its_main_addresses_in_any_order() -> None:
    a = deployment_key(inventory("acme/../x y"))
    assert a.startswith("acme_.._x_y-") and "/" not in a and len(a.split("-")[-1]) == 8
    assert deployment_key(inventory(addresses=("10.0.0.2", "10.0.0.1"))) == deployment_key(inventory())
    assert deployment_key(inventory(addresses=("10.0.0.3", "10.0.0.1"))) != deployment_key(inventory())
    assert len(deployment_key(inventory("n" * 100))) == 60 + 1 + 8


def test_durations_are_non_negative_numbers_of_the_measured_kinds_only(tmp_path: Path) -> None:
    state = saved(tmp_path, {"durations": {
        "m-p": {"stop": 2.5, "install": True, "start": -1, "healthy": "3", "other": 4},
        "m-s": "not an object",
        "h-1": {"install": 0},
    }})  # fmt: skip
    assert state.durations() == {"m-p": {"stop": 2.5}, "h-1": {"install": 0.0}}


def test_a_record_that_is_not_json_is_named_and_set_aside(tmp_path: Path) -> None:
    state = KnownState(tmp_path, inventory())
    state.path.parent.mkdir(parents=True, exist_ok=True)
    state.path.write_text("{not json")
    again = KnownState(tmp_path, inventory())
    assert again.problem is not None and str(again.path) in again.problem and again.servers() == {}


def test_only_the_records_own_keys_are_read_and_a_list_is_as_good_as_nothing(tmp_path: Path) -> None:
    state = saved(
        tmp_path,
        {"deployment": "forged", "servers": {}, "extra": 1, "backups": {"m-p": ["6.12"], "m-s": "6.12"}},
    )
    assert state._data["deployment"] == "acme" and "extra" not in state._data
    assert state.backups() == {"m-p": ["6.12"]}
    assert saved(tmp_path, [1, 2]).servers() == {}


def test_an_entry_this_version_cannot_read_is_skipped_and_the_others_kept(tmp_path: Path) -> None:
    good = {"version": "6.11.0", "source": "api", "at": 5.0, "service": "running"}
    state = saved(tmp_path, {"servers": {"m-p": good, "m-s": {"version": "six", "source": "api"}, "x": 7}})
    assert list(state.servers()) == ["m-p"]


def test_a_backup_is_recorded_once_and_durations_keep_only_measured_kinds(tmp_path: Path) -> None:
    state = KnownState(tmp_path, inventory())
    state.record_backup(["m-p"], "6.12")
    state.record_backup(["m-p"], "6.12")
    state.record_durations({"m-p": {"stop": 1.23456, "bogus": 9.0}}, "r-1")
    again = KnownState(tmp_path, inventory())
    assert again.backups() == {"m-p": ["6.12"]}
    assert again.durations() == {"m-p": {"stop": 1.2346}}


def test_write_private_replaces_the_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f.json"
    write_private(path, "one")
    write_private(path, "two")
    assert path.read_text() == "two" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]
