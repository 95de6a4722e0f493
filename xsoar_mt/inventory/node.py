"""A YAML node with its key path, read into typed values, every problem kept as `file:line: key.path:
message`."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

import yaml
from yaml import ScalarNode

from xsoar_mt.errors import shown

T = TypeVar("T")


class Problems:
    """Every problem found in one inventory file, and where each object read from it was written."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[str] = []
        # Where each server, group and tenant was written (line, key path), for the checks across the
        # whole inventory; keyed by the object's id (the objects live as long as the reader).
        self.places: dict[int, tuple[int, str]] = {}

    def problem(self, line: int, path: str, message: str) -> None:
        where = f"{path}: " if path else ""
        self.problems.append(f"{self.filename}:{line}: {where}{message}")


def required(parent: Node, items: Mapping[str, Node], key: str) -> Node | None:
    if key not in items:
        parent.reader.problem(parent.line, parent.child_path(key), "required key is missing")
        return None
    return items[key]


def optional(items: Mapping[str, Node], key: str, read: Callable[[Node], T | None], default: T) -> T:
    node = items.get(key)
    if node is None:
        return default
    value = read(node)
    return default if value is None else value


# Unicode's control characters (category Cc) and surrogates (Cs), as one character class.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def control_character(text: str, allowed: str = "") -> str | None:
    """The first control character in `text` (other than those in `allowed`), or None."""
    if _CONTROL.search(text) is None:  # nearly every value: one scan, no generator
        return None
    return next((m.group() for m in _CONTROL.finditer(text) if m.group() not in allowed), None)


class Node:
    """A YAML node with its key path, so every problem can name file:line and where it is."""

    __slots__ = ("node", "path", "reader")  # one per YAML node: no dict each

    def __init__(self, node: yaml.Node, path: str, reader: Problems) -> None:
        self.node = node
        self.path = path
        self.reader = reader

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def problem(self, message: str) -> None:
        self.reader.problem(self.line, self.path, message)

    def child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def mapping(self, known: tuple[str, ...]) -> dict[str, Node] | None:
        if not isinstance(self.node, yaml.MappingNode):
            self.problem(f"expected a mapping of keys ({', '.join(known[:4])}, ...), found {self.kind}")
            return None
        out: dict[str, Node] = {}
        reader, prefix = self.reader, f"{self.path}." if self.path else ""
        for key_node, value_node in self.node.value:
            if not isinstance(key_node, ScalarNode):
                reader.problem(key_node.start_mark.line + 1, self.path, "a key must be a plain word")
                continue
            key = str(key_node.value)
            if key in out:
                reader.problem(key_node.start_mark.line + 1, prefix + key, "this key appears twice")
                continue
            if key not in known:
                close = difflib.get_close_matches(key[:100], known, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else f"; known keys: {', '.join(known)}"
                where = prefix + (key if len(key) <= 100 and key.isprintable() else shown(key, 60))
                reader.problem(key_node.start_mark.line + 1, where, f"unknown key{hint}")
                continue
            out[key] = Node(value_node, prefix + key, reader)  # one per key of the whole inventory: lean
        return out

    def sequence(self) -> list[Node] | None:
        if not isinstance(self.node, yaml.SequenceNode):
            self.problem(f"expected a list, found {self.kind}")
            return None
        return [Node(n, self.child_path(i), self.reader) for i, n in enumerate(self.node.value)]

    @property
    def kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        return shown(str(self.node.value)) if self.node.value != "" else "nothing"

    def text(self, *, multiline: bool = False) -> str | None:
        """The scalar exactly as written (so `6.10` stays 6.10, not the number 6.1).

        No control characters: a value ends up in messages, plans, journals and shell commands. A command
        template (`multiline`) may hold tabs and line breaks.
        """
        if not isinstance(self.node, yaml.ScalarNode) or self.node.value == "":
            self.problem(f"expected a text value, found {self.kind}")
            return None
        value = str(self.node.value)
        bad = control_character(value, "\t\n" if multiline else "")
        if bad is not None:
            self.problem(f"{shown(value)} holds the control character {bad!r}, which is not allowed here")
            return None
        return value

    def server_path(self) -> str | None:
        """A path on the servers. It goes into commands as one quoted word, taken literally (no `~` or
        `$VAR`); braces are refused because `{...}` marks a placeholder in a plan's commands."""
        raw = self.text()
        if raw is None:
            return None
        if "{" in raw or "}" in raw:
            self.problem(f"{shown(raw)}: braces are not allowed in a path ({{...}} marks a placeholder)")
            return None
        if raw.startswith("-"):
            self.problem(f"{shown(raw)}: a path must not start with - (a command would read it as an option)")
            return None
        return raw

    def integer(self, low: int, high: int, what: str = "a whole number") -> int | None:
        raw = self.text()
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            self.problem(f"expected {what}, found {shown(raw)}")
            return None
        if not low <= value <= high:
            self.problem(f"{value} is out of range ({low} to {high})")
            return None
        return value

    def number(self, low: float = 0.0, high: float = 1e6) -> float | None:
        raw = self.text()
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            self.problem(f"expected a number, found {shown(raw)}")
            return None
        if not math.isfinite(value) or not low <= value <= high:
            self.problem(f"{shown(raw)} is out of range ({low:g} to {high:g})")
            return None
        return value

    def boolean(self) -> bool | None:
        raw = self.text()
        if raw is None:
            return None
        if raw.lower() in ("true", "yes", "on"):
            return True
        if raw.lower() in ("false", "no", "off"):
            return False
        self.problem(f"expected true or false, found {shown(raw)}")
        return None

    def choice(self, options: tuple[str, ...]) -> str | None:
        raw = self.text()
        if raw is None:
            return None
        if raw not in options:
            close = difflib.get_close_matches(raw, options, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            self.problem(f"{shown(raw)} is not one of {', '.join(options)}{hint}")
            return None
        return raw

    def string_list(self, read: Callable[[Node], str | None] | None = None) -> tuple[str, ...] | None:
        items = self.sequence()
        if items is None:
            return None
        values = [(read or Node.text)(item) for item in items]
        return None if any(v is None for v in values) else tuple(v for v in values if v is not None)

    def flag(self) -> str | None:
        """An installer flag: one quoted word on the install command line, no braces."""
        raw = self.text()
        if raw is not None and ("{" in raw or "}" in raw):
            self.problem(f"{shown(raw)}: braces are not allowed in a flag ({{...}} marks a placeholder)")
            return None
        return raw
