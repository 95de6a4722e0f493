"""Loading an inventory: the file's text read as YAML and validated into the model, every problem found
reported at once as `file:line: key.path: message`."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from xsoar_mt.bulk import without_gc_passes
from xsoar_mt.errors import InventoryError, shown
from xsoar_mt.inventory.groups import DEPLOYMENT_NAME_MAX, GroupContext, read_group, read_name
from xsoar_mt.inventory.model import Commands, Group, Health, InstallerSettings, Inventory, SshSettings
from xsoar_mt.inventory.node import Node, Problems, optional, required
from xsoar_mt.inventory.rules import cross_checks
from xsoar_mt.inventory.sections import (
    read_commands,
    read_durations,
    read_health,
    read_installer,
    read_release_line,
    read_secret_ref,
    read_ssh,
    read_url,
)
from xsoar_mt.releases import ReleaseLine

INVENTORY_VERSION = 1


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read and validate an inventory file; raise InventoryError listing every problem found."""
    from xsoar_mt.localfiles import InputFileError, read_input

    file = Path(path)
    try:
        data = read_input(file)
    except InputFileError as exc:
        raise InventoryError([f"{file}: cannot read the inventory: {exc.reason}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InventoryError(
            [
                f"{file}:{line}: the inventory is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8"
            ]
        ) from None
    return parse_inventory(text, str(file))


@without_gc_passes
def parse_inventory(text: str, filename: str = "<inventory>") -> Inventory:
    reader = Problems(filename)
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise InventoryError(
            [f"{filename}:{_yaml_error_line(exc, text)}: not valid YAML: {_yaml_problem(exc)}"]
        ) from None
    except RecursionError:  # the pure-Python composer recurses per level; libyaml stops at its own limit
        raise InventoryError([f"{filename}:1: not valid YAML: nested too deeply"]) from None
    if root is None:
        raise InventoryError([f"{filename}:1: the inventory is empty"])
    # Without a `*` the text holds no alias, so no node is shared: nothing to expand (a quick walk saved).
    too_far = _alias_expansion(root) if "*" in text else None
    if too_far is not None:
        raise InventoryError([f"{filename}:{too_far}"])
    inventory = _read_inventory(Node(root, "", reader))
    if reader.problems or inventory is None:
        raise InventoryError(reader.problems)
    return replace(inventory, digest=hashlib.sha256(text.encode()).hexdigest())


def _yaml_error_line(exc: yaml.YAMLError, text: str) -> int:
    """The line a YAML error points at; a reader error (a character YAML does not allow) gives only its
    position in the text."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    if problem:
        return str(problem)
    if isinstance(exc, yaml.reader.ReaderError):
        return f"the character {shown(chr(exc.character)) if isinstance(exc.character, int) else exc.character} is not allowed"
    return shown(str(exc))


def _alias_expansion(root: yaml.Node) -> str | None:
    """Aliases (`*name`) may reuse a part of the inventory, not multiply it ("billion laughs") nor hold
    themselves (libyaml composes `&a [*a]` into a cycle): refuse a document whose aliases, written out,
    give ten times more nodes than it has (and over 10,000), or that contains itself. Returns
    `line: message` for the first top-level key that goes too far, or None."""
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # post-order without recursion: a document may nest a thousand levels deep
        node, children_done = stack.pop()
        if id(node) in expanded:
            continue
        children = _children(node)
        if children_done:
            open_nodes.discard(id(node))
            expanded[id(node)] = min(_ALIAS_CAP, 1 + sum(expanded[id(c)] for c in children))
            continue
        if any(id(c) in open_nodes for c in children) or any(c is node for c in children):
            return f"{node.start_mark.line + 1}: an alias (*name) refers to the node that holds it"
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in expanded)
    limit = max(10_000, 10 * len(expanded))
    if expanded[id(root)] <= limit:
        return None
    worst = root
    if isinstance(root, yaml.MappingNode):
        worst = max((value for _, value in root.value), key=lambda n: expanded[id(n)], default=root)
    return (
        f"{worst.start_mark.line + 1}: its aliases (*name) expand to more than {limit:,} nodes from "
        f"{len(expanded):,} written; an alias may reuse a part of the inventory, not multiply it"
    )


_ALIAS_CAP = 10**15  # an exact count up to here: far above any limit, and no sum grows without bound


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


_TAGS = {
    yaml.ScalarNode: "tag:yaml.org,2002:str",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
    yaml.MappingNode: "tag:yaml.org,2002:map",
}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's composer when PyYAML was built with it: the same nodes and marks, seven times faster on a
    1,000-server inventory (half a second otherwise).

    The reader takes every scalar as written (`6.10` stays 6.10) and never looks at a node's tag, so the
    composer skips guessing one: matching each scalar against the resolver's patterns (is it an int, a
    bool, a date?) is a quarter of composing a large inventory."""

    def resolve(self, kind: type[yaml.Node], value: object, implicit: object) -> str:
        return _TAGS[kind]


_LOADER = _Loader

_TOP_KEYS = (
    "inventory_version",
    "deployment",
    "ssh",
    "installer",
    "commands",
    "health",
    "durations",
    "releases",
    "main",
    "hosts",
)
_DEPLOYMENT_KEYS = (
    "name",
    "database",
    "elasticsearch_url",
    "elasticsearch_credentials",
    "elasticsearch_snapshot_repository",
    "communication_port",
    "tenant_port_base",
    "profile",
    "api_key",
)


def _read_inventory(root: Node) -> Inventory | None:
    """The whole document: its version, the deployment, the settings sections, main and the hosts; then the
    rules across it."""
    top = root.mapping(_TOP_KEYS)
    if top is None:
        return None
    version_node = required(root, top, "inventory_version")
    if version_node is not None:
        version = version_node.integer(0, 10**6)
        if version is not None and version != INVENTORY_VERSION:
            version_node.problem(f"this xsoar-mt reads inventory_version {INVENTORY_VERSION}, not {version}")
    deployment = _deployment(root, top)
    settings = _settings(top)
    context = GroupContext(
        settings["ssh"],
        settings["releases"],
        deployment["tenant_port_base"],
        deployment["communication_port"],
    )
    main_node = required(root, top, "main")
    main = read_group(main_node, "main", is_main=True, context=context) if main_node else None
    hosts: list[Group] = []
    hosts_node = top.get("hosts")
    if hosts_node is not None:
        for item in hosts_node.sequence() or []:
            group = read_group(item, None, is_main=False, context=context)
            if group is not None:
                hosts.append(group)
    if main is None:
        return None
    inventory = Inventory(path=root.reader.filename, main=main, hosts=tuple(hosts), **deployment, **settings)
    cross_checks(root.reader, inventory)
    return inventory


def _deployment(root: Node, top: dict[str, Node]) -> dict[str, Any]:
    """The `deployment` section, as the Inventory's fields of the same names."""
    deployment = required(root, top, "deployment")
    dep = deployment.mapping(_DEPLOYMENT_KEYS) if deployment else None
    dep = dep or {}
    name_node = required(deployment, dep, "name") if deployment else None
    name = (name_node.text() if name_node else None) or "?"
    if name_node is not None and len(name) > DEPLOYMENT_NAME_MAX:
        name_node.problem(f"{shown(name)} is {len(name)} characters long; at most {DEPLOYMENT_NAME_MAX}")
    fields: dict[str, Any] = {  # read in this order, so problems are listed in it
        "name": name,
        "database": optional(dep, "database", lambda n: n.choice(("bolt", "elasticsearch")), "bolt"),
        "communication_port": optional(dep, "communication_port", lambda n: n.integer(1, 65535), 443),
        "tenant_port_base": optional(dep, "tenant_port_base", lambda n: n.integer(1, 65535), 18501),
        "profile": optional(dep, "profile", lambda n: n.choice(("production", "dev")), "production"),
        "elasticsearch_url": optional(dep, "elasticsearch_url", read_url, None),
        "elasticsearch_credentials": optional(dep, "elasticsearch_credentials", read_secret_ref, None),
        "elasticsearch_snapshot_repository": optional(
            dep, "elasticsearch_snapshot_repository", lambda n: read_name(n, "snapshot repository"), None
        ),
        "api_key": optional(dep, "api_key", read_secret_ref, None),
    }
    if fields["database"] == "elasticsearch" and "elasticsearch_url" not in dep and deployment is not None:
        root.reader.problem(
            deployment.line, "deployment.elasticsearch_url", "required when database is elasticsearch"
        )
    return fields


def _settings(top: dict[str, Node]) -> dict[str, Any]:
    """The settings sections (ssh, releases, installer, commands, health, durations), defaults where left out."""
    fields: dict[str, Any] = {  # read in this order, so problems are listed in it
        "ssh": optional(top, "ssh", lambda n: read_ssh(n, SshSettings()), SshSettings()),
        "releases": optional(top, "releases", read_release_line, ReleaseLine()),
        "installer": optional(top, "installer", read_installer, InstallerSettings()),
        "commands": optional(top, "commands", read_commands, Commands()),
    }
    if fields["installer"].target_dir and "{target}" not in fields["commands"].install and "commands" in top:
        top["commands"].problem(
            "commands.install has no {target}, so installer.target_dir would be ignored: add {target}"
        )
    fields["health"] = optional(top, "health", read_health, Health())
    no_durations: dict[str, float] = {}
    fields["durations"] = optional(top, "durations", read_durations, no_durations)
    return fields
