"""Reading backup records strictly, and judging a backup from what its server reports about it."""

from __future__ import annotations

from typing import Any

import pytest

from xsoar_mt.releases import ReleaseLine
from xsoar_mt.rollback.backups import (
    BackupRecord,
    NoBackup,
    backup_check_command,
    backup_check_verdict,
    read_backup,
    restore_command,
)

LINE = ReleaseLine()
SHA = "ab" * 32


def good(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "release": "6.11",
        "build": "493375",
        "path": "/var/tmp/xsoar-mt/backup/demisto-before-6.12-20261206T210000Z-ab12.tar.gz",
        "size": 1024,
        "sha256": SHA,
        "run_id": "20261206T205900Z-ab12",
        "taken_at": 1796590800.5,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


DROP = object()


def test_a_record_as_xsoar_mt_writes_it_reads_back_whole() -> None:
    record = read_backup("h1", good(), LINE)
    assert isinstance(record, BackupRecord)
    assert (record.release, record.build, record.size, record.taken_at) == (
        "6.11",
        "493375",
        1024,
        1796590800.5,
    )
    assert read_backup("h1", record.to_dict(), LINE) == record


def test_nothing_recorded_is_no_backup_with_a_reason() -> None:
    found = read_backup("h1", None, LINE)
    assert isinstance(found, NoBackup) and "no backup recorded" in found.reason


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"release": "6.99"}, "release"),
        ({"release": 6.11}, "release"),
        ({"build": "B493375"}, "build"),
        ({"path": "relative/x.tar.gz"}, "path"),
        ({"path": "/var/tmp/../../etc/shadow"}, "path"),
        ({"path": "/tmp/x.tar.gz; rm -rf /"}, "path"),
        ({"size": 0}, "size"),
        ({"size": True}, "size"),
        ({"size": "1024"}, "size"),
        ({"sha256": SHA.upper()}, "sha256"),
        ({"sha256": SHA[:-1]}, "sha256"),
        ({"run_id": "a b"}, "run_id"),
        ({"taken_at": float("nan")}, "taken_at"),
        ({"taken_at": -1}, "taken_at"),
        ({"es_snapshot": "Has Spaces"}, "es_snapshot"),
        ({"sha256": DROP}, "sha256"),
        ({"owner": "root"}, "owner"),
    ],
)
def test_a_field_that_is_not_what_xsoar_mt_writes_makes_the_server_have_no_usable_backup(
    changes: dict[str, Any], field: str
) -> None:
    found = read_backup("h1", good(**changes), LINE)
    assert isinstance(found, NoBackup)
    assert field in found.reason


@pytest.mark.parametrize("data", ["text", 42, [], ["x"], {"a": {"b": 1}}])
def test_anything_but_a_record_is_no_usable_backup_never_an_error(data: Any) -> None:
    assert isinstance(read_backup("h1", data, LINE), NoBackup)


def test_of_several_records_the_newest_is_the_one_before_the_last_upgrade() -> None:
    older = good(release="6.10", taken_at=1000.0)
    newer = good(release="6.11", taken_at=2000.0)
    found = read_backup("h1", [newer, older], LINE)
    assert isinstance(found, BackupRecord) and found.release == "6.11"


def test_one_bad_record_among_several_makes_the_server_have_no_usable_backup() -> None:
    assert isinstance(read_backup("h1", [good(), good(size=-5)], LINE), NoBackup)


def record() -> BackupRecord:
    found = read_backup("h1", good(), LINE)
    assert isinstance(found, BackupRecord)
    return found


def test_a_backup_its_server_reports_as_recorded_is_usable() -> None:
    assert backup_check_verdict(record(), f"xsoar-mt-backup: 1024 {SHA}\n") is None


def test_a_backup_whose_checksum_changed_is_reported_as_tampered() -> None:
    reason = backup_check_verdict(record(), f"xsoar-mt-backup: 1024 {'cd' * 32}\n")
    assert reason is not None and "changed since it was taken" in reason


def test_a_backup_whose_size_changed_is_not_usable() -> None:
    reason = backup_check_verdict(record(), f"xsoar-mt-backup: 99 {SHA}\n")
    assert reason is not None and "99 bytes" in reason


def test_a_missing_backup_is_reported_gone() -> None:
    reason = backup_check_verdict(record(), "xsoar-mt-backup: missing\n")
    assert reason is not None and "is gone" in reason


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "garbage",
        f"xsoar-mt-backup: 1024 {SHA}\nxsoar-mt-backup: 1024 {SHA}\n",
        "xsoar-mt-backup: x y",
        f"xsoar-mt-backup: 10²4 {SHA}\n",  # a digit to str.isdigit, not to int()
        f"xsoar-mt-backup: {'9' * 5000} {SHA}\n",  # more digits than int() reads
        f"xsoar-mt-backup: 1024 {SHA}\rxsoar-mt-backup: 1024 {SHA}\n",  # a \r is not a new line
    ],
)
def test_an_answer_that_cannot_be_read_is_a_reason_not_a_pass(stdout: str) -> None:
    assert backup_check_verdict(record(), stdout) == "the server's answer about the backup could not be read"


def test_the_check_and_the_restore_quote_the_path_and_check_the_sha256_first() -> None:
    rec = record()
    assert f"'{rec.path}'" in backup_check_command(rec) or rec.path in backup_check_command(rec)
    restore = restore_command(rec, "sudo tar -xzf {archive} -C /")
    assert restore.index("sha256sum") < restore.index("tar -xzf")
    assert f"want={SHA}" in restore


def test_the_archive_a_backup_step_made_becomes_a_record() -> None:
    from xsoar_mt.rollback.backups import record_from_answer

    answer = f"xsoar-mt-backup-taken: 2048 {SHA} /var/tmp/xsoar-mt/backup/demisto-before-6.12-S1.tar.gz\n"
    found = record_from_answer("h1", answer, release="6.11", build=None, run_id="r1", taken_at=5.0, line=LINE)
    assert isinstance(found, BackupRecord)
    assert (found.path, found.size, found.sha256, found.release) == (
        "/var/tmp/xsoar-mt/backup/demisto-before-6.12-S1.tar.gz",
        2048,
        SHA,
        "6.11",
    )


@pytest.mark.parametrize(
    "answer",
    [
        "",
        f"xsoar-mt-backup-taken: 2048 {SHA} relative.tgz",
        "xsoar-mt-backup-taken: big x /a",
        f"xsoar-mt-backup-taken: 1 {SHA} /a\n" * 2,
        f"xsoar-mt-backup-taken: ²0 {SHA} /a\n",
        f"xsoar-mt-backup-taken: {'9' * 5000} {SHA} /a\n",
    ],
)
def test_an_answer_naming_no_single_absolute_archive_records_no_backup(answer: str) -> None:
    from xsoar_mt.rollback.backups import record_from_answer

    found = record_from_answer("h1", answer, release="6.11", build=None, run_id="r1", taken_at=5.0, line=LINE)
    assert isinstance(found, NoBackup)
