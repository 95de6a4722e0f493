"""The inventory: its data model, and loading and validating it from YAML with file:line errors."""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import math
import os
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from xsoar_mt.errors import InvalidInput, InventoryError, shown
from xsoar_mt.estimate import DURATION_KEYS
from xsoar_mt.releases import ReleaseLine, Version
from xsoar_mt.shellwords import placeholders, quoted_placeholders

INVENTORY_VERSION = 1


class Topology(StrEnum):
    SINGLE = "server"
    HA = "ha"
    DR = "dr"


class Role(StrEnum):
    """A server's place in its group."""

    SINGLE = "single"
    APP = "app"  # one of an HA group's servers
    PRIMARY = "primary"
    SECONDARY = "secondary"


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from. Holds the variable's name or the file's path, never the secret."""

    source: str  # "env" | "file" | "prompt"
    ref: str = ""

    def describe(self) -> str:
        if self.source == "env":
            return f"environment variable {self.ref}"
        if self.source == "file":
            return f"file {self.ref}"
        return "a prompt"


@dataclass(frozen=True)
class Bastion:
    host: str
    user: str | None = None
    port: int = 22
    identity_file: str | None = None


@dataclass(frozen=True)
class SshSettings:
    user: str | None = None
    port: int = 22
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    config_file: str | None = None
    bastion: Bastion | None = None
    connect_timeout: float = 10.0
    keepalive: float = 15.0
    sudo_password: SecretRef | None = None


@dataclass(frozen=True)
class Server:
    name: str
    address: str
    group: str
    role: Role
    ssh: SshSettings
    version: Version | None = None
    line: int = 0

    @property
    def ssh_port(self) -> int:
        return self.ssh.port


@dataclass(frozen=True)
class Tenant:
    name: str
    port: int
    group: str

    @property
    def account(self) -> str:
        return f"acc_{self.name}"


@dataclass(frozen=True)
class Group:
    """Main, or a host group: one server, an HA group, or a DR pair, with its tenants."""

    name: str
    is_main: bool
    topology: Topology
    servers: tuple[Server, ...]
    tenants: tuple[Tenant, ...] = ()
    load_balancer: str | None = None
    wave: int | None = None  # a host group's place in `--waves` (lower first); None: inventory order

    @property
    def primary(self) -> Server:
        return next(s for s in self.servers if s.role is Role.PRIMARY)

    @property
    def secondary(self) -> Server:
        return next(s for s in self.servers if s.role is Role.SECONDARY)

    @property
    def label(self) -> str:
        kind = {Topology.SINGLE: "single", Topology.HA: "HA group", Topology.DR: "DR pair"}[self.topology]
        return f"main ({kind})" if self.is_main else f"host group {self.name} ({kind})"


@dataclass(frozen=True)
class InstallerSettings:
    link: SecretRef | None = None
    file: str | None = None
    delivery: str = "server-download"
    directory: str = "/var/tmp/xsoar-mt"
    target_dir: str | None = None
    extra_flags: tuple[str, ...] = ()
    build: str | None = None
    sha256: Mapping[str, str] = field(default_factory=dict)
    max_minutes: float = 120.0  # an installer still running after this long fails its step (left running)


@dataclass(frozen=True)
class Commands:
    stop: str = "sudo service demisto stop"
    start: str = "sudo service demisto start"
    status: str = "sudo service demisto status"
    # The installer does not start the service itself: the plan's own start step does, so an installer's
    # exit code says only whether it installed, and a failed start is a step of its own.
    install: str = "sudo {installer} {target} -- -multi-tenant -do-not-start-server {flags}"
    backup: str = (
        "sudo mkdir -p {backup_dir} && "
        "sudo tar -czf {backup_dir}/demisto-before-{version}-{stamp}.tar.gz -C / etc/demisto.conf var/lib/demisto"
    )
    backup_dir: str = "/var/tmp/xsoar-mt/backup"
    version: str = "curl -sk --max-time 10 -H @- https://127.0.0.1:{port}/about"
    health: str = "curl -sk -o /dev/null -w '%{{http_code}}' --max-time 5 https://127.0.0.1:{port}/health"


@dataclass(frozen=True)
class Health:
    timeout: float = 600.0
    interval: float = 5.0
    max_interval: float = 30.0


@dataclass(frozen=True)
class Inventory:
    path: str
    name: str
    database: str
    main: Group
    hosts: tuple[Group, ...]
    ssh: SshSettings = SshSettings()
    installer: InstallerSettings = InstallerSettings()
    commands: Commands = Commands()
    health: Health = Health()
    durations: Mapping[str, float] = field(default_factory=dict)
    releases: ReleaseLine = field(default_factory=ReleaseLine)
    communication_port: int = 443
    tenant_port_base: int = 18501
    profile: str = "production"
    elasticsearch_url: str | None = None
    elasticsearch_credentials: SecretRef | None = None
    api_key: SecretRef | None = None
    digest: str = ""  # sha256 of the file's text, for a saved plan's fingerprint

    @property
    def groups(self) -> tuple[Group, ...]:
        return (self.main, *self.hosts)

    @property
    def servers(self) -> tuple[Server, ...]:
        return tuple(s for g in self.groups for s in g.servers)

    def server(self, name: str) -> Server:
        for s in self.servers:
            if s.name == name:
                return s
        raise KeyError(name)

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def group_of(self, server: str) -> Group:
        return self.group(self.server(server).group)

    def versions(self) -> dict[str, Version]:
        """The versions the inventory records (servers without one are left out)."""
        return {s.name: s.version for s in self.servers if s.version is not None}


def url_address(address: str) -> str:
    """An address as a URL writes it: an IPv6 address in brackets."""
    return f"[{address}]" if ":" in address else address


# ---------------------------------------------------------------------------------------------------
# Loading


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read and validate an inventory file; raise InventoryError listing every problem found."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InventoryError([f"{file}: cannot read the inventory: {exc.strerror or exc}"]) from None
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


def parse_inventory(text: str, filename: str = "<inventory>") -> Inventory:
    reader = _Reader(filename)
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
    too_far = _alias_expansion(root)
    if too_far is not None:
        raise InventoryError([f"{filename}:{too_far}"])
    inventory = reader.inventory(_Node(root, "", reader))
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


T = TypeVar("T")

# libyaml's composer when PyYAML was built with it: the same nodes and marks, seven times faster on a
# 1,000-server inventory (half a second otherwise).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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
    "communication_port",
    "tenant_port_base",
    "profile",
    "api_key",
)
_SSH_KEYS = (
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "config_file",
    "bastion",
    "connect_timeout",
    "keepalive",
    "sudo_password",
)
_SERVER_KEYS = ("name", "address", "ssh_port", "version", "ssh")
_INSTALLER_KEYS = (
    "link",
    "file",
    "delivery",
    "directory",
    "target_dir",
    "extra_flags",
    "build",
    "sha256",
    "max_minutes",
)
_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "stop": ("server", "address"),
    "start": ("server", "address"),
    "status": ("server", "address"),
    "backup_dir": (),
    "install": ("installer", "target", "flags", "port", "server", "address"),
    "backup": ("backup_dir", "version", "stamp", "server", "address"),
    "version": ("port", "address"),
    "health": ("port", "address"),
}
# Every pattern is used with fullmatch: `$` would also match before a final newline ("m1\n").
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Names end up in tables, messages, journals and file names: no longer than a host name's label (servers
# and groups) or twice that (tenants, whose process is acc_<name>, and the deployment).
NAME_MAX, TENANT_NAME_MAX, DEPLOYMENT_NAME_MAX = 63, 128, 128
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# RFC 1123: dot-separated labels of letters, digits and inner hyphens, 253 characters at most.
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")
_BUILD = re.compile(r"[A-Za-z0-9]+")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_BASTION = re.compile(r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]\s]+\]|[^:@\s\[\]]+)(?::(?P<port>\d{1,5}))?")
_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/:?#\[\]@]+)(?::(?P<port>\d{1,5}))?(?P<rest>[/?#]\S*)?"
)
# Per-server placeholders: the executor fills them into the plan's commands, so a template's literal text
# (`{{server}}` written for braces) must not look like one.
_PER_SERVER_TEXT = ("{server}", "{address}")


def _control_character(text: str, allowed: str = "") -> str | None:
    """The first control character in `text` (other than those in `allowed`), or None."""
    return next(
        (c for c in text if unicodedata.category(c) in ("Cc", "Cs") and c not in allowed),
        None,
    )


class _Node:
    """A YAML node with its key path, so every problem can name file:line and where it is."""

    def __init__(self, node: yaml.Node, path: str, reader: _Reader) -> None:
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

    def mapping(self, known: tuple[str, ...]) -> dict[str, _Node] | None:
        if not isinstance(self.node, yaml.MappingNode):
            self.problem(f"expected a mapping of keys ({', '.join(known[:4])}, ...), found {self.kind}")
            return None
        out: dict[str, _Node] = {}
        for key_node, value_node in self.node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.reader.problem(key_node.start_mark.line + 1, self.path, "a key must be a plain word")
                continue
            key = str(key_node.value)
            child = _Node(value_node, self.child_path(key), self.reader)
            if key in out:
                self.reader.problem(key_node.start_mark.line + 1, child.path, "this key appears twice")
                continue
            if key not in known:
                close = difflib.get_close_matches(key[:100], known, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else f"; known keys: {', '.join(known)}"
                where = (
                    child.path if len(key) <= 100 and key.isprintable() else self.child_path(shown(key, 60))
                )
                self.reader.problem(key_node.start_mark.line + 1, where, f"unknown key{hint}")
                continue
            out[key] = child
        return out

    def sequence(self) -> list[_Node] | None:
        if not isinstance(self.node, yaml.SequenceNode):
            self.problem(f"expected a list, found {self.kind}")
            return None
        return [_Node(n, self.child_path(i), self.reader) for i, n in enumerate(self.node.value)]

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
        bad = _control_character(value, "\t\n" if multiline else "")
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

    def string_list(self, read: Callable[[_Node], str | None] | None = None) -> tuple[str, ...] | None:
        items = self.sequence()
        if items is None:
            return None
        values = [(read or _Node.text)(item) for item in items]
        return None if any(v is None for v in values) else tuple(v for v in values if v is not None)

    def flag(self) -> str | None:
        """An installer flag: one quoted word on the install command line, no braces."""
        raw = self.text()
        if raw is not None and ("{" in raw or "}" in raw):
            self.problem(f"{shown(raw)}: braces are not allowed in a flag ({{...}} marks a placeholder)")
            return None
        return raw


class _Reader:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[str] = []
        # Where each server, group and tenant was written (line, key path), for the checks across the
        # whole inventory; keyed by the object's id (the objects live as long as the reader).
        self.places: dict[int, tuple[int, str]] = {}

    def problem(self, line: int, path: str, message: str) -> None:
        where = f"{path}: " if path else ""
        self.problems.append(f"{self.filename}:{line}: {where}{message}")

    def required(self, parent: _Node, items: Mapping[str, _Node], key: str) -> _Node | None:
        if key not in items:
            self.problem(parent.line, parent.child_path(key), "required key is missing")
            return None
        return items[key]

    def optional(
        self, items: Mapping[str, _Node], key: str, read: Callable[[_Node], T | None], default: T
    ) -> T:
        node = items.get(key)
        if node is None:
            return default
        value = read(node)
        return default if value is None else value

    # -- sections -----------------------------------------------------------------------------------

    def inventory(self, root: _Node) -> Inventory | None:
        top = root.mapping(_TOP_KEYS)
        if top is None:
            return None
        version_node = self.required(root, top, "inventory_version")
        if version_node is not None:
            version = version_node.integer(0, 10**6)
            if version is not None and version != INVENTORY_VERSION:
                version_node.problem(
                    f"this xsoar-mt reads inventory_version {INVENTORY_VERSION}, not {version}"
                )

        deployment = self.required(root, top, "deployment")
        dep = deployment.mapping(_DEPLOYMENT_KEYS) if deployment else None
        dep = dep or {}
        name_node = self.required(deployment, dep, "name") if deployment else None
        name = (name_node.text() if name_node else None) or "?"
        if name_node is not None and len(name) > DEPLOYMENT_NAME_MAX:
            name_node.problem(f"{shown(name)} is {len(name)} characters long; at most {DEPLOYMENT_NAME_MAX}")
        database = self.optional(dep, "database", lambda n: n.choice(("bolt", "elasticsearch")), "bolt")
        comm_port = self.optional(dep, "communication_port", lambda n: n.integer(1, 65535), 443)
        tenant_base = self.optional(dep, "tenant_port_base", lambda n: n.integer(1, 65535), 18501)
        profile = self.optional(dep, "profile", lambda n: n.choice(("production", "dev")), "production")
        es_url = self.optional(dep, "elasticsearch_url", self.url, None)
        es_creds = self.optional(dep, "elasticsearch_credentials", self.secret, None)
        api_key = self.optional(dep, "api_key", self.secret, None)
        if database == "elasticsearch" and "elasticsearch_url" not in dep and deployment is not None:
            self.problem(
                deployment.line, "deployment.elasticsearch_url", "required when database is elasticsearch"
            )

        ssh_defaults = self.optional(top, "ssh", lambda n: self.ssh(n, SshSettings()), SshSettings())
        releases = self.optional(top, "releases", self.release_line, ReleaseLine())
        installer = self.optional(top, "installer", self.installer, InstallerSettings())
        commands = self.optional(top, "commands", self.commands, Commands())
        if installer.target_dir and "{target}" not in commands.install and "commands" in top:
            top["commands"].problem(
                "commands.install has no {target}, so installer.target_dir would be ignored: add {target}"
            )
        health = self.optional(top, "health", self.health, Health())
        durations: dict[str, float] = self.optional(top, "durations", self.durations, {})

        main_node = self.required(root, top, "main")
        context = _GroupContext(ssh_defaults, releases, tenant_base, comm_port)
        main = self.group(main_node, "main", is_main=True, context=context) if main_node else None
        hosts: list[Group] = []
        hosts_node = top.get("hosts")
        if hosts_node is not None:
            for item in hosts_node.sequence() or []:
                group = self.group(item, None, is_main=False, context=context)
                if group is not None:
                    hosts.append(group)
        if main is None:
            return None
        inventory = Inventory(
            path=self.filename,
            name=name,
            database=database,
            main=main,
            hosts=tuple(hosts),
            ssh=ssh_defaults,
            installer=installer,
            commands=commands,
            health=health,
            durations=durations,
            releases=releases,
            communication_port=comm_port,
            tenant_port_base=tenant_base,
            profile=profile,
            elasticsearch_url=es_url,
            elasticsearch_credentials=es_creds,
            api_key=api_key,
        )
        self.cross_checks(inventory)
        return inventory

    def url(self, node: _Node) -> str | None:
        """An http(s) URL whose host is an IP address (IPv6 in brackets) or a host name."""
        raw = node.text()
        if raw is None:
            return None
        match = _URL.fullmatch(raw)
        host = match["host"] if match else ""
        if match is None or not _is_address(host[1:-1] if host.startswith("[") else host):
            node.problem(f"{shown(raw)} is not an http(s) URL (https://HOST[:PORT][/PATH])")
            return None
        if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
            node.problem(f"{shown(raw)}: port {match['port']} is out of range (1 to 65535)")
            return None
        return raw

    def secret(self, node: _Node) -> SecretRef | None:
        if isinstance(node.node, yaml.ScalarNode):
            node.problem(
                "a secret is never written in the inventory; use {env: VARIABLE}, "
                "{file: PATH} or {prompt: true}"
            )
            return None
        items = node.mapping(("env", "file", "prompt"))
        if items is None:
            return None
        if len(items) != 1:
            node.problem("give exactly one of env, file or prompt")
            return None
        ((source, value),) = items.items()
        if source == "prompt":
            return SecretRef("prompt") if value.boolean() else None
        text = value.text()
        if text is None:
            return None
        if source == "env" and not _ENV_NAME.fullmatch(text):
            value.problem(f"{shown(text)} is not an environment variable name")
            return None
        return SecretRef(source, text)

    def ssh(self, node: _Node, base: SshSettings) -> SshSettings | None:
        items = node.mapping(_SSH_KEYS)
        if items is None:
            return None
        bastion = base.bastion
        if "bastion" in items:
            bastion = self.bastion(items["bastion"])
        return SshSettings(
            user=self.optional(items, "user", _Node.text, base.user),
            port=self.optional(items, "port", lambda n: n.integer(1, 65535), base.port),
            identity_file=self.optional(items, "identity_file", _Node.text, base.identity_file),
            known_hosts=self.optional(items, "known_hosts", _Node.text, base.known_hosts),
            config_file=self.optional(items, "config_file", _Node.text, base.config_file),
            bastion=bastion,
            connect_timeout=self.optional(
                items, "connect_timeout", lambda n: n.number(0.1), base.connect_timeout
            ),
            keepalive=self.optional(items, "keepalive", lambda n: n.number(0), base.keepalive),
            sudo_password=self.optional(items, "sudo_password", self.secret, base.sudo_password),
        )

    def bastion(self, node: _Node) -> Bastion | None:
        if isinstance(node.node, yaml.ScalarNode):
            raw = node.text()  # user@host:port, or user@[IPv6]:port
            match = _BASTION.fullmatch(raw or "")
            if raw is None or match is None:
                node.problem("expected user@host[:port] or a mapping with host, user, port")
                return None
            host = match["host"].removeprefix("[").removesuffix("]")
            port = int(match["port"] or 22)
            if not _is_address(host):
                node.problem(f"{shown(host)} is neither an IP address (without a zone) nor a host name")
                return None
            if not 1 <= port <= 65535:
                node.problem(f"port {port} is out of range (1 to 65535)")
                return None
            return Bastion(host, match["user"], port)
        items = node.mapping(("host", "user", "port", "identity_file"))
        if items is None:
            return None
        host = self.required(node, items, "host")
        host_text = self.address(host) if host else None
        if host_text is None:
            return None
        return Bastion(
            host_text,
            self.optional(items, "user", _Node.text, None),
            self.optional(items, "port", lambda n: n.integer(1, 65535), 22),
            self.optional(items, "identity_file", _Node.text, None),
        )

    def release_line(self, node: _Node) -> ReleaseLine | None:
        extra = node.string_list()
        if extra is None:
            return None
        try:
            return ReleaseLine.extended(extra)
        except InvalidInput as exc:
            node.problem(exc.message)
            return None

    def installer(self, node: _Node) -> InstallerSettings | None:
        items = node.mapping(_INSTALLER_KEYS)
        if items is None:
            return None
        base = InstallerSettings()
        link = self.optional(items, "link", self.secret, None)
        if link is not None and link.source == "prompt":
            items["link"].problem("the download link comes from {env: VARIABLE} or {file: PATH}")
        file = self.optional(items, "file", _Node.text, None)
        if file is not None and not self.placeholders_known(items["file"], file, ("release",)):
            file = None
        delivery = self.optional(
            items, "delivery", lambda n: n.choice(("server-download", "upload")), base.delivery
        )
        if link is not None and file is not None:
            node.problem("give either link or file, not both")
        if file is not None and delivery == "server-download":
            items["file"].problem("a local installer file needs `delivery: upload`")
        if delivery == "upload" and "file" not in items and "link" not in items:
            items["delivery"].problem(
                "upload delivery needs installer.file (a local installer) or installer.link "
                "(downloaded once on this machine, then uploaded)"
            )
        sha: dict[str, str] = self.optional(items, "sha256", self.checksums, {})
        return InstallerSettings(
            link=link,
            file=file,
            delivery=delivery,
            directory=self.optional(items, "directory", _Node.server_path, base.directory),
            target_dir=self.optional(items, "target_dir", _Node.server_path, None),
            extra_flags=self.optional(items, "extra_flags", lambda n: n.string_list(_Node.flag), ()),
            build=self.optional(items, "build", self.build, None),
            sha256=sha,
            max_minutes=self.optional(items, "max_minutes", lambda n: n.number(0.01), base.max_minutes),
        )

    def build(self, node: _Node) -> str | None:
        raw = node.text()
        if raw is not None and not _BUILD.fullmatch(raw):
            node.problem(f"{shown(raw)} is not a build (letters and digits, e.g. 493375)")
            return None
        return raw

    def checksums(self, node: _Node) -> dict[str, str] | None:
        if not isinstance(node.node, yaml.MappingNode):
            node.problem('expected a mapping of release to sha256, e.g. {"6.12": 3f2a...}')
            return None
        out: dict[str, str] = {}
        for key_node, value_node in node.node.value:
            release = _Node(key_node, node.path, self).text()
            if release is None:
                continue
            value = _Node(value_node, node.child_path(release), self)
            digest = value.text()
            if digest is not None and not _HEX64.fullmatch(digest):
                value.problem("expected 64 hexadecimal characters")
            elif digest is not None:
                out[release] = digest.lower()
        return out

    def commands(self, node: _Node) -> Commands | None:
        names = tuple(Commands.__dataclass_fields__)
        items = node.mapping(names)
        if items is None:
            return None
        values: dict[str, Any] = {}
        for key, child in items.items():
            if key == "backup" and isinstance(child.node, yaml.ScalarNode) and child.node.value == "":
                values[key] = ""
                continue
            if key == "backup_dir":
                text = child.server_path()
            else:
                text = child.text(multiline=True)
                if text is not None and not self.placeholders_known(child, text, _PLACEHOLDERS[key]):
                    text = None
            if text is not None:
                values[key] = text
        return Commands(**values)

    def placeholders_known(self, node: _Node, template: str, allowed: tuple[str, ...]) -> bool:
        try:
            names = placeholders(template)
        except ValueError as exc:
            detail = f"{shown(exc.args[0], 40)} is not a placeholder; " if exc.args else "unbalanced braces; "
            node.problem(detail + "write {{ and }} for literal braces")
            return False
        unknown = next((n for n in names if n not in allowed), None)
        if unknown is not None:
            node.problem(
                f"unknown placeholder {{{shown(unknown, 40)[1:-1]}}}; this command knows "
                + (", ".join(f"{{{a}}}" for a in allowed) or "none (write {{ and }} for braces)")
            )
            return False
        quoted = quoted_placeholders(template)
        if quoted:
            node.problem(
                f"{{{quoted[0]}}} is inside quotes; xsoar-mt quotes every value it fills in, so write "
                "placeholders outside quotes"
            )
            return False
        literal = "".join(text for text, *_ in string.Formatter().parse(template))
        per_server = next((p for p in _PER_SERVER_TEXT if p in literal), None)
        if per_server is not None:
            node.problem(
                f"the literal text {per_server} would be filled in per server; write {per_server} "
                "as a placeholder, or avoid that text"
            )
            return False
        return True

    def health(self, node: _Node) -> Health | None:
        items = node.mapping(("timeout", "interval", "max_interval"))
        if items is None:
            return None
        base = Health()
        return Health(
            timeout=self.optional(items, "timeout", lambda n: n.number(1), base.timeout),
            interval=self.optional(items, "interval", lambda n: n.number(0.01), base.interval),
            max_interval=self.optional(items, "max_interval", lambda n: n.number(0.01), base.max_interval),
        )

    def durations(self, node: _Node) -> dict[str, float] | None:
        items = node.mapping(DURATION_KEYS)
        if items is None:
            return None
        return {k: v for k, n in items.items() if (v := n.number()) is not None}

    # -- groups and servers -------------------------------------------------------------------------

    def group(self, node: _Node, name: str | None, *, is_main: bool, context: _GroupContext) -> Group | None:
        keys = (
            ("server", "ha", "dr", "tenants", "wave")
            if is_main
            else ("name", "server", "ha", "dr", "tenants", "wave")
        )
        items = node.mapping(keys)
        if items is None:
            return None
        wave: int | None = None
        if "wave" in items:
            if is_main:
                items["wave"].problem("main is always upgraded first and alone; `wave` orders host groups")
            else:
                wave = items["wave"].integer(1, 1000, "a whole number of 1 or more (lower goes first)")
        if name is None:
            name_node = self.required(node, items, "name")
            name = self.name(name_node, "group") if name_node else None
            if name == "main":
                assert name_node is not None
                name_node.problem("`main` is reserved for the main server")
                name = None
        shapes = [k for k in ("server", "ha", "dr") if k in items]
        if len(shapes) != 1:
            found = ", ".join(shapes) if shapes else "none"
            node.problem(f"give exactly one of server, ha or dr (found {found})")
            return None
        if name is None:
            return None
        shape = shapes[0]
        shape_node = items[shape]
        load_balancer: str | None = None
        servers: list[Server] = []
        if shape == "server":
            topology = Topology.SINGLE
            server = self.server(shape_node, name, Role.SINGLE, context)
            servers = [server] if server else []
        elif shape == "ha":
            topology = Topology.HA
            ha = shape_node.mapping(("load_balancer", "servers"))
            if ha is not None:
                if is_main:
                    lb_node = self.required(shape_node, ha, "load_balancer")
                    load_balancer = self.url(lb_node) if lb_node else None
                else:
                    load_balancer = self.optional(ha, "load_balancer", self.url, None)
                servers_node = self.required(shape_node, ha, "servers")
                listed = servers_node.sequence() if servers_node else None
                if listed is not None:
                    if len(listed) < 2:
                        assert servers_node is not None
                        servers_node.problem(f"an HA group needs at least two servers (found {len(listed)})")
                    for item in listed:
                        server = self.server(item, name, Role.APP, context)
                        if server:
                            servers.append(server)
        else:
            topology = Topology.DR
            dr = shape_node.mapping(("primary", "secondary"))
            if dr is not None:
                for role in (Role.PRIMARY, Role.SECONDARY):
                    member = dr.get(role.value)
                    if member is None:
                        shape_node.problem(
                            f"a DR pair needs exactly one primary and one secondary; `{role.value}` is missing"
                        )
                        continue
                    if isinstance(member.node, yaml.SequenceNode):
                        member.problem(f"a DR pair has exactly one {role.value}, not a list")
                        continue
                    server = self.server(member, name, role, context)
                    if server:
                        servers.append(server)
        tenants = self.tenants(items.get("tenants"), name, context)
        if not servers:
            return None
        made = Group(name, is_main, topology, tuple(servers), tenants, load_balancer, wave)
        self.places[id(made)] = (node.line, node.path)
        return made

    def server(self, node: _Node, group: str, role: Role, context: _GroupContext) -> Server | None:
        items = node.mapping(_SERVER_KEYS)
        if items is None:
            return None
        name_node = self.required(node, items, "name")
        address_node = self.required(node, items, "address")
        name = self.name(name_node, "server") if name_node else None
        address = self.address(address_node) if address_node else None
        ssh = context.ssh
        if "ssh" in items:
            ssh = self.ssh(items["ssh"], context.ssh) or context.ssh
        if "ssh_port" in items:
            port = items["ssh_port"].integer(1, 65535)
            if port is not None:
                ssh = replace(ssh, port=port)
        version: Version | None = None
        if "version" in items:
            version = self.version(items["version"], context.releases)
        if name is None or address is None:
            return None
        made = Server(name, address, group, role, ssh, version, node.line)
        self.places[id(made)] = (node.line, node.path)
        return made

    def name(self, node: _Node, kind: str) -> str | None:
        """A group, server or tenant name: letters, digits, . _ - and no longer than its kind allows."""
        name = node.text()
        if name is None:
            return None
        longest = TENANT_NAME_MAX if kind == "tenant" else NAME_MAX
        if not _NAME.fullmatch(name):
            node.problem(
                f"tenant name {shown(name)} must be letters, digits, . _ - with no white space"
                if kind == "tenant"
                else f"{shown(name)} is not a valid {kind} name (letters, digits, . _ -)"
            )
        elif len(name) > longest:
            node.problem(
                f"tenant name {shown(name)} is {len(name)} characters long; at most {longest}"
                if kind == "tenant"
                else f"{shown(name)} is {len(name)} characters long; a {kind} name has at most {longest}"
            )
        else:
            return name
        return None

    def address(self, node: _Node) -> str | None:
        raw = node.text()
        if raw is None:
            return None
        if not _is_address(raw):
            node.problem(f"{shown(raw)} is neither an IP address (without a zone) nor a host name")
            return None
        return raw

    def version(self, node: _Node, releases: ReleaseLine) -> Version | None:
        raw = node.text()
        if raw is None:
            return None
        try:
            version = Version.parse(raw)
            releases.index(version.release)
        except InvalidInput as exc:
            node.problem(exc.message)
            return None
        return version

    def tenants(self, node: _Node | None, group: str, context: _GroupContext) -> tuple[Tenant, ...]:
        if node is None:
            return ()
        items = node.sequence()
        if items is None:
            return ()
        tenants: list[Tenant] = []
        next_port = context.tenant_port_base
        used: dict[int, str] = {}
        for item in items:
            fields = item.mapping(("name", "port"))
            if fields is None:
                continue
            name_node = self.required(item, fields, "name")
            name = self.name(name_node, "tenant") if name_node else None
            if "port" in fields:
                port = fields["port"].integer(1, 65535)
            else:
                while next_port in used.keys() | {context.communication_port}:
                    next_port += 1
                port = next_port
            if port is not None and port in used:
                fields.get("port", item).problem(f"port {port} is already used by tenant {used[port]}")
                port = None
            elif port is not None and port == context.communication_port:
                fields["port"].problem(f"port {port} is the communication port")
                port = None
            if name is None or port is None:
                continue
            used[port] = name
            if port == next_port:
                next_port += 1
            tenant = Tenant(name, port, group)
            self.places[id(tenant)] = (item.line, item.path)
            tenants.append(tenant)
        return tuple(tenants)

    # -- rules across the whole inventory -----------------------------------------------------------

    def cross_checks(self, inv: Inventory) -> None:
        names: dict[str, Server] = {}
        endpoints: dict[tuple[str, int], Server] = {}
        for server in inv.servers:
            line, path = self.places[id(server)]
            if server.name in names:
                self.problem(
                    line,
                    f"{path}.name",
                    f"duplicate server name {server.name} (also at line {names[server.name].line})",
                )
            names.setdefault(server.name, server)
            endpoint = (server.address, server.ssh_port)
            if endpoint in endpoints:
                other = endpoints[endpoint]
                self.problem(
                    line,
                    f"{path}.address",
                    f"{server.address}:{server.ssh_port} is also server {other.name} (line {other.line})",
                )
            endpoints.setdefault(endpoint, server)
        group_names: set[str] = set()
        tenant_names: dict[str, str] = {}
        for group in inv.groups:
            line, path = self.places[id(group)]
            if group.name in group_names:
                self.problem(line, f"{path}.name", f"duplicate host group name {group.name}")
            group_names.add(group.name)
            if group.topology is Topology.HA and inv.database != "elasticsearch":
                self.problem(
                    line, f"{path}.ha", "HA needs Elasticsearch; set deployment.database: elasticsearch"
                )
            if group.topology is Topology.DR and inv.database == "elasticsearch":
                self.problem(
                    line, f"{path}.dr", "DR (Live Backup) works only with BoltDB, not with Elasticsearch"
                )
            for tenant in group.tenants:
                if tenant.name in tenant_names:
                    tenant_line, tenant_path = self.places[id(tenant)]
                    self.problem(
                        tenant_line,
                        f"{tenant_path}.name",
                        f"duplicate tenant {tenant.name} (also in {tenant_names[tenant.name]})",
                    )
                tenant_names.setdefault(tenant.name, group.name)
        topologies = {g.topology for g in inv.groups}
        if Topology.HA in topologies and Topology.DR in topologies:
            first_dr = next(g for g in inv.groups if g.topology is Topology.DR)
            line, path = self.places[id(first_dr)]
            self.problem(line, f"{path}.dr", "DR (Live Backup) cannot be combined with HA in one deployment")
        self.host_versions(inv)

    def host_versions(self, inv: Inventory) -> None:
        main_versions = [s.version for s in inv.main.servers if s.version is not None]
        if not main_versions:
            return
        oldest_main = min(main_versions)
        newest_allowed = inv.releases.index(oldest_main.release)
        for group in inv.hosts:
            for server in group.servers:
                if server.version is not None and inv.releases.index(server.version.release) > newest_allowed:
                    line, path = self.places[id(server)]
                    self.problem(
                        line,
                        f"{path}.version",
                        f"host runs {server.version}, newer than main ({oldest_main}); "
                        "a host must never run a newer release than main",
                    )


def _is_address(text: str) -> bool:
    """An IPv4 address, an IPv6 address without a zone (`%eth0` may hold any character), or an RFC 1123
    host name whose last label is not all digits (that would be a mistyped IPv4 address)."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    return _HOSTNAME.fullmatch(text) is not None and not text.rsplit(".", 1)[-1].isdigit()


@dataclass
class _GroupContext:
    ssh: SshSettings
    releases: ReleaseLine
    tenant_port_base: int
    communication_port: int
