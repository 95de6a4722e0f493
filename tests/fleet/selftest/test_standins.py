"""Tests of the stand-in commands: sudo, wget and curl with the vendor link, df, findmnt, nproc, free."""

from __future__ import annotations

import pytest

from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet


def test_sudo_passes_through_when_no_password_is_set(fleet: Fleet) -> None:
    result = fleet.ssh("single-h1", "sudo -n true && sudo -S -p '' echo ok && sudo -v && sudo -k")
    assert (result.returncode, result.stdout) == (0, "ok\n")


def test_sudo_with_a_password_reads_it_from_stdin_with_dash_s(fleet: Fleet) -> None:
    result = fleet.ssh("mixed-main", "sudo -S -p '' cat", input="s3cret\nrest of stdin\n")
    assert (result.returncode, result.stdout) == (0, "rest of stdin\n")
    prompted = fleet.ssh("mixed-main", "sudo -S true", input="s3cret\n")
    assert prompted.returncode == 0
    assert "[sudo] password for" in prompted.stderr


def test_sudo_refuses_a_wrong_password_and_a_missing_one(fleet: Fleet) -> None:
    wrong = fleet.ssh("mixed-main", "sudo -S -p '' true", input="nope\n")
    assert wrong.returncode == 1
    assert "Sorry, try again." in wrong.stderr
    assert fleet.ssh("mixed-main", "sudo -n true").returncode == 1
    no_stdin = fleet.ssh("mixed-main", "sudo true")
    assert no_stdin.returncode == 1
    assert "a terminal is required" in no_stdin.stderr
    assert fleet.ssh("mixed-main", "sudo -S -v", input="s3cret\n").returncode == 0


def test_wget_reads_the_link_from_stdin_so_the_token_stays_out_of_argv(fleet: Fleet) -> None:
    link = fleet.download_link("6_12_latest")
    result = fleet.ssh("single-h1", "wget -q -O demisto.sh -i -", input=link + "\n")
    assert result.returncode == 0, result.stderr
    saved = fleet.server("single-h1").home / "demisto.sh"
    assert saved.read_bytes() == (fleet.downloads / "demisto-6.12.sh").read_bytes()
    assert all("token" not in c["command"] for c in fleet.commands())
    download = [e for e in fleet.events() if e["event"] == "download"]
    assert [(d["server"], d["ok"], d["installer_version"]) for d in download] == [
        ("single-h1", True, "6.12.0")
    ]
    assert "fleet-token" not in fleet.event_log.read_text()


def test_curl_reads_a_config_from_stdin_and_the_plain_argv_form_works(fleet: Fleet) -> None:
    link = fleet.download_link("6_11_latest")
    piped = fleet.ssh("single-h2", "curl -fsSL -o a.sh -K -", input=f'url = "{link}"\n')
    plain = fleet.ssh("single-h2", f"curl -fsSL -o b.sh '{link}' && wget -q -O c.sh '{link}'")
    assert (piped.returncode, plain.returncode) == (0, 0), piped.stderr + plain.stderr
    home = fleet.server("single-h2").home
    expected = (fleet.downloads / "demisto-6.11.sh").read_bytes()
    assert [(home / n).read_bytes() == expected for n in ("a.sh", "b.sh", "c.sh")] == [True] * 3


def test_downloads_refuse_the_old_domain_a_bad_token_and_an_unknown_version(fleet: Fleet) -> None:
    old = fleet.download_link().replace("download.demisto.com", "download.demisto.works")
    bad_token = fleet.download_link(token="stolen")
    no_token = fleet.download_link().replace(f"token={fleet.spec.download_token}&", "")
    unknown = fleet.download_link("7_0_latest")
    checks = {
        "old": (f"wget -q -O x.sh '{old}'", 4),
        "bad": (f"wget -q -O x.sh '{bad_token}'", 8),
        "none": (f"curl -fsSL -o x.sh '{no_token}'", 22),
        "unknown": (f"curl -fsSL -o x.sh '{unknown}'", 22),
    }
    for name, (command, code) in checks.items():
        result = fleet.ssh("single-h1", command)
        assert result.returncode == code, (name, result.stderr)
    assert not (fleet.server("single-h1").home / "x.sh").exists()
    assert [e["ok"] for e in fleet.events() if e["event"] == "download"] == [False] * 4


def test_df_findmnt_nproc_and_free_report_the_spec(fleet: Fleet) -> None:
    result = fleet.ssh(
        "single-h1",
        "df -Pk /var/tmp; findmnt -no OPTIONS --target /tmp; nproc; free -b",
    )
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["Filesystem", "1024-blocks", "Used", "Available"]
    assert int(lines[1].split()[3]) == 1000 * 1024 * 1024
    assert "noexec" not in lines[2]
    assert lines[3] == "16"
    assert int(lines[5].split()[1]) == 32 * 1024**3
