"""Journal, lock and secrets: what a run leaves behind and what it refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest

from xsoar_mt.errors import InvalidInput, UsageError
from xsoar_mt.journal import Journal, RunDir, read_journal
from xsoar_mt.lock import LockHeld, RunLock
from xsoar_mt.secrets import Redactor, SecretRef, read_secret, refuse_on_command_line


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


def test_a_last_line_torn_by_a_crash_is_left_out_and_the_journal_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"kind": "run-intent"}\n{"kind": "step-started", "st')
    assert [r["kind"] for r in read_journal(path)] == ["run-intent"]


def test_resume_latest_takes_the_newest_run_of_the_same_deployment_only(tmp_path: Path) -> None:
    for run_id, deployment in (("20261201-010000-aaaa", "acme-1"), ("20261201-020000-bbbb", "other-2")):
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True)
        (folder / "journal.jsonl").write_text(
            json.dumps({"kind": "run-intent", "deployment": deployment}) + "\n"
        )
    assert RunDir.find(tmp_path, "latest", "acme-1").run_id == "20261201-010000-aaaa"
    with pytest.raises(
        UsageError, match="nothing to resume: no run of this deployment under /"
    ):  # exit 2, absolute
        RunDir.find(tmp_path, "latest", "third-3")


def test_second_run_of_the_deployment_here_is_locked_out_with_the_owner_named(tmp_path: Path) -> None:
    RunLock(tmp_path, "acme-1234").acquire("run-1")
    with pytest.raises(LockHeld) as held:
        RunLock(tmp_path, "acme-1234").acquire("run-2")
    assert held.value.exit_code == 10
    assert "run run-1" in held.value.message
    assert f"pid {os.getpid()}" in held.value.message
    assert held.value.hint is not None and "--force-unlock run-1" in held.value.hint


def test_a_lock_whose_process_is_gone_is_called_stale_and_can_be_broken_only_with_its_id(
    tmp_path: Path,
) -> None:
    lock = RunLock(tmp_path, "acme-1234")
    lock.acquire("run-1")
    owner = json.loads(lock.path.read_text())
    owner["pid"] = 2**22 + 12345  # no such process
    lock.path.write_text(json.dumps(owner))
    with pytest.raises(LockHeld, match="stale"):
        RunLock(tmp_path, "acme-1234").acquire("run-2")
    with pytest.raises(LockHeld, match="belongs to run run-1"):
        lock.force_unlock("run-2")
    assert lock.force_unlock("run-1")
    assert not lock.force_unlock("run-1")  # nothing left to break
    RunLock(tmp_path, "acme-1234").acquire("run-2")


def test_a_run_releases_only_its_own_lock_never_a_newer_runs(tmp_path: Path) -> None:
    first = RunLock(tmp_path, "acme-1234")
    first.acquire("run-1")
    assert first.force_unlock("run-1")  # broken by an operator while run-1 still ran
    RunLock(tmp_path, "acme-1234").acquire("run-2")
    first.release()  # run-1 ends
    assert json.loads(first.path.read_text())["run_id"] == "run-2"


def test_an_empty_lock_file_is_named_unreadable_and_can_be_broken(tmp_path: Path) -> None:
    lock = RunLock(tmp_path, "acme-1234")
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text("")
    with pytest.raises(LockHeld, match="owner cannot be read") as held:
        lock.acquire("run-1")
    assert held.value.hint is not None and "--force-unlock unreadable" in held.value.hint
    assert lock.force_unlock("unreadable")


def test_a_resume_of_the_same_run_takes_over_the_lock_its_dead_process_left(tmp_path: Path) -> None:
    lock = RunLock(tmp_path, "acme-1234")
    lock.acquire("run-1")
    owner = json.loads(lock.path.read_text())
    owner["pid"] = 2**22 + 12345
    lock.path.write_text(json.dumps(owner))
    RunLock(tmp_path, "acme-1234").acquire("run-1")
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_latest_run_is_the_newest_with_a_journal(tmp_path: Path) -> None:
    for run_id in ("20260101-000000-aaaa", "20260102-000000-bbbb"):
        Journal(RunDir.create(tmp_path, run_id).journal_path).append({"kind": "run-intent"})
    RunDir.create(tmp_path, "20260103-000000-cccc")  # no journal: never started
    assert RunDir.find(tmp_path, "latest").run_id == "20260102-000000-bbbb"


# Secrets whose every form below is a string of its own (a space, `/`, `+`, `=`, `&`, `"`, `\`, non-ASCII):
# a form the redactor forgot would show through.
ODD_SECRETS = ["pa ss/wo+rd=&1", 'clé "sûre"\\/+', "tök en=/+&"]


def _forms(value: str) -> dict[str, str]:
    return {
        "as is": value,
        "URL-encoded": quote(value, safe=""),
        "URL-encoded, @ kept": quote(value, safe="@"),
        "form-encoded": quote_plus(value),
        "form-encoded, @ kept (as the vendor link's query is)": quote_plus(value, safe="@"),
        "in a JSON string": json.dumps(value)[1:-1],
    }


@pytest.mark.parametrize("secret", ODD_SECRETS)
def test_redactor_masks_every_form_of_a_secret(secret: str) -> None:
    redactor = Redactor()
    redactor.register(secret + "@x")
    for form, shown in _forms(secret + "@x").items():
        assert redactor.redact(f"<{shown}>") == "<***>", form


@pytest.mark.parametrize("secret", ODD_SECRETS)
def test_redactor_masks_a_links_token_alone_in_every_form(secret: str) -> None:
    redactor = Redactor()
    link = "https://download.demisto.com/download-params/?" + urlencode({"token": secret, "email": "a@b.c"})
    redactor.register(link)
    assert redactor.redact(f"<{link}>") == "<***>"
    for form, shown in _forms(secret).items():
        assert redactor.redact(f"token=<{shown}>") == "token=<***>", form


def test_redactor_leaves_short_values_and_other_query_keys_alone() -> None:
    redactor = Redactor()
    redactor.register("abc")  # too short to mask without mangling ordinary text
    redactor.register("https://download.demisto.com/?token=tok&email=someone@example.com")
    assert redactor.redact("abc someone@example.com tok") == "abc someone@example.com tok"
    redactor.register("https://download.demisto.com/?TOKEN=long-token&password=long-pass&key=long-key")
    assert redactor.redact("long-token long-pass long-key") == "*** *** ***"


def test_a_secret_of_four_characters_is_masked_and_a_link_token_of_four_too() -> None:
    redactor = Redactor()
    redactor.register("wxyz")
    redactor.register("https://download.demisto.com/?token=abcd&email=a@b.c")
    assert redactor.redact("wxyz abcd") == "*** ***"


def test_only_a_links_token_is_masked_on_its_own_not_a_query_like_part_of_a_password() -> None:
    redactor = Redactor()
    redactor.register("pass?key=word")  # no scheme: a password, not a link
    redactor.register("https://mirror.example/path-only")  # a link without a query
    assert redactor.redact("key word, path-only") == "key word, path-only"
    assert redactor.redact("pass?key=word") == "***"


def test_a_secret_inside_a_longer_one_does_not_break_the_longer_ones_mask() -> None:
    redactor = Redactor()
    redactor.register("abcd")
    redactor.register("abcd-efgh")
    assert redactor.redact("abcd-efgh and abcd") == "*** and ***"


def test_clearing_the_redactor_forgets_every_secret() -> None:
    redactor = Redactor()
    redactor.register("secret-one")
    redactor.clear()
    assert redactor.redact("secret-one") == "secret-one"


def test_a_prompted_secret_is_read_at_a_terminal_named_and_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []
    redactor = Redactor()

    def answer(label: str) -> str:
        asked.append(label)
        return " typed-secret \n"

    assert (
        read_secret(SecretRef("prompt"), "sudo password", prompt=answer, redactor=redactor) == "typed-secret"
    )
    assert asked == ["sudo password: "]
    assert redactor.redact("typed-secret") == "***"
    with pytest.raises(InvalidInput) as empty:
        read_secret(SecretRef("prompt"), "sudo password", prompt=lambda _: "", redactor=redactor)
    assert empty.value.message == "sudo password: nothing was entered"


def test_a_secret_shorter_than_four_characters_is_refused_and_four_is_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XSOAR_TEST_SHORT", " abc ")
    with pytest.raises(InvalidInput) as short:
        read_secret(SecretRef("env", "XSOAR_TEST_SHORT"), "API key", redactor=Redactor())
    assert (
        short.value.message
        == "API key from environment variable XSOAR_TEST_SHORT is shorter than 4 characters; refusing it"
    )
    monkeypatch.setenv("XSOAR_TEST_SHORT", "abcd")
    assert read_secret(SecretRef("env", "XSOAR_TEST_SHORT"), "API key", redactor=Redactor()) == "abcd"


def test_a_secret_file_is_read_as_utf8_its_first_line_only_and_an_empty_one_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secret"
    path.write_bytes("pâss-wörd\nsecond line\n".encode())
    path.chmod(0o600)
    assert read_secret(SecretRef("file", str(path)), "sudo password", redactor=Redactor()) == "pâss-wörd"
    path.write_text("")
    with pytest.raises(InvalidInput, match="shorter than 4 characters"):
        read_secret(SecretRef("file", str(path)), "sudo password", redactor=Redactor())


def test_a_missing_secret_file_is_named_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(InvalidInput) as refused:
        read_secret(SecretRef("file", str(missing)), "download link", redactor=Redactor())
    assert refused.value.message == f"download link: cannot read {missing}: No such file or directory"


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


def test_prompted_secret_without_a_terminal_points_to_env_or_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(InvalidInput, match="no terminal") as refused:
        read_secret(SecretRef("prompt"), "sudo password", prompt=lambda _: "x", redactor=Redactor())
    assert refused.value.hint == "in automation, give it through {env: NAME} or {file: PATH} in the inventory"


@pytest.mark.parametrize(
    "arg", ["--sudo-password=x", "--token", "--api-key=abc", "--download-link=https://x", "--Client-Secret=s"]
)
def test_secrets_on_the_command_line_are_refused_with_a_pointer(arg: str) -> None:
    with pytest.raises(UsageError, match="never taken on the command line") as refused:
        refuse_on_command_line(["upgrade", "run", arg])
    assert refused.value.message == (
        f"{arg.split('=')[0].lower()}: secrets are never taken on the command line (they would show in shell history "
        "and process lists)"
    )
    assert refused.value.hint == (
        "name an environment variable or a file in the inventory "
        "(ssh.sudo_password, installer.link, deployment.api_key)"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--yes", "--to", "6.12"],
        ["-i", "inventory-with-link.yaml", "token-notes.txt"],  # not options: paths may say anything
        ["--plan=plans/link=6.12.json"],  # only the option's name counts, up to its first =
        ["--state-dir=/var/lib/secret-store"],
    ],
)
def test_ordinary_arguments_that_mention_a_secret_word_are_not_refused(argv: list[str]) -> None:
    refuse_on_command_line(["upgrade", "run", *argv])


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
