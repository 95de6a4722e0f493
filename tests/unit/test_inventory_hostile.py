"""Hostile and broken inventories: each is refused with one line naming file:line, never a crash or a hang."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.unit.inventory_text import BASE, parse, problems
from xsoar_mt.errors import InventoryError
from xsoar_mt.inventory import load_inventory


def with_(extra: str) -> str:
    return BASE + extra


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "installer: {directory: '/var/tmp/{server}'}\n",
            "inv.yaml:12: installer.directory: '/var/tmp/{server}': braces are not allowed in a path",
        ),
        (
            "installer: {target_dir: -rf}\n",
            "inv.yaml:12: installer.target_dir: '-rf': a path must not start with -",
        ),
        (
            'commands: {backup_dir: "/x\\ty"}\n',
            "inv.yaml:12: commands.backup_dir: '/x\\ty' holds the control character '\\t'",
        ),
        (
            "installer: {extra_flags: ['-x={y}']}\n",
            "inv.yaml:12: installer.extra_flags[0]: '-x={y}': braces are not allowed in a flag",
        ),
        ("installer: {build: '1 2'}\n", "inv.yaml:12: installer.build: '1 2' is not a build"),
        (
            "commands: {stop: \"sudo stop '{server}'\"}\n",
            "inv.yaml:12: commands.stop: {server} is inside quotes",
        ),
        (
            "commands: {stop: 'echo {{server}}'}\n",
            "inv.yaml:12: commands.stop: the literal text {server} would be filled in per server",
        ),
        (
            "commands: {stop: 'echo {server.x}'}\n",
            "inv.yaml:12: commands.stop: '{server.x}' is not a placeholder",
        ),
        ("health: {timeout: nan}\n", "inv.yaml:12: health.timeout: 'nan' is out of range"),
        ("ssh: {connect_timeout: 1e400}\n", "inv.yaml:12: ssh.connect_timeout: '1e400' is out of range"),
        ("ssh: {bastion: 'jump.example:70000'}\n", "inv.yaml:12: ssh.bastion: port 70000 is out of range"),
        ("ssh: {bastion: 'u@fe80::1%eth0'}\n", "inv.yaml:12: ssh.bastion: expected user@host[:port]"),
        ("ssh: {bastion: {host: 'a;b'}}\n", "inv.yaml:12: ssh.bastion.host: 'a;b' is neither an IP address"),
        ("deployment2: 1\n", "inv.yaml:12: deployment2: unknown key; did you mean `deployment`?"),
        ("? [a, b]\n: 1\n", "inv.yaml:12: a key must be a plain word"),
    ],
)
def test_a_hostile_value_is_refused_naming_its_line(extra: str, expected: str) -> None:
    found = problems(with_(extra))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_load_balancer_url_must_be_http_with_a_real_host() -> None:
    text = BASE.replace(
        "database: bolt", "database: elasticsearch\n  elasticsearch_url: 'https://es:9200/x y'"
    )
    (problem,) = problems(text)
    assert problem.startswith(
        "inv.yaml:5: deployment.elasticsearch_url: 'https://es:9200/x y' is not an http(s) URL"
    )


def test_a_deployment_name_with_a_control_character_is_refused() -> None:
    (problem,) = problems(BASE.replace("name: acme", 'name: "acme\\x1b[2J"'))
    assert problem.startswith(
        "inv.yaml:3: deployment.name: 'acme\\x1b[2J' holds the control character '\\x1b'"
    )


def test_a_huge_value_is_cut_in_the_message() -> None:
    huge = "x" * 5_000_000
    (problem,) = problems(BASE.replace("name: emea-1", f"name: '{huge} '"))
    assert len(problem) < 400
    assert problem.endswith("... (5000001 characters) is not a valid server name (letters, digits, . _ -)")


@pytest.mark.parametrize(
    ("old", "key", "limit", "expected"),
    [
        ("name: emea-1", "hosts[0].server.name", 63, "a server name has at most 63"),
        ("- name: emea\n", "hosts[0].name", 63, "a group name has at most 63"),
        ("name: globex", "hosts[0].tenants[0].name", 128, "at most 128"),
        ("name: acme", "deployment.name", 128, "at most 128"),
    ],
)
def test_a_name_longer_than_its_limit_is_refused_and_one_at_the_limit_is_kept(
    old: str, key: str, limit: int, expected: str
) -> None:
    def named(name: str) -> str:
        return BASE.replace(old, old.split(": ")[0] + ": " + name + ("\n" if old.endswith("\n") else ""))

    inventory = parse(named("n" * limit))
    names = {s.name for s in inventory.servers} | {g.name for g in inventory.groups}
    names |= {t.name for g in inventory.groups for t in g.tenants} | {inventory.name}
    assert "n" * limit in names
    (problem,) = problems(named("n" * (limit + 1)))
    assert problem.startswith("inv.yaml:") and f": {key}: " in problem, problem
    assert problem.endswith(f"is {limit + 1} characters long; {expected}"), problem


def test_aliases_that_multiply_the_inventory_are_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    started = time.monotonic()
    found = problems(BASE + "\n".join(lines) + "\n")
    assert time.monotonic() - started < 5
    assert len(found) == 1 and "its aliases (*name) expand to more than" in found[0], found
    assert found[0].startswith("inv.yaml:21: ")  # a9, the key that multiplies most


@pytest.mark.parametrize("cycle", ["z: &z [*z]\n", "z: &z {a: [1, {b: *z}]}\n"])
def test_an_alias_that_holds_itself_is_refused_not_followed_forever(cycle: str) -> None:
    assert problems(BASE + cycle) == ["inv.yaml:12: an alias (*name) refers to the node that holds it"]


def test_an_alias_reused_for_each_servers_ssh_settings_is_fine() -> None:
    text = BASE.replace("database: bolt", "database: bolt\nssh: &ssh {user: ops, port: 22}")
    assert parse(text).servers[0].ssh.user == "ops"


def test_nesting_a_thousand_levels_deep_is_refused_as_yaml() -> None:
    (problem,) = problems(BASE + "x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problem.startswith("inv.yaml:12: not valid YAML:"), problem


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01\x02binary\xff", ":1: the inventory is not UTF-8 text (byte 0xff)"),
        (
            BASE.replace("acme", "acm\u00e9").encode("latin-1"),
            ":3: the inventory is not UTF-8 text (byte 0xe9)",
        ),
        (b'inventory_version: 1\nx: "\x07"\n', ":2: not valid YAML:"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_refused_with_its_line(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "inv.yaml"
    path.write_bytes(content)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}{expected}"), problem
