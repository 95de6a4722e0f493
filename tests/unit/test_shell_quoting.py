"""Every value from the inventory reaches a remote command as exactly the words it was meant to be.

The property test writes an inventory whose names, addresses, tenants, paths, ports, placeholders' values
and extra flags are arbitrary text, then either the inventory is refused (every problem naming
file:line), or every command xsoar-mt would send splits (shlex) into exactly the intended words. The
intended words come from an oracle that does not quote anything: the same inventory with each value
replaced by a plain marker, split, and the markers replaced by the real values in the words.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests import inventories as make
from xsoar_mt.checks.preflight import _survey_request
from xsoar_mt.checks.survey import survey_script
from xsoar_mt.engine import Executor, RunSecrets
from xsoar_mt.engine.installer_job import InstallFiles
from xsoar_mt.errors import InventoryError
from xsoar_mt.events import Fanout
from xsoar_mt.inventory import Inventory, url_address
from xsoar_mt.lock import DeploymentLock
from xsoar_mt.observed import Marker, Observed
from xsoar_mt.plan import Action, Plan
from xsoar_mt.planner import install_command, plan_upgrade
from xsoar_mt.probe import facts_script, marker_command, parse_facts, version_command
from xsoar_mt.releases import Version
from xsoar_mt.remote import CommandKind, Result, elevate, uses_sudo
from xsoar_mt.shellwords import LATER, fill, fill_per_server, outside_quotes, placeholders, squash, word
from xsoar_mt.validation import health_url_command, tenants_command

# Text a shell treats specially, plus letters: most draws mix the two.
_SHELLY = " \t\n$`'\"\\;&|<>(){}[]*?~#!%=:,./-@+^aZ09é"
_NASTY = [
    "/var/tmp/b$(touch X)",
    "/var/tmp/with space",
    "fe80::1%x;id>pwned;",
    "m1\n",
    "a'b",
    "'; rm -rf / #",
    "$HOME",
    "-rf",
    "{server}",
    "x\x00y",
    "sudo id",
    "  ",
    "",
]
values = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(alphabet=_SHELLY, min_size=1, max_size=30),
    st.sampled_from(_NASTY),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),  # the valid names and host names
    st.from_regex(r"[0-9a-f:]{2,20}", fullmatch=True),  # IPv6-like
)


def mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = values) -> st.SearchStrategy[Any]:
    """29 draws in 30 from `valid`: an inventory has a dozen such fields, and most examples must pass
    validation for their commands to be checked at all."""
    return st.integers(0, 29).flatmap(lambda n: odd if n == 13 else valid)


_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
names = mostly(st.tuples(st.sampled_from(_ALNUM), st.text(_ALNUM + "._-", max_size=12)).map("".join))
_labels = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8), max_size=2)
addresses = mostly(
    st.one_of(
        st.ip_addresses().map(str),
        st.tuples(st.sampled_from("abcxyz"), _labels).map(
            lambda t: ".".join([t[0] + "-0", *t[1]]) + ".example"
        ),
    )
)
ports = mostly(st.integers(1, 65535), st.one_of(st.integers(-5, 70000), values))

_TEMPLATES = [
    {},
    {
        "backup": "mkdir -p {backup_dir} && sudo tar -czf {backup_dir}/demisto-{server}-{version}.tar.gz etc/demisto.conf",
        "stop": "sudo systemctl stop demisto # {server} at {address}",
        "version": "curl -sk --max-time 10 -H @- https://127.0.0.1:{port}/about # asked on {address}",
        "health": "curl -sk -o /dev/null -w '%{{http_code}}' https://localhost:{port}/health # {address}",
        "install": "sudo {installer} {target} -- -multi-tenant -port={port} {flags} # {server}",
    },
]


@dataclass(frozen=True)
class Fields:
    main_a: Any
    main_b: Any
    host: Any
    group: Any
    addresses: tuple[Any, Any, Any]
    tenants: tuple[Any, Any]
    ssh_port: Any
    communication_port: Any
    tenant_port: Any
    directory: Any
    target_dir: Any
    backup_dir: Any
    extra_flags: tuple[Any, ...]
    upload: bool
    templates: int


def plain(**changes: Any) -> Fields:
    """Ordinary values (a DR main m-a/m-b, host h1 in group emea), with `changes`."""
    base = Fields(
        "m-a",
        "m-b",
        "h1",
        "emea",
        ("10.0.0.1", "10.0.0.2", "10.0.0.3"),
        ("t1", "t2"),
        22,
        443,
        18502,
        "/var/tmp/x",
        None,
        "/var/tmp/b",
        (),
        False,
        0,
    )
    return replace(base, **changes)


def distinct(drawn: list[Any], other: Any) -> list[Any]:
    """The values with each repeat replaced by `other(index, value)` (drawing unique lists is slow)."""
    seen: set[Any] = set()
    out = []
    for i, value in enumerate(drawn):
        out.append(value if value not in seen else other(i, value))
        seen.add(out[-1])
    return out


@st.composite
def fields(draw: st.DrawFn) -> Fields:
    """Distinct names, addresses and ports (a duplicate is refused, and is not what this test is about)."""
    main_a, main_b, host, group = distinct([draw(names) for _ in range(4)], lambda i, v: f"{v}-{i}")
    a, b, c = distinct([draw(addresses) for _ in range(3)], lambda i, v: f"192.0.2.{i}")
    tenants = distinct([draw(names) for _ in range(2)], lambda i, v: f"{v}-{i}")
    return Fields(
        main_a, main_b, host, group, (a, b, c), (tenants[0], tenants[1]),
        ssh_port=draw(ports),
        communication_port=draw(mostly(st.integers(1, 1024), ports)),
        tenant_port=draw(mostly(st.integers(2048, 65535), ports)),
        directory=draw(values),
        target_dir=draw(st.none() | values),
        backup_dir=draw(values),
        extra_flags=tuple(draw(st.lists(values, max_size=3))),
        upload=draw(st.booleans()),
        templates=draw(st.sampled_from(range(len(_TEMPLATES)))),
    )  # fmt: skip


def inventory_data(f: Fields) -> dict[str, Any]:
    installer: dict[str, Any] = {"directory": f.directory, "extra_flags": list(f.extra_flags)}
    if f.target_dir is not None:
        installer["target_dir"] = f.target_dir
    if f.upload:
        installer.update(delivery="upload", file="installers/demisto-{release}.sh")
    else:
        installer["link"] = {"env": "XSOAR_DOWNLOAD_LINK"}
    return make.inventory(
        make.main(
            make.dr(
                make.server(f.main_a, f.addresses[0], "6.10.0"),
                make.server(f.main_b, f.addresses[1], "6.10.0"),
            ),
            [f.tenants[0]],
        ),
        [
            make.host(
                f.group,
                make.single(make.server(f.host, f.addresses[2], "6.10.0", ssh_port=f.ssh_port)),
                [{"name": f.tenants[1], "port": f.tenant_port}],
            )
        ],
        name="quoting",
        deployment={"communication_port": f.communication_port},
        installer=installer,
        commands={"backup_dir": f.backup_dir, **_TEMPLATES[f.templates]},
    )


def load(data: dict[str, Any]) -> Inventory:
    return make.parsed(data, dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True)


class Markers:
    """A plain marker for each distinct value: `XMK<n>Q`, needing no quotes, valid in every field."""

    def __init__(self) -> None:
        self.real: dict[str, str] = {}
        self._of: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        if value not in self._of:
            marker = f"XMK{len(self._of)}Q"
            self._of[value], self.real[marker] = marker, value
        return self._of[value]

    def restore(self, text: str, directory: str) -> str:
        """The real values back in a word. Two rules that are not quoting: the installer's path drops the
        directory's trailing slashes, and a URL writes an IPv6 address in brackets."""
        text = text.replace(f"{directory}/demisto-", f"{self.real[directory].rstrip('/')}/demisto-")
        text = re.sub(r"(?<=://)XMK\d+Q", lambda m: url_address(self.real[m.group(0)]), text)
        return re.sub(r"XMK\d+Q", lambda m: self.real[m.group(0)], text)


def marked(f: Fields, markers: Markers) -> Fields:
    """The same inventory with every text value replaced by its marker (numbers stay as they are)."""

    def m(value: Any) -> Any:
        return markers(value) if isinstance(value, str) else value

    return Fields(
        m(f.main_a), m(f.main_b), m(f.host), m(f.group),
        (m(f.addresses[0]), m(f.addresses[1]), m(f.addresses[2])),
        (m(f.tenants[0]), m(f.tenants[1])),
        m(f.ssh_port), m(f.communication_port), m(f.tenant_port),
        m(f.directory), m(f.target_dir), m(f.backup_dir),
        tuple(m(x) for x in f.extra_flags),
        f.upload, f.templates,
    )  # fmt: skip


def commands_of(inventory: Inventory, plan: Plan) -> list[str]:
    """Every command xsoar-mt would send for this inventory: each step's on each of its servers (as the
    executor fills it in), the version probe, the survey, the install with -target, validation's."""
    executor = Executor(inventory, plan, lambda name: None, Fanout(), Observed(), RunSecrets())  # type: ignore[arg-type,return-value]  # no step is run
    out = []
    # One clock for both sides: {stamp} is the second a backup starts, and the real commands and the
    # oracle's were made in different seconds now and then (a failure at random on a slow machine).
    with mock.patch("xsoar_mt.engine.context.time.gmtime", return_value=time.gmtime(1_800_000_000)):
        for step in plan.steps:
            if step.action is not Action.VALIDATE:
                out += [
                    executor.run.command(server, step.command_on(server), CommandKind.OTHER)
                    for server in step.servers
                ]
    main = inventory.main.servers[0]
    accounts = [t.account for g in inventory.groups for t in g.tenants]
    out.append(tenants_command(inventory, main.address, accounts))
    out.append(
        health_url_command(f"https://{url_address(main.address)}:{inventory.communication_port}/health")
    )
    # The survey script is long and the same for every server but main (which also asks the API): two do.
    out.append(survey_script(_survey_request(inventory, main.name, "6.12", True, True)))
    out.append(survey_script(_survey_request(inventory, inventory.servers[-1].name, "6.12", True, True)))
    for server in inventory.servers:
        out.append(version_command(inventory, server.name))
        extracted = install_command(inventory, "6.12", f"{inventory.installer.directory}/extract")
        out.append(executor.run.command(server.name, extracted, CommandKind.OTHER))
    return out


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields())
@example(
    plain(
        directory="/var/tmp/with space",
        backup_dir="/var/tmp/b$(touch X)",
        extra_flags=("-x y", "$(id)"),
        templates=1,
    )
)
def test_every_value_is_refused_with_file_line_or_reaches_the_servers_as_exactly_its_words(f: Fields) -> None:
    try:
        inventory = load(inventory_data(f))
    except InventoryError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert re.match(r"inv\.yaml:\d+: ", problem), problem
            assert "\n" not in problem, problem
        return
    # Names and addresses are always bare words: the executor fills {server} and {address} into a
    # command after wrapping it in quotes of its own (a detached install), which is safe only so.
    assert all(word(s.name) == s.name and word(s.address) == s.address for s in inventory.servers)
    markers = Markers()
    m = marked(f, markers)
    oracle = load(inventory_data(m))
    real_plan = plan_upgrade(inventory, inventory.versions(), "6.12")
    oracle_plan = plan_upgrade(oracle, oracle.versions(), "6.12")
    real, expected = commands_of(inventory, real_plan), commands_of(oracle, oracle_plan)
    assert len(real) == len(expected)
    for command, model in zip(real, expected, strict=True):
        words = [markers.restore(w, m.directory) for w in shlex.split(model)]
        assert shlex.split(command) == words, command


def test_backup_dir_with_a_command_substitution_stays_one_literal_word() -> None:
    data = inventory_data(plain(directory="/var/tmp/xsoar-mt", backup_dir="/var/tmp/b$(touch X)"))
    inventory = load(data)
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    backup = next(s for s in plan.steps if s.action is Action.BACKUP)
    assert shlex.split(backup.command) == [
        "sudo", "install", "-d", "-m", "0700", "/var/tmp/b$(touch X)", "&&",
        "sudo", "sh", "-c", 'umask 077 && exec tar "$@"', "tar", "-czf",
        "/var/tmp/b$(touch X)/demisto-before-6.11-{stamp}.tar.gz",
        "-C", "/", "etc/demisto.conf", "var/lib/demisto",
    ]  # fmt: skip
    assert "'/var/tmp/b$(touch X)'" in backup.command  # single quotes: the shell expands nothing inside


def test_a_path_with_a_space_is_one_word_in_every_command_that_names_it() -> None:
    data = inventory_data(
        plain(directory="/var/tmp/x m", target_dir="/var/tmp/ex tract", backup_dir="/var/tmp/back up")
    )
    inventory = load(data)
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    by_action = {s.action: shlex.split(s.command) for s in plan.steps}
    assert "/var/tmp/back up" in by_action[Action.BACKUP]
    assert by_action[Action.INSTALL][:4] == [
        "sudo",
        "/var/tmp/x m/demisto-6.11.sh",
        "-target",
        "/var/tmp/ex tract",
    ]
    assert "/var/tmp/x m" in by_action[Action.FETCH]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("name", "m1\n", "control character"),
        ("name", "m1 ", "not a valid server name"),
        ("address", "fe80::1%x;id>pwned;", "neither an IP address (without a zone) nor a host name"),
        ("address", "fe80::1%eth0", "neither an IP address"),
        ("address", "host-.example", "neither an IP address"),
        ("address", "10.20.0.300", "neither an IP address"),
        ("address", "a b", "neither an IP address"),
    ],
)
def test_names_and_addresses_are_matched_whole(key: str, value: str, message: str) -> None:
    f = plain()
    data = inventory_data(f)
    data["hosts"][0]["server"][key] = value
    with pytest.raises(InventoryError) as caught:
        load(data)
    (problem,) = caught.value.problems
    assert re.match(rf"inv\.yaml:\d+: hosts\[0\]\.server\.{key}: ", problem), problem
    assert message in problem


def test_ipv6_addresses_and_rfc_1123_host_names_are_accepted() -> None:
    f = plain(addresses=("fd00::10", "127.77.0.2", "db-1.example.com"))
    inventory = load(inventory_data(f))
    assert [s.address for s in inventory.servers] == ["fd00::10", "127.77.0.2", "db-1.example.com"]
    assert "https://[fd00::10]:443/accounts;" in shlex.split(tenants_command(inventory, "fd00::10", []))


# -- the quoting point itself ------------------------------------------------------------------------


@given(st.text())
def test_a_word_splits_back_into_exactly_its_value(value: str) -> None:
    assert shlex.split(word(value)) == [value]


@given(st.lists(st.text(min_size=1), max_size=4), st.text(min_size=1))
@example(["{server}", "x{stamp}"], "'{address}'")  # a value's own text is never a placeholder
def test_fill_quotes_values_and_keeps_the_template_and_later_placeholders(
    flags: list[str], path: str
) -> None:
    command = fill("sudo {installer} -- -x {flags} # {server}", installer=path, flags=flags, server=LATER)
    assert command.endswith(" # {server}")
    filled = fill_per_server(command, {"server": "m-1", "address": "::1"})
    assert shlex.split(filled) == ["sudo", path, "--", "-x", *flags, "#", "m-1"]


def test_fill_per_server_fills_the_templates_placeholders_and_never_a_values_text() -> None:
    command = fill("cp {path} {dest}/{server}-{stamp}", path="'{address}'", dest="/b/{server}", server=LATER,
                   stamp=LATER)  # fmt: skip
    filled = fill_per_server(command, {"server": "m-1", "address": "::1", "stamp": "20260101"})
    assert shlex.split(filled) == ["cp", "'{address}'", "/b/{server}/m-1-20260101"]


def test_placeholders_are_plain_names_and_braces_must_pair() -> None:
    assert placeholders("a {x} {{literal}} {y}") == ["x", "y"]
    for bad in ("{0}", "{a.b}", "{a[0]}", "{a!r}", "{a:>4}", "{", "}"):
        with pytest.raises(ValueError):
            placeholders(bad)


def test_squash_joins_the_operators_white_space_but_never_a_values() -> None:
    assert squash(f"  sudo  {word('a  b')}\n  x ") == "sudo 'a  b' x"


def test_sudo_inside_a_quoted_value_is_neither_elevated_nor_counted() -> None:
    command = f"mkdir -p {word('/x; sudo $(touch X)')} && sudo tar x"
    assert outside_quotes(command).count("sudo") == 1
    assert uses_sudo(command) and not uses_sudo(f"mkdir -p {word('sudo x')}")
    assert shlex.split(elevate(command))[:4] == ["mkdir", "-p", "/x; sudo $(touch X)", "&&"]
    assert shlex.split(elevate(command))[4:7] == ["sudo", "-S", "-p"]


class _LocalShell:
    """A real `sh` on this machine in place of a server's shell: enough to see what the shell makes of a
    command (this is about quoting; SSH itself is the fleet's business)."""

    server = "m-a"

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def run(
        self, command: str, *, stdin: str | None = None, timeout: float | None = None, **_: Any
    ) -> Result:
        done = subprocess.run(
            ["sh", "-c", command],
            cwd=self.cwd,
            input=stdin or "",
            capture_output=True,
            text=True,
            timeout=timeout or 30,
            check=False,
        )
        return Result(self.server, command, done.returncode, done.stdout, done.stderr)


def test_the_installer_directory_holding_shell_is_one_literal_path_for_marker_lock_installer_and_probe(
    tmp_path: Path,
) -> None:
    # Accepted by the inventory (no braces, no leading -) yet full of shell: every command below is built
    # outside `fill`, so each is run by a real shell here to show it takes the directory literally.
    directory = tmp_path / 'x $(touch X); `touch Y` it\'s \\ "q"/'
    f = plain(directory=str(directory))
    inventory = load(inventory_data(f))
    assert inventory.installer.directory == str(directory)
    shell = _LocalShell(tmp_path)

    written = shell.run(marker_command(inventory, "m-a", Marker(Version.parse("6.11.0"), 0, "api", "r-1")))
    assert written.ok, written.stderr
    marker, _ = parse_facts(shell.run(facts_script(inventory)).stdout, time.time())
    assert marker is not None and (marker.version, marker.run_id) == (Version.parse("6.11.0"), "r-1")

    lock = DeploymentLock(inventory, shell, "r-1")  # type: ignore[arg-type]  # a local shell, not SSH
    lock.acquire()
    assert (directory / "run.lock" / "owner.json").is_file()
    lock.release()
    assert not (directory / "run.lock").exists()

    files = InstallFiles(inventory.installer.directory, "6.12")
    installed = Marker(Version.parse("6.12.0"), 0, "installer", "r-1").prefix("m-a")
    assert "STARTED" in shell.run(files.launch("echo installing", installed)).stdout
    deadline = time.monotonic() + 10
    polled = shell.run(files.poll(0)).stdout.splitlines()
    while polled[0].split()[:2] != ["0", "0"] and time.monotonic() < deadline:  # exit 0, no longer alive
        time.sleep(0.05)
        polled = shell.run(files.poll(0)).stdout.splitlines()
    assert polled[1:] == ["installing"], polled
    marker, installers = parse_facts(shell.run(facts_script(inventory)).stdout, time.time())
    assert marker is not None and (marker.version, marker.how) == (Version.parse("6.12.0"), "installer")
    assert [(i.release, i.exit_code) for i in installers] == [("6.12", 0)]

    assert [p.name for p in tmp_path.iterdir()] == [directory.name]  # no X, no Y: nothing was run
