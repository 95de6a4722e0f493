"""The one shell script that gathers a server's preflight facts in a single round trip, and its parser.

The script is POSIX sh and needs no new tools on the server. It reads two lines on standard input (the
`Authorization:` header line for the API key, and the download link) so that no secret ever sits on a
command line; each fact is printed in a section headed `==xsoar-mt== NAME` and closed by `==rc== CODE`.
It never runs anything with elevated rights: sudo is probed in the other round trip (probe.py), and a
command with a sudo password cannot also take data on stdin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from xsoar_mt.checks.model import Link
from xsoar_mt.framed import EXIT_CODE_MAX, SHELL_FUNCTIONS, Unreadable, decode, lines, number, shown_text
from xsoar_mt.shellwords import word
from xsoar_mt.workdir import walk_script

HEAD = "==xsoar-mt== "
BODY = "==body== "
RC = "==rc== "
TCP = "==tcp== "
DATA_DIR = "/var/lib/demisto"
_DIGITS = re.compile(r"[0-9]{1,30}")  # ASCII digits: str.isdigit() takes '²', which int() refuses
TCP_TIMEOUT = 3

# Opens one TCP connection with bash's /dev/tcp (under `timeout`), or nc, or says it cannot.
_TCP_FUNCTION = (
    'xm_tcp() { if [ -n "$xm_bash" ]; then $xm_timeout bash -c \'</dev/tcp/$0/$1\' "$1" "$2" '
    '>/dev/null 2>&1; r=$?; elif [ -n "$xm_nc" ]; then nc -z -w ' + str(TCP_TIMEOUT) + ' "$1" "$2" '
    '>/dev/null 2>&1; r=$?; else r=untested; fi; echo "' + TCP + '$1 $2 $r"; }; '
    "xm_bash=$(command -v bash 2>/dev/null); xm_nc=$(command -v nc 2>/dev/null); xm_timeout=; "
    'if command -v timeout >/dev/null 2>&1; then xm_timeout="timeout ' + str(TCP_TIMEOUT) + '"; '
    'elif [ -n "$xm_nc" ]; then xm_bash=; fi; '
)


@dataclass(frozen=True)
class SurveyRequest:
    """What to gather on one server."""

    installer_dir: str
    extract_dir: str  # the installer's -target, or /tmp
    links: Sequence[Link] = ()
    version_command: str | None = None  # run when the service may be running; reads its header on stdin
    link_check: bool = False  # check the download link (read from stdin's second line)
    api_key_urls: Sequence[tuple[str, str]] = ()  # (label, URL) asked with the API key header
    work_dirs: Sequence[str] = ()  # the working directories to describe (workdir.walk_script)


def _section(name: str, body: str) -> str:
    """A section: its name, then what `body` printed (both streams) in base64 on one line, then its exit
    code. Framed so that nothing a server prints (a version page, a mount option) can open another section."""
    return (
        f"echo '{HEAD}{name}'; xm_o=$( {{ {body}; }} 2>&1 ); xm_rc=$?; "
        f'echo "{BODY}$(xm_enc "$xm_o")"; echo "{RC}$xm_rc"; '
    )


def _existing(path: str) -> str:
    """Shell that sets $d to `path` or its nearest existing parent (df needs an existing path)."""
    return f'd={word(path)}; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; '


def _mount_options(path: str) -> str:
    """Shell printing the mount options of the file system holding `path` (or its nearest parent)."""
    return (
        _existing(path) + 'if command -v findmnt >/dev/null 2>&1; then findmnt -no OPTIONS --target "$d"; '
        "else awk -v d=\"$d\" '$2==d {print $4}' /proc/mounts; fi"
    )


# Asks the download link (in $xm_l) for the installer's headers only, with wget or else curl: the link
# reaches the tool on its standard input, never on a command line.
_LINK_CHECK = (
    "if command -v wget >/dev/null 2>&1; then echo tool=wget; "
    "printf '%s\\n' \"$xm_l\" | wget -q --spider -T 20 -t 1 -O /dev/null -i -; "
    'else echo tool=curl; printf \'url = "%s"\\n\' "$xm_l" '
    "| curl -sSfIL --max-time 20 -o /dev/null -K -; fi"
)


def link_check_script() -> str:
    """The survey's `installer-link` section alone: the link is the one line on standard input."""
    return (
        f"IFS= read -r xm_l; {SHELL_FUNCTIONS}" + _section("installer-link", _LINK_CHECK).rstrip("; ") + "\n"
    )


def survey_script(request: SurveyRequest) -> str:
    parts = [f"IFS= read -r xm_h; IFS= read -r xm_l; {SHELL_FUNCTIONS}"]
    if request.version_command:
        parts.append(_section("version", f"printf '%s\\n' \"$xm_h\" | {request.version_command}"))
    parts.append(_section("df-installer", _existing(request.installer_dir) + 'df -Pk "$d"'))
    parts.append(_section("df-data", _existing(DATA_DIR) + 'df -Pk "$d"'))
    parts.append(_section("extract-dir", _mount_options(request.extract_dir)))
    parts.append(_section("installer-dir-mount", _mount_options(request.installer_dir)))
    if request.work_dirs:
        parts.append(_section("working-directory", walk_script(request.work_dirs)))
    parts.append(_section("nproc", "nproc 2>/dev/null || getconf _NPROCESSORS_ONLN"))
    parts.append(_section("memory", "free -b 2>/dev/null || grep -i '^MemTotal:' /proc/meminfo"))
    if request.link_check:
        parts.append(_section("installer-link", _LINK_CHECK))
    for label, url in request.api_key_urls:
        parts.append(
            _section(
                f"api-key {label}",
                "printf '%s\\n' \"$xm_h\" | curl -sk -o /dev/null -w '%{http_code}' --max-time 10 -H @- "
                + word(url),
            )
        )
    if request.links:
        calls = " ".join(f"xm_tcp {word(k.address)} {word(k.port)} &" for k in request.links)
        parts.append(_section("tcp", f"{_TCP_FUNCTION}{calls} wait"))
    return "".join(parts).rstrip("; ") + "\n"


def survey_stdin(api_key: str | None, link: str | None) -> str:
    header = f"Authorization: {api_key}" if api_key else ""
    return f"{header}\n{link or ''}\n"


@dataclass(frozen=True)
class Section:
    text: str
    rc: int | None


def parse_sections(stdout: str) -> dict[str, Section]:
    """Each section's text and exit code. Split on `\\n` only; a section's text is its own base64 line,
    so nothing in it is read as another section. Raises Unreadable for an answer not framed so."""
    sections: dict[str, Section] = {}
    name: str | None = None
    text = ""
    for line in lines(stdout):
        if line.startswith(HEAD):
            name, text = line[len(HEAD) :], ""
            if name in sections:
                raise Unreadable(f"its preflight answer holds section {shown_text(name, 60)} twice")
            sections[name] = Section("", None)
        elif name is not None and line.startswith(BODY):
            text = decode(line[len(BODY) :], f"the {name} section") or ""
            sections[name] = Section(text, None)
        elif name is not None and line.startswith(RC):
            sections[name] = Section(text, number(line[len(RC) :], EXIT_CODE_MAX, f"the {name} exit code"))
            name = None
    return sections


def parse_tcp(text: str) -> dict[tuple[str, int], str]:
    """`==tcp== ADDR PORT RC` lines: (address, port) -> exit code or `untested`."""
    found: dict[tuple[str, int], str] = {}
    for line in text.splitlines():
        match = re.match(r"^" + re.escape(TCP) + r"(\S+) (\d+) (\S+)$", line.strip())
        if match:
            found[(match[1], int(match[2]))] = match[3]
    return found


@dataclass(frozen=True)
class DiskSpace:
    path: str  # the mount point df names
    total_bytes: int
    free_bytes: int


def parse_df(text: str) -> DiskSpace | None:
    """`df -Pk` output: the last data line (size, used and available in KiB, then the mount point)."""
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("Filesystem")]
    for row in reversed(rows):
        if len(row) >= 6 and _DIGITS.fullmatch(row[1]) and _DIGITS.fullmatch(row[3]):
            return DiskSpace(row[5], int(row[1]) * 1024, int(row[3]) * 1024)
    return None


def parse_memory(text: str) -> int | None:
    """Total memory in bytes, from `/proc/meminfo`'s MemTotal (kB) or `free -b`'s Mem: line."""
    for line in text.splitlines():
        words = line.split()
        if words and words[0].lower() == "memtotal:" and len(words) >= 2 and _DIGITS.fullmatch(words[1]):
            return int(words[1]) * 1024
        if words and words[0] == "Mem:" and len(words) >= 2 and _DIGITS.fullmatch(words[1]):
            return int(words[1])
    return None


def parse_int(text: str) -> int | None:
    words = text.split()
    return int(words[0]) if words and _DIGITS.fullmatch(words[0]) else None
