"""Getting the installer onto a server: where it lives, the download link, and the fetch command."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from xsoar_mt.errors import InvalidInput
from xsoar_mt.inventory import InstallerSettings
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.shellwords import word

VENDOR_HOST = "download.demisto.com"
_OLD_HOST = "download.demisto.works"


def installer_path(settings: InstallerSettings, release: str) -> str:
    """Where the installer for `release` is placed on every server."""
    return RemotePaths(settings.directory).installer(release)


def download_name(release: str, build: str | None = None) -> str:
    """The vendor's version selector: `6_12_latest`, or `6_12_<build>` for a given build."""
    major, minor = release.split(".")
    return f"{major}_{minor}_{build or 'latest'}"


def cache_name(release: str, build: str | None) -> str:
    """The file name of the installer this machine downloads once for upload delivery."""
    return f"demisto-{download_name(release, build)}.sh"


def link_rewrite_note(link: str | None) -> str | None:
    """What the operator must be told when `normalise_link` changes the link's host (the link itself is
    never shown: it carries a token)."""
    if link is None or urlsplit(link.strip()).netloc != _OLD_HOST:
        return None
    return (f"the download link's host {_OLD_HOST} is rewritten to {VENDOR_HOST}, as the vendor documents "
            "(the old host no longer serves installers)")  # fmt: skip


def normalise_link(link: str, release: str, build: str | None = None) -> str:
    """The vendor link for `release`: host download.demisto.com and `downloadName` set to the release.

    The vendor documents both corrections: the old `.works` host must become `.com`, and
    `downloadName=<major>_<minor>_<latest|build>` picks the version.
    """
    parts = urlsplit(link.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidInput(
            "the download link is not an http(s) URL (check the variable or file it comes from)"
        )
    host = parts.netloc
    if host == _OLD_HOST:
        host = VENDOR_HOST
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "downloadName"]
    query.append(("downloadName", download_name(release, build)))
    return urlunsplit(("https", host, parts.path, urlencode(query, safe="@"), ""))


def fetch_command(settings: InstallerSettings, release: str) -> str:
    """The command a server runs to download the installer itself.

    The link (it carries a token) arrives on standard input and is handed to wget or curl through a
    shell builtin, so it never appears on any process's command line or in shell history. When the
    inventory pins the release's sha256, the server checks the download against it before `chmod +x`.
    """
    path = word(installer_path(settings, release))
    # Downloaded to a .part file of its own (an attempt that was cut off may still be writing another),
    # checked, then renamed: an installer already there (perhaps running) is never truncated, and a
    # cut-off or corrupted download never passes for a whole one.
    part = '"$xm_part"'
    download = (
        f"mkdir -p {word(settings.directory)} && xm_part={word(installer_path(settings, release) + '.part.')}$$ && "
        "IFS= read -r link && "
        "if command -v wget >/dev/null 2>&1; "
        f"then printf '%s\\n' \"$link\" | wget -q -O {part} -i -; "
        f'else printf \'url = "%s"\\n\' "$link" | curl -fsSL -o {part} -K -; fi && '
    )
    pinned = settings.sha256.get(release)
    check = f"chmod +x {part}" if pinned is None else f"{{ {_checked_chmod(part, f'want={word(pinned)}')}; }}"
    return download + f"{check} && mv -f {part} {path}"


def upload_check_command(settings: InstallerSettings, release: str) -> str:
    """After an SFTP upload the server checks the installer's sha256 (expected on stdin) before `chmod +x`."""
    return _checked_chmod(word(installer_path(settings, release)), "IFS= read -r want")


def _checked_chmod(path: str, want: str) -> str:
    """Shell that sets $want to the expected sha256 (`want` does that) and makes the installer at `path`
    (already a shell word) executable only when its sha256 is that one; otherwise it says both and fails."""
    return (
        f"{want}; got=$(sha256sum {path} | cut -d' ' -f1); "
        f'if [ "$got" = "$want" ]; then chmod +x {path}; '
        f'else echo "sha256 of "{path}" is $got, expected $want: not made executable" >&2; exit 1; fi'
    )


def file_sha256(path: Path) -> str:
    """sha256 of a local file, read in 1 MiB pieces (installers are large)."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def local_installer(settings: InstallerSettings, inventory_path: str, release: str) -> Path:
    """The operator's installer file for `release` (`installer.file` may name {release}), relative to the
    inventory's folder unless absolute."""
    assert settings.file is not None
    path = Path(os.path.expanduser(settings.file.format(release=release)))
    return path if path.is_absolute() else Path(inventory_path).resolve().parent / path


def upload_source(settings: InstallerSettings, inventory_path: str, release: str) -> str:
    """What upload delivery sends to the servers for `release`: the operator's file, or the vendor's
    installer downloaded once on this machine from the link."""
    if settings.file is not None:
        return str(local_installer(settings, inventory_path, release))
    return f"{cache_name(release, settings.build)} (downloaded once on this machine from the link)"
