"""The server-side check after an upload, run by a real shell: sha256 first, `chmod +x` only on a match."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from xsoar_mt.installer import upload_check_command
from xsoar_mt.inventory import InstallerSettings


def _check(tmp_path: Path, content: bytes, expected: str) -> subprocess.CompletedProcess[str]:
    settings = InstallerSettings(delivery="upload", file="x", directory=str(tmp_path))
    (tmp_path / "demisto-6.12.sh").write_bytes(content)
    command = upload_check_command(settings, "6.12")
    return subprocess.run(
        ["sh", "-c", command], input=expected + "\n", capture_output=True, text=True, check=False
    )


def test_an_intact_upload_is_made_executable(tmp_path: Path) -> None:
    content = b"#!/bin/sh\necho installer\n"
    result = _check(tmp_path, content, hashlib.sha256(content).hexdigest())
    assert result.returncode == 0, result.stderr
    assert os.access(tmp_path / "demisto-6.12.sh", os.X_OK)


def test_a_corrupted_upload_is_refused_and_never_made_executable(tmp_path: Path) -> None:
    sent = b"#!/bin/sh\necho installer\n"
    result = _check(tmp_path, b"#!/bin/sh\necho installer\x00garbled\n", hashlib.sha256(sent).hexdigest())
    assert result.returncode == 1
    assert "not made executable" in result.stderr
    assert not os.access(tmp_path / "demisto-6.12.sh", os.X_OK)
