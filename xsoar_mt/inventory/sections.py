"""Reading the inventory's settings sections (ssh, installer, commands, health, durations, releases) and
the values they share (URLs, addresses, secrets), each from a YAML node, its problems kept on the node."""

from __future__ import annotations

import ipaddress
import re
import string
from typing import Any

import yaml

from xsoar_mt.errors import InvalidInput, shown
from xsoar_mt.inventory.model import (
    Bastion,
    Commands,
    Health,
    InstallerSettings,
    SshSettings,
)
from xsoar_mt.inventory.node import Node, optional, required
from xsoar_mt.releases import ReleaseLine
from xsoar_mt.secrets import SecretRef
from xsoar_mt.shellwords import placeholders, quoted_placeholders
from xsoar_mt.step_minutes import DURATION_KEYS

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
    "restore": ("archive", "server", "address"),
    "version": ("port", "address"),
    "health": ("port", "address"),
}
# Every pattern is used with fullmatch: `$` would also match before a final newline ("m1\n").
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


def read_url(node: Node) -> str | None:
    """An http(s) URL whose host is an IP address (IPv6 in brackets) or a host name."""
    raw = node.text()
    if raw is None:
        return None
    match = _URL.fullmatch(raw)
    host = match["host"] if match else ""
    if match is None or not is_address(host[1:-1] if host.startswith("[") else host):
        node.problem(f"{shown(raw)} is not an http(s) URL (https://HOST[:PORT][/PATH])")
        return None
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        node.problem(f"{shown(raw)}: port {match['port']} is out of range (1 to 65535)")
        return None
    return raw


def read_secret_ref(node: Node) -> SecretRef | None:
    if isinstance(node.node, yaml.ScalarNode):
        node.problem(
            "a secret is never written in the inventory; use {env: VARIABLE}, {file: PATH} or {prompt: true}"
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


def read_ssh(node: Node, base: SshSettings) -> SshSettings | None:
    items = node.mapping(_SSH_KEYS)
    if items is None:
        return None
    bastion = base.bastion
    if "bastion" in items:
        bastion = read_bastion(items["bastion"])
    return SshSettings(
        user=optional(items, "user", Node.text, base.user),
        port=optional(items, "port", lambda n: n.integer(1, 65535), base.port),
        identity_file=optional(items, "identity_file", Node.text, base.identity_file),
        known_hosts=optional(items, "known_hosts", Node.text, base.known_hosts),
        config_file=optional(items, "config_file", Node.text, base.config_file),
        bastion=bastion,
        connect_timeout=optional(items, "connect_timeout", lambda n: n.number(0.1), base.connect_timeout),
        keepalive=optional(items, "keepalive", lambda n: n.number(0), base.keepalive),
        sudo_password=optional(items, "sudo_password", read_secret_ref, base.sudo_password),
    )


def read_bastion(node: Node) -> Bastion | None:
    if isinstance(node.node, yaml.ScalarNode):
        raw = node.text()  # user@host:port, or user@[IPv6]:port
        match = _BASTION.fullmatch(raw or "")
        if raw is None or match is None:
            node.problem("expected user@host[:port] or a mapping with host, user, port")
            return None
        host = match["host"].removeprefix("[").removesuffix("]")
        port = int(match["port"] or 22)
        if not is_address(host):
            node.problem(f"{shown(host)} is neither an IP address (without a zone) nor a host name")
            return None
        if not 1 <= port <= 65535:
            node.problem(f"port {port} is out of range (1 to 65535)")
            return None
        return Bastion(host, match["user"], port)
    items = node.mapping(("host", "user", "port", "identity_file"))
    if items is None:
        return None
    host = required(node, items, "host")
    host_text = read_address(host) if host else None
    if host_text is None:
        return None
    return Bastion(
        host_text,
        optional(items, "user", Node.text, None),
        optional(items, "port", lambda n: n.integer(1, 65535), 22),
        optional(items, "identity_file", Node.text, None),
    )


def read_release_line(node: Node) -> ReleaseLine | None:
    extra = node.string_list()
    if extra is None:
        return None
    try:
        return ReleaseLine.extended(extra)
    except InvalidInput as exc:
        node.problem(exc.message)
        return None


def read_installer(node: Node) -> InstallerSettings | None:
    items = node.mapping(_INSTALLER_KEYS)
    if items is None:
        return None
    base = InstallerSettings()
    link = optional(items, "link", read_secret_ref, None)
    if link is not None and link.source == "prompt":
        items["link"].problem("the download link comes from {env: VARIABLE} or {file: PATH}")
    file = optional(items, "file", Node.text, None)
    if file is not None and not placeholders_known(items["file"], file, ("release",)):
        file = None
    delivery = optional(items, "delivery", lambda n: n.choice(("server-download", "upload")), base.delivery)
    if link is not None and file is not None:
        node.problem("give either link or file, not both")
    if file is not None and delivery == "server-download":
        items["file"].problem("a local installer file needs `delivery: upload`")
    if delivery == "upload" and "file" not in items and "link" not in items:
        items["delivery"].problem(
            "upload delivery needs installer.file (a local installer) or installer.link "
            "(downloaded once on this machine, then uploaded)"
        )
    sha: dict[str, str] = optional(items, "sha256", read_checksums, {})
    return InstallerSettings(
        link=link,
        file=file,
        delivery=delivery,
        directory=optional(items, "directory", Node.server_path, base.directory),
        target_dir=optional(items, "target_dir", Node.server_path, None),
        extra_flags=optional(items, "extra_flags", lambda n: n.string_list(Node.flag), ()),
        build=optional(items, "build", read_build, None),
        sha256=sha,
        max_minutes=optional(items, "max_minutes", lambda n: n.number(0.01), base.max_minutes),
    )


def read_build(node: Node) -> str | None:
    raw = node.text()
    if raw is not None and not _BUILD.fullmatch(raw):
        node.problem(f"{shown(raw)} is not a build (letters and digits, e.g. 493375)")
        return None
    return raw


def read_checksums(node: Node) -> dict[str, str] | None:
    if not isinstance(node.node, yaml.MappingNode):
        node.problem('expected a mapping of release to sha256, e.g. {"6.12": 3f2a...}')
        return None
    out: dict[str, str] = {}
    for key_node, value_node in node.node.value:
        release = Node(key_node, node.path, node.reader).text()
        if release is None:
            continue
        value = Node(value_node, node.child_path(release), node.reader)
        digest = value.text()
        if digest is not None and not _HEX64.fullmatch(digest):
            value.problem("expected 64 hexadecimal characters")
        elif digest is not None:
            out[release] = digest.lower()
    return out


def read_commands(node: Node) -> Commands | None:
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
            if text is not None and not placeholders_known(child, text, _PLACEHOLDERS[key]):
                text = None
        if text is not None:
            values[key] = text
    return Commands(**values)


def placeholders_known(node: Node, template: str, allowed: tuple[str, ...]) -> bool:
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


def read_health(node: Node) -> Health | None:
    items = node.mapping(("timeout", "interval", "max_interval"))
    if items is None:
        return None
    base = Health()
    return Health(
        timeout=optional(items, "timeout", lambda n: n.number(1), base.timeout),
        interval=optional(items, "interval", lambda n: n.number(0.01), base.interval),
        max_interval=optional(items, "max_interval", lambda n: n.number(0.01), base.max_interval),
    )


def read_durations(node: Node) -> dict[str, float] | None:
    items = node.mapping(DURATION_KEYS)
    if items is None:
        return None
    return {k: v for k, n in items.items() if (v := n.number()) is not None}


# -- groups and servers -------------------------------------------------------------------------


def read_address(node: Node) -> str | None:
    raw = node.text()
    if raw is None:
        return None
    if not is_address(raw):
        node.problem(f"{shown(raw)} is neither an IP address (without a zone) nor a host name")
        return None
    return raw


# An IPv4 address as ipaddress reads it: four numbers 0-255, no leading zeros, ASCII digits only.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def is_address(text: str) -> bool:
    """An IPv4 address, an IPv6 address without a zone (`%eth0` may hold any character), or an RFC 1123
    host name whose last label is not all digits (that would be a mistyped IPv4 address)."""
    if "%" in text:
        return False
    if _DOTTED_QUAD.fullmatch(text):  # what ip_address would accept, without its object per address
        return True
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    return _HOSTNAME.fullmatch(text) is not None and not text.rsplit(".", 1)[-1].isdigit()
