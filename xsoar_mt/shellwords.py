"""Turning values into shell words: the one place a value from the inventory or the operator enters a remote command."""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Iterable, Mapping, Sequence


class _Later:
    """A placeholder filled in later, per server, by `fill_per_server` (the executor): `fill` writes it
    back as `{name}`, so a step's command is one text for all its servers."""

    def __repr__(self) -> str:
        return "LATER"


LATER = _Later()

Value = str | int | Sequence[str] | _Later  # one word; one word per item (none for []); or LATER

_PER_SERVER = re.compile(r"\{(server|address|stamp)\}")


def word(value: str | int) -> str:
    """`value` as exactly one shell word, whatever characters it holds."""
    return shlex.quote(str(value))


def words(values: Iterable[str]) -> str:
    """Each value as one shell word, separated by spaces (nothing for no values)."""
    return " ".join(word(v) for v in values)


def placeholders(template: str) -> list[str]:
    """The names of a template's `{placeholders}`, in order. Raises ValueError for braces that do not
    pair up, and for anything but a plain name between them (`{0}`, `{a.b}`, `{a!r}`, `{a:>4}`)."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise ValueError() from None  # braces that do not pair up
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(
                f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            )
        names.append(name)
    return names


def quoted_placeholders(template: str) -> list[str]:
    """The placeholders a template writes inside quotes ('{x}' or "{x}"). `fill` quotes each value
    itself, and a value quoted again inside quotes would keep its quote marks as text."""
    found = []
    quote: str | None = None
    escaped = False
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        for char in literal:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "'":
                escaped = True
            elif quote is None and char in "'\"":
                quote = char
            elif char == quote:
                quote = None
        if name is not None and quote is not None:
            found.append(name)
    return found


def fill(template: str, **values: Value) -> str:
    """The operator's `template` (shell, as written) with each `{name}` replaced by its value quoted.

    A text or number becomes one word; a list becomes one word per item (none for an empty list); LATER
    keeps `{name}` for `fill_per_server`. `{{` and `}}` are literal braces. Only the values are quoted:
    the template's own text is the operator's shell and is kept exactly (the inventory refuses a
    placeholder written inside quotes: see `quoted_placeholders`).
    """
    parts: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is None:
            continue
        value = values[name]
        if isinstance(value, _Later):
            parts.append(f"{{{name}}}")
        elif isinstance(value, str | int):
            parts.append(word(value))
        else:
            parts.append(words(value))
    return "".join(parts)


def fill_per_server(command: str, values: Mapping[str, str]) -> str:
    """A step's command with `{server}`, `{address}` and `{stamp}` (left by `fill` with LATER) filled in
    for one server; a placeholder `values` does not name is left as it is.

    Only the template's own placeholders are filled: text inside a value `fill` quoted (a path of
    `'{address}'`) is the value's, and stays as it is. The placeholders are looked for in
    `outside_quotes(command)`, which hides every quoted value at the same length."""
    out, last = [], 0
    for found in _PER_SERVER.finditer(outside_quotes(command)):
        name = found.group(1)
        if name in values:
            out += [command[last : found.start()], word(values[name])]
            last = found.end()
    out.append(command[last:])
    return "".join(out)


def squash(command: str) -> str:
    """`command` on one line: each run of white space outside quotes becomes one space (a value's own
    white space is kept), with none at either end."""
    out, last = [], 0
    for run in re.finditer(r"\s+", outside_quotes(command)):
        at_an_end = run.start() == 0 or run.end() == len(command)
        out += [command[last : run.start()], "" if at_an_end else " "]
        last = run.end()
    out.append(command[last:])
    return "".join(out)


def outside_quotes(command: str) -> str:
    """`command` with every character inside single quotes, or after a backslash, replaced by `_`.

    The same length, so a match found in it is at the same place in `command`. Every value `word` quotes
    is inside single quotes, so nothing in a value can be mistaken for the operator's shell; text inside
    double quotes stays visible, since `$(...)` there is still shell.
    """
    out = list(command)
    in_single = in_double = escaped = False
    for i, char in enumerate(command):
        if escaped:
            out[i], escaped = "_", False
        elif in_single:
            out[i] = "_"
            in_single = char != "'"
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_double = not in_double
        elif char == "'" and not in_double:
            out[i], in_single = "_", True
    return "".join(out)
