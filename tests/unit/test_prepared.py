"""Whether an installer `upgrade prepare` left stands in for the night's fetch (each guard of the decision),
and the prepared record read strictly: from the server (framed), and from the local record."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tests.inventories import GroupSpec, inventory_dict
from xsoar_mt.engine.prepared import FetchDecision, claim, decide, digest_of
from xsoar_mt.errors import InvalidInput
from xsoar_mt.inventory import parse_inventory
from xsoar_mt.known import KnownState
from xsoar_mt.observed import Prepared
from xsoar_mt.probe import parse_prepared

SHA = "a" * 64
OTHER = "b" * 64
PATH = "/var/lib/xsoar-mt/demisto-6.12.sh"
RECORD = Prepared("h1", "6.12", "B1234", SHA, PATH, 1_700_000_000.0, "run-1")


def claimed(records: list[Prepared] | None = None, *, server: str = "h1", release: str = "6.12",
            build: str | None = "B1234", path: str = PATH, pinned: str | None = None) -> FetchDecision | Prepared:  # fmt: skip
    return claim([RECORD] if records is None else records, server, release, build, path, pinned)


def test_the_installer_prepared_for_the_same_release_build_path_and_sha256_is_not_fetched_again() -> None:
    record = claimed()
    assert record == RECORD
    assert isinstance(record, Prepared)
    assert decide(record, SHA) == FetchDecision(True, RECORD)


def test_with_no_record_the_installer_is_fetched_without_a_note() -> None:
    assert claimed([]) == FetchDecision(False)


def test_a_record_for_another_release_does_not_count() -> None:
    assert claimed(release="6.13") == FetchDecision(False)


def test_a_record_of_another_server_does_not_count() -> None:
    assert claimed(server="h2") == FetchDecision(False)


def test_a_record_for_another_build_is_fetched_again_with_a_note() -> None:
    decision = claimed(build=None)
    assert isinstance(decision, FetchDecision) and not decision.skip
    assert decision.note is not None and "build B1234" in decision.note and "latest" in decision.note


def test_a_record_at_another_path_is_fetched_again_with_a_note() -> None:
    decision = claimed(path="/opt/other/demisto-6.12.sh")
    assert isinstance(decision, FetchDecision) and not decision.skip
    assert decision.note is not None and "/opt/other/demisto-6.12.sh" in decision.note


def test_a_record_whose_sha256_the_inventory_does_not_pin_is_fetched_again() -> None:
    decision = claimed(pinned=OTHER)
    assert isinstance(decision, FetchDecision) and not decision.skip
    assert decision.note is not None and OTHER in decision.note
    assert claimed(pinned=SHA) == RECORD  # the pin it was prepared with: still prepared


def test_an_installer_changed_since_it_was_prepared_is_fetched_again_with_a_note() -> None:
    decision = decide(RECORD, OTHER)
    assert not decision.skip and decision.record == RECORD
    assert (
        decision.note is not None
        and "changed since it was prepared" in decision.note
        and OTHER in decision.note
    )


def test_a_missing_installer_is_fetched_again_with_a_note() -> None:
    decision = decide(RECORD, None)
    assert not decision.skip
    assert decision.note is not None and "no longer at" in decision.note


@pytest.mark.parametrize(
    ("output", "digest"),
    [
        (f"{SHA}  /x/demisto-6.12.sh\n", SHA),
        ("", None),
        ("sha256sum: no such file\n", None),
        ("A" * 64, None),
    ],
)
def test_only_a_lowercase_sha256_printed_first_is_a_digest(output: str, digest: str | None) -> None:
    assert digest_of(output) == digest


def record_json(**changes: object) -> str:
    return json.dumps({**RECORD.to_dict(), **changes})


def test_a_record_round_trips_through_its_json() -> None:
    assert Prepared.parse(json.dumps(RECORD.to_dict())) == RECORD
    assert Prepared.parse(RECORD.prefix() + "1700000000}") == RECORD


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        record_json(extra="field"),
        json.dumps({k: v for k, v in RECORD.to_dict().items() if k != "build"}),
        record_json(sha256="A" * 64),
        record_json(sha256="a" * 63),
        record_json(release="6.12; rm -rf /"),
        record_json(at="1700000000"),
        record_json(at=True),
        record_json(path=None),
        record_json(build=12),
    ],
)
def test_a_record_that_is_not_exactly_one_xsoar_mt_writes_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="prepared record"):
        Prepared.parse(text)


def framed(text: str) -> str:
    return "__xsoar_mt_prepared=" + base64.b64encode(text.encode()).decode()


def test_the_probe_reads_framed_records_on_this_machine_s_clock_and_drops_bad_ones() -> None:
    stdout = "\n".join([
        "__xsoar_mt_now=1700000100",
        framed(RECORD.prefix() + "1700000000}"),
        framed(record_json(server="h2", release="6.11")),  # another server's: not this one's
        framed("garbage"),
        "__xsoar_mt_prepared=not base64!",
    ])  # fmt: skip
    assert parse_prepared("h1", stdout, 1_700_000_110.0) == (replace(RECORD, at=1_700_000_010.0),)


def test_a_record_file_cannot_smuggle_in_another_record_line() -> None:
    # The file holds a record for 6.11, then a carriage return and a whole framed line for 6.12: read
    # framed, the file is one line of base64, and its text is not one record, so neither counts.
    smuggled = framed(record_json(release="6.12"))
    stdout = "__xsoar_mt_now=1700000000\n" + framed(record_json(release="6.11") + "\r" + smuggled)
    assert len(stdout.splitlines()) == 2
    assert parse_prepared("h1", stdout, 1_700_000_000.0) == ()


def test_the_local_record_keeps_one_prepared_installer_per_server_and_release(tmp_path: Path) -> None:
    data = inventory_dict("bolt", GroupSpec("main", "single", ("6.11",)), [])
    inventory = parse_inventory(yaml.safe_dump(data), "inv.yaml")
    known = KnownState(tmp_path, inventory)
    known.record_prepared(replace(RECORD, sha256=OTHER))
    known.record_prepared(RECORD)  # the latest wins
    assert KnownState(tmp_path, inventory).prepared() == {"h1": [RECORD]}


def test_a_local_entry_this_version_cannot_read_counts_as_not_prepared(tmp_path: Path) -> None:
    data = inventory_dict("bolt", GroupSpec("main", "single", ("6.11",)), [])
    inventory = parse_inventory(yaml.safe_dump(data), "inv.yaml")
    known = KnownState(tmp_path, inventory)
    known.record_prepared(RECORD)
    raw = json.loads(known.path.read_text())
    raw["prepared"]["h1"]["6.12"]["sha256"] = "nope"
    known.path.write_text(json.dumps(raw))
    assert KnownState(tmp_path, inventory).prepared() == {}
