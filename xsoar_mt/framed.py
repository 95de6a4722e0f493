"""Framing what a server prints, so that no text it holds can forge another field: each field base64 on a
line of its own (the shell side), read back by splitting on `\\n` only, with numbers matched and capped;
and the one function that strips control characters from a server's text before it is printed.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from xsoar_mt.secrets import REDACTOR

# Shell functions: `xm_enc VALUE` and `xm_encf FILE` print the value (or the file's bytes) in base64 on one
# line, or `-` for nothing (an empty value, a missing file). base64 is in coreutils and busybox alike.
SHELL_FUNCTIONS = (
    "xm_enc() { xm_x=$(printf '%s' \"$1\" | base64 -w0 2>/dev/null); printf '%s' \"${xm_x:--}\"; }; "
    'xm_encf() { xm_x=$(cat "$1" 2>/dev/null | base64 -w0 2>/dev/null); printf \'%s\' "${xm_x:--}"; }; '
)

_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also takes '²' and '٣'
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# Upper bounds for what a server sends: an exit code, a pid (Linux's PID_MAX_LIMIT), a clock in seconds.
EXIT_CODE_MAX = 255
PID_MAX = 4_194_304
EPOCH_MAX = 2**36
FIELD_MAX = 1 << 20  # a decoded field longer than this (1 MiB) is refused, not kept


class Unreadable(Exception):
    """A server's answer that does not read as framed: `reason` says what, for an operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def lines(stdout: str) -> list[str]:
    """The answer's lines: split on `\\n` only (`splitlines()` also splits on `\\r`, `\\x0b`, `\\x1c`...,
    which a server's text may hold)."""
    return stdout.split("\n")


def number(text: str | None, cap: int, what: str) -> int | None:
    """A whole number of ASCII digits up to `cap`, or None for `-`/nothing; Unreadable otherwise."""
    if text is None or text in ("", "-"):
        return None
    if _NUMBER.fullmatch(text) is None:
        raise Unreadable(f"{what} is not a number: {shown_text(text, 40)}")
    if len(text) > len(str(cap)) or int(text) > cap:  # int() refuses over 4,300 digits: length first
        raise Unreadable(f"{what} {text[:24]}{'...' if len(text) > 24 else ''} is larger than {cap}")
    return int(text)


def exit_code(text: str) -> int | None:
    """An exit code a server wrote in a file, or None when it is not one (`²`, a huge number, text)."""
    try:
        return number(text.strip("\n"), EXIT_CODE_MAX, "the exit code")
    except Unreadable:
        return None


def decode(field: str | None, what: str) -> str | None:
    """A base64 field as text (undecodable bytes replaced, secrets masked), or None for `-`/nothing."""
    if field is None or field in ("", "-"):
        return None
    if len(field) > FIELD_MAX * 4 // 3 + 4 or _BASE64.fullmatch(field) is None:
        raise Unreadable(f"{what} is not framed as xsoar-mt sent it")
    try:
        raw = base64.b64decode(field, validate=True)
    except (binascii.Error, ValueError):
        raise Unreadable(f"{what} is not framed as xsoar-mt sent it") from None
    # Where a framed field's text enters xsoar-mt: secrets are masked here, before anything cuts it.
    return REDACTOR.redact(raw.decode("utf-8", errors="replace"))


def file_text(field: str | None, what: str) -> str | None:
    """A file's content sent as `decode` reads it, without the newlines that end it (as `$(cat f)` would)."""
    text = decode(field, what)
    return None if text is None else text.rstrip("\n") or None


def printable(text: str) -> str:
    """`text` without control characters (escape, bell, carriage return, bidi overrides...): what a server
    sent may reach the operator's terminal only so. Line breaks and tabs are kept."""
    return "".join(c for c in text if c in "\n\t" or not unicodedata.category(c).startswith("C"))


def shown_text(text: str, limit: int = 120) -> str:
    """A server's text inside a message: quoted with `repr`, so every character is visible, and cut."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else f"{quoted[:limit]}... ({len(text)} characters)"
