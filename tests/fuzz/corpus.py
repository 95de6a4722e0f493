"""What the fuzz tests mutate: valid inventories as data, and hypothesis strategies for hostile values,
YAML text and bytes. Every address in the corpus is on loopback (127.0.0.0/8)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261201


def examples() -> int:
    """Examples per fuzz test: 1,000 in `make test`, XSOAR_MT_FUZZ_EXAMPLES (10,000 in `make fuzz`)."""
    return int(os.environ.get("XSOAR_MT_FUZZ_EXAMPLES", "1000"))


def _loopback(data: dict[str, Any]) -> dict[str, Any]:
    """The same inventory with every server moved to 127.66.x.y (nothing listens there)."""
    data = copy.deepcopy(data)
    counter = iter(range(1, 250))

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if "name" in node and "address" in node:
                node["address"] = f"127.66.0.{next(counter)}"
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(data)
    return data


CORPUS: list[dict[str, Any]] = [
    _loopback(yaml.safe_load((ROOT / "inventory.example.yaml").read_text())),
    _loopback(yaml.safe_load((ROOT / "examples" / "ha-elasticsearch.yaml").read_text())),
]

_CONTROL = "".join(chr(c) for c in (*range(0, 32), 127, 0x85, 0x9B, 0x2028, 0xFEFF))
_SHELL = " $`'\";&|<>(){}[]*?~#!%\\"

texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=_CONTROL + _SHELL + "aZ09.-_:/", max_size=30),
    st.sampled_from(["", "~", "null", "yes", "0x1f", "1e400", ".nan", "-.inf", "6.10", "8.0", "6.3.0",
                     "fe80::1%eth0", "m1\n", "a b", "/var/tmp/b$(touch X)", "{server}", "{", "}}", "{0}",
                     "{server.x}", "'{server}'", "-rf", "acc_x", "&a", "*a", "!!python/object:os.system"]),
    st.integers(1, 5).map(lambda n: "x" * (10 ** n)),  # up to 100,000 characters
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a document (keys of mappings, indices of lists)."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*prefix, index))
    return found


def replaced(data: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    data = copy.copy(data)
    data[path[0]] = replaced(data[path[0]], path[1:], new)
    return data


def dropped(data: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        data = copy.copy(data)
        del data[path[0]]
        return data
    if not path:
        return None
    data = copy.copy(data)
    data[path[0]] = dropped(data[path[0]], path[1:])
    return data


@st.composite
def mutated_data(draw: st.DrawFn) -> Any:
    """A corpus inventory with one to four changes to its tree: a value replaced by anything (wrong
    type, control characters, huge), a key dropped, an unknown key added, a part wrapped or nested."""
    data: Any = copy.deepcopy(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths(data)))
        change = draw(st.sampled_from(["replace", "drop", "add", "wrap", "nest"]))
        if change == "replace":
            data = replaced(data, path, draw(values))
        elif change == "drop" and path:
            data = dropped(data, path)
        elif change == "add" and isinstance(_at(data, path), dict):
            data = replaced(data, path, {**_at(data, path), draw(texts): draw(values)})
        elif change == "wrap":
            data = replaced(data, path, [copy.deepcopy(_at(data, path))])
        elif change == "nest":
            nested: Any = draw(scalars)
            for _ in range(draw(st.integers(10, 200))):
                nested = [nested] if draw(st.booleans()) else {"k": nested}
            data = replaced(data, path, nested)
    return data


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def billion_laughs(depth: int, width: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


@st.composite
def inventory_bytes(draw: st.DrawFn) -> bytes:
    """An inventory file as bytes: mutated data dumped as YAML, then perhaps its text mangled (characters
    inserted, deleted or swapped; YAML aliases, tags, documents, deep flow nesting; billion laughs), then
    encoded as UTF-8, Latin-1, UTF-16, or with stray bytes."""
    data = draw(mutated_data())
    try:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text = yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=draw(st.booleans()),
                         width=draw(st.sampled_from([80, 10**6])))  # fmt: skip
    except (yaml.YAMLError, ValueError, RecursionError):
        text = "inventory_version: 1\n"
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(
            st.sampled_from(["insert", "delete", "line", "alias", "tag", "document", "deep", "laughs", "tab"])
        )
        if kind == "insert":
            text = text[:at] + draw(texts) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif kind == "line":
            lines = text.splitlines(True) or [""]
            index = draw(st.integers(0, len(lines) - 1))
            text = "".join([*lines[: index + 1], lines[index], *lines[index + 1 :]])
        elif kind == "alias":
            text = text.replace("ssh:", "ssh: &s", 1) + draw(
                st.sampled_from(["x: *s\n", "y: *nope\n", "<<: *s\n", "z: &z [*z]\n"])
            )
        elif kind == "tag":
            text = (
                text[:at]
                + draw(
                    st.sampled_from(["!!python/object/apply:os.system ['id'] ", "!!binary ", "!x ", "!!map "])
                )
                + text[at:]
            )
        elif kind == "document":
            text += draw(st.sampled_from(["---\nmain: 1\n", "...\n", "--- !!str\n", "%YAML 1.1\n---\n"]))
        elif kind == "deep":
            depth = draw(st.integers(100, 3000))
            text += "x: " + "[" * depth + "]" * depth + "\n"
        elif kind == "laughs":
            text += billion_laughs(draw(st.integers(2, 9)), draw(st.integers(2, 10)))
        else:
            text = text.replace("  ", "\t", draw(st.integers(1, 3)))
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["latin-1", "utf-16", "stray"]))
    if encoding == "stray":
        raw = text.encode("utf-8", "surrogatepass")
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    return text.encode(encoding, "replace" if encoding == "latin-1" else "surrogatepass")
