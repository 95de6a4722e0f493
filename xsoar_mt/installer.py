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
    return (
        f"the download link's host {_OLD_HOST} is rewritten to {VENDOR_HOST}, as the vendor documents "
        "(the old host no longer serves installers)"
    )


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


def digest_path(settings: InstallerSettings, release: str) -> str:
    """Where the server keeps the sha256 of the installer it checked on arrival (in the private directory)."""
    return installer_path(settings, release) + ".sha256"


def fetch_command(settings: InstallerSettings, release: str) -> str:
    """The command a server runs to download the installer itself.

    The link (it carries a token) arrives on standard input and is handed to wget or curl through a
    shell builtin, so it never appears on any process's command line or in shell history. When the
    inventory pins the release's sha256, the server checks the download against it before `chmod +x`.
    Either way the sha256 of what arrived is kept next to it, and the install checks it again, as root,
    right before it runs the file.
    """
    path = word(installer_path(settings, release))
    # Downloaded to a .part file of its own (an attempt that was cut off may still be writing another),
    # checked, then renamed: an installer already there (perhaps running) is never truncated, and a
    # cut-off or corrupted download never passes for a whole one.
    part = '"$xm_part"'
    download = (
        f"( umask 077 && mkdir -p {word(settings.directory)} ) && "
        f"xm_part={word(installer_path(settings, release) + '.part.')}$$ && "
        "IFS= read -r link && "
        "if command -v wget >/dev/null 2>&1; "
        f"then printf '%s\\n' \"$link\" | wget -q -O {part} -i -; "
        f'else printf \'url = "%s"\\n\' "$link" | curl -fsSL -o {part} -K -; fi && '
    )
    pinned = settings.sha256.get(release)
    digest = digest_path(settings, release)
    check = (
        f"got=$(sha256sum {part} | cut -d' ' -f1) && {_record(digest)} && chmod +x {part}"
        if pinned is None
        else _checked_chmod(part, f"want={word(pinned)}", digest)
    )
    return download + f"{{ {check}; }} && mv -f {part} {path}"


def upload_check_command(settings: InstallerSettings, release: str) -> str:
    """After an SFTP upload the server checks the installer's sha256 (expected on stdin) before `chmod +x`."""
    return _checked_chmod(
        word(installer_path(settings, release)), "IFS= read -r want", digest_path(settings, release)
    )


def _record(digest: str) -> str:
    """Shell writing $got to `digest`, replacing whatever is there (a symlink is removed, never followed)."""
    return f"rm -f {word(digest)} && printf '%s\\n' \"$got\" > {word(digest)}"


def _checked_chmod(path: str, want: str, digest: str) -> str:
    """Shell that sets $want to the expected sha256 (`want` does that) and makes the installer at `path`
    (already a shell word) executable only when its sha256 is that one; otherwise it says both and fails.
    The sha256 found is recorded in `digest` for the check right before the install."""
    return (
        f"{want}; got=$(sha256sum {path} | cut -d' ' -f1); "
        f'if [ -n "$want" ] && [ "$got" = "$want" ]; then {_record(digest)} && chmod +x {path}; '
        f'else echo "sha256 of "{path}" is $got, expected $want: not made executable" >&2; exit 1; fi'
    )


def verify_before_run(settings: InstallerSettings, release: str, command: str) -> str:
    """Shell for the root shell that runs the installer, right before it runs it: the installer's sha256
    must be the one pinned in the inventory, or else the one recorded when it arrived. Empty when the
    install command does not run the installer file (a custom command)."""
    path = word(installer_path(settings, release))
    if path not in command:
        return ""
    pinned = settings.sha256.get(release)
    want = word(pinned) if pinned else f'"$(cat {word(digest_path(settings, release))} 2>/dev/null)"'
    return (
        f"xm_want={want}; xm_got=$(sha256sum {path} 2>/dev/null | cut -d' ' -f1); "
        f'if [ -z "$xm_want" ] || [ "$xm_got" != "$xm_want" ]; then '
        f'echo "refused to run "{path}": its sha256 is ${{xm_got:-unreadable}}, expected ${{xm_want:-none recorded}}"; '
        "false; fi"
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
