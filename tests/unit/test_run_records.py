"""Journal, lock and secrets: what a run leaves behind and what it refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from xsoar_mt.errors import InvalidInput, UsageError
from xsoar_mt.inventory import SecretRef
from xsoar_mt.journal import Journal, LockHeld, RunDir, RunLock, read_journal
from xsoar_mt.secrets import Redactor, read_secret, refuse_on_command_line


def test_journal_lines_are_json_in_order_and_the_file_is_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append({"kind": "step-started", "step": "a"})
    journal.append({"kind": "step-finished", "step": "a", "outcome": "ok"})
    journal.close()
    records = read_journal(tmp_path / "journal.jsonl")
    assert [r["kind"] for r in records] == ["step-started", "step-finished"]
    assert all("ts" in r for r in records)
    assert (tmp_path / "journal.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_corrupted_journal_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"kind": "a"}\nnot json\n')
    with pytest.raises(InvalidInput, match=r"journal.jsonl:2:"):
        read_journal(path)


def test_second_run_on_the_same_inventory_is_locked_out_with_the_owner_named(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("")
    RunLock(tmp_path, inventory).acquire("run-1")
    with pytest.raises(LockHeld) as held:
        RunLock(tmp_path, inventory).acquire("run-2")
    assert "run run-1" in held.value.message
    assert f"pid {os.getpid()}" in held.value.message
    assert held.value.hint is not None and "--force-unlock run-1" in held.value.hint


def test_a_lock_whose_process_is_gone_is_called_stale_and_can_be_broken(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("")
    lock = RunLock(tmp_path, inventory)
    lock.acquire("run-1")
    owner = json.loads(lock.path.read_text())
    owner["pid"] = 2**22 + 12345  # no such process
    lock.path.write_text(json.dumps(owner))
    with pytest.raises(LockHeld, match="stale"):
        RunLock(tmp_path, inventory).acquire("run-2")
    with pytest.raises(LockHeld, match="belongs to run run-1"):  # exit 10: the lock stays held
        lock.force_unlock("run-2")
    lock.force_unlock("run-1")
    RunLock(tmp_path, inventory).acquire("run-2")


def test_latest_run_is_the_newest_with_a_journal(tmp_path: Path) -> None:
    for run_id in ("20260101-000000-aaaa", "20260102-000000-bbbb"):
        Journal(RunDir.create(tmp_path, run_id).journal_path).append({"kind": "run-intent"})
    RunDir.create(tmp_path, "20260103-000000-cccc")  # no journal: never started
    assert RunDir.find(tmp_path, "latest").run_id == "20260102-000000-bbbb"


def test_redactor_masks_a_link_its_token_and_their_url_encoded_forms() -> None:
    redactor = Redactor()
    redactor.register("https://download.demisto.com/download-params/?token=fake-xxxx-tok&email=a@b.c")
    text = "GET ...?token=fake-xxxx-tok and token%3Dfake-xxxx-tok and fake-xxxx-tok"
    assert "fake-xxxx-tok" not in redactor.redact(text)


def test_secret_from_the_environment_is_registered_with_the_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    redactor = Redactor()
    monkeypatch.setenv("XSOAR_TEST_SUDO", "hunter2-sudo")
    assert (
        read_secret(SecretRef("env", "XSOAR_TEST_SUDO"), "sudo password", redactor=redactor) == "hunter2-sudo"
    )
    assert redactor.redact("pw hunter2-sudo") == "pw ***"


def test_missing_environment_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XSOAR_TEST_MISSING", raising=False)
    with pytest.raises(InvalidInput, match="XSOAR_TEST_MISSING is not set"):
        read_secret(SecretRef("env", "XSOAR_TEST_MISSING"), "sudo password", redactor=Redactor())


def test_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link"
    path.write_text("https://example.invalid/?token=zzzz\n")
    path.chmod(0o644)
    with pytest.raises(InvalidInput, match="readable by other users") as refused:
        read_secret(SecretRef("file", str(path)), "download link", redactor=Redactor())
    assert refused.value.hint == f"chmod 600 {path}"
    path.chmod(0o600)
    assert read_secret(SecretRef("file", str(path)), "download link", redactor=Redactor()).endswith("zzzz")


def test_prompted_secret_without_a_terminal_points_to_env_or_file() -> None:
    with pytest.raises(InvalidInput, match="no terminal"):
        read_secret(SecretRef("prompt"), "sudo password", prompt=lambda _: "x", redactor=Redactor())


@pytest.mark.parametrize(
    "arg", ["--sudo-password=x", "--token", "--api-key=abc", "--download-link=https://x"]
)
def test_secrets_on_the_command_line_are_refused_with_a_pointer(arg: str) -> None:
    with pytest.raises(UsageError, match="never taken on the command line"):
        refuse_on_command_line(["upgrade", "run", arg])


@pytest.mark.parametrize(
    "command",
    [
        "sudo true",
        "a; sudo true",
        "a && sudo true",
        "a || sudo true",
        "{ sudo true; } 2>&1",
        "( sudo true )",
        "x=$(sudo cat f)",
        "if sudo true; then sudo false; fi",
        "for f in a; do sudo rm $f; done",
        "! sudo true",
    ],
)
def test_every_sudo_in_command_position_is_made_to_read_its_password_from_stdin(command: str) -> None:
    from xsoar_mt.remote import SUDO_PROMPT, elevate

    elevated = elevate(command)
    assert elevated.count("sudo -S -p ") == command.count("sudo ")
    assert elevated.count(SUDO_PROMPT) == command.count("sudo ")


def test_sudo_inside_a_word_or_argument_is_left_alone() -> None:
    from xsoar_mt.remote import elevate

    assert elevate("echo pseudo sudoers; grep sudo /etc/group") == "echo pseudo sudoers; grep sudo /etc/group"
