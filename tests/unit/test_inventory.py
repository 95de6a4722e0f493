"""Loading and validating inventories: every rule gives one line naming file:line and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.inventory_text import BASE, parse, problems
from xsoar_mt.errors import InventoryError
from xsoar_mt.inventory import Role, Topology, load_inventory
from xsoar_mt.releases import Version

ROOT = Path(__file__).resolve().parents[2]
# Line numbers in the tests below count from BASE (line 1 is inventory_version).
ELASTIC = BASE.replace("database: bolt", "database: elasticsearch\n  elasticsearch_url: https://es:9200")
EMEA_SERVER = "    server: {name: emea-1, address: 10.0.1.1, version: 6.11.0}"


def test_the_base_inventory_of_these_tests_is_valid() -> None:
    inventory = parse(BASE)
    assert [s.name for s in inventory.servers] == ["main", "emea-1"]


@pytest.mark.parametrize("name", ["inventory.example.yaml", "examples/ha-elasticsearch.yaml"])
def test_the_example_inventories_load(name: str) -> None:
    inventory = load_inventory(ROOT / name)
    assert inventory.servers
    assert all(s.version is not None for s in inventory.servers)


def test_the_example_inventory_is_a_dr_main_with_two_dr_pairs_and_a_single_host() -> None:
    inventory = load_inventory(ROOT / "inventory.example.yaml")
    assert inventory.main.topology is Topology.DR
    assert [(g.name, g.topology) for g in inventory.hosts] == [
        ("emea", Topology.DR),
        ("us-east", Topology.DR),
        ("apac", Topology.SINGLE),
    ]
    assert inventory.server("apac-1").ssh_port == 2222
    assert inventory.main.primary.name == "main-a" and inventory.main.secondary.name == "main-b"


def test_the_ha_example_has_three_main_app_servers_behind_a_load_balancer() -> None:
    inventory = load_inventory(ROOT / "examples/ha-elasticsearch.yaml")
    assert inventory.main.topology is Topology.HA
    assert inventory.main.load_balancer == "https://xsoar.globex.example"
    assert {s.role for s in inventory.main.servers} == {Role.APP}
    assert len(inventory.main.servers) == 3


def test_a_missing_file_is_one_problem_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path / "nope.yaml")
    assert caught.value.problems == [
        f"{tmp_path / 'nope.yaml'}: cannot read the inventory: No such file or directory"
    ]


def test_an_unknown_key_is_named_with_the_closest_known_key() -> None:
    assert problems(BASE.replace("  database: bolt", "  databse: bolt")) == [
        "inv.yaml:4: deployment.databse: unknown key; did you mean `database`?"
    ]


def test_a_missing_required_key_is_named_under_its_parent() -> None:
    assert problems(BASE.replace("  name: acme\n", "")) == [
        "inv.yaml:3: deployment.name: required key is missing"
    ]


def test_a_missing_main_is_named() -> None:
    text = BASE.replace("main:\n  server: {name: main, address: 10.0.0.1, version: 6.11.0}\n", "")
    assert "inv.yaml:1: main: required key is missing" in problems(text)


def test_a_list_where_a_mapping_is_expected_is_a_wrong_type() -> None:
    text = BASE.split("hosts:")[0] + "hosts: 5\n"
    assert problems(text) == ["inv.yaml:7: hosts: expected a list, found '5'"]


def test_text_where_a_number_is_expected_is_a_wrong_type() -> None:
    text = BASE.replace("  database: bolt", "  database: bolt\n  communication_port: https")
    assert problems(text) == [
        "inv.yaml:5: deployment.communication_port: expected a whole number, found 'https'"
    ]


def test_a_duplicate_server_name_is_named_with_both_lines() -> None:
    assert problems(BASE.replace("name: emea-1", "name: main")) == [
        "inv.yaml:9: hosts[0].server.name: duplicate server name main (also at line 6)"
    ]


def test_a_duplicate_address_and_port_is_named_with_the_other_server() -> None:
    assert problems(BASE.replace("10.0.1.1", "10.0.0.1")) == [
        "inv.yaml:9: hosts[0].server.address: 10.0.0.1:22 is also server main (line 6)"
    ]


def test_the_same_address_on_another_ssh_port_is_allowed() -> None:
    inventory = parse(BASE.replace("address: 10.0.1.1,", "address: 10.0.0.1, ssh_port: 2222,"))
    assert inventory.server("emea-1").ssh_port == 2222


def test_ha_without_elasticsearch_is_refused() -> None:
    text = BASE.replace(
        EMEA_SERVER,
        "    ha:\n      servers:\n        - {name: e1, address: 10.0.1.1}\n        - {name: e2, address: 10.0.1.2}",
    )
    assert problems(text) == [
        "inv.yaml:8: hosts[0].ha: HA needs Elasticsearch; set deployment.database: elasticsearch"
    ]


def test_dr_with_elasticsearch_is_refused() -> None:
    text = ELASTIC.replace(
        EMEA_SERVER,
        "    dr:\n      primary: {name: e1, address: 10.0.1.1}\n      secondary: {name: e2, address: 10.0.1.2}",
    )
    assert problems(text) == [
        "inv.yaml:9: hosts[0].dr: DR (Live Backup) works only with BoltDB, not with Elasticsearch"
    ]


def test_dr_combined_with_ha_in_one_deployment_is_refused() -> None:
    text = ELASTIC.replace(
        "  server: {name: main, address: 10.0.0.1, version: 6.11.0}",
        "  ha:\n    load_balancer: https://lb\n    servers:\n"
        "      - {name: m1, address: 10.0.0.1}\n      - {name: m2, address: 10.0.0.2}",
    ).replace(
        EMEA_SERVER,
        "    dr:\n      primary: {name: e1, address: 10.0.1.1}\n      secondary: {name: e2, address: 10.0.1.2}",
    )
    assert (
        "inv.yaml:13: hosts[0].dr: DR (Live Backup) cannot be combined with HA in one deployment"
        in problems(text)
    )


def test_an_ha_group_with_one_server_is_refused() -> None:
    text = ELASTIC.replace(EMEA_SERVER, "    ha:\n      servers:\n        - {name: e1, address: 10.0.1.1}")
    assert problems(text) == [
        "inv.yaml:12: hosts[0].ha.servers: an HA group needs at least two servers (found 1)"
    ]


def test_a_dr_pair_missing_its_secondary_is_refused() -> None:
    text = BASE.replace(EMEA_SERVER, "    dr:\n      primary: {name: e1, address: 10.0.1.1}")
    assert problems(text) == [
        "inv.yaml:10: hosts[0].dr: a DR pair needs exactly one primary and one secondary; `secondary` is missing"
    ]


def test_a_dr_pair_with_a_list_of_secondaries_is_refused() -> None:
    text = BASE.replace(
        EMEA_SERVER,
        "    dr:\n      primary: {name: e1, address: 10.0.1.1}\n"
        "      secondary:\n        - {name: e2, address: 10.0.1.2}\n        - {name: e3, address: 10.0.1.3}",
    )
    assert problems(text) == [
        "inv.yaml:12: hosts[0].dr.secondary: a DR pair has exactly one secondary, not a list"
    ]


def test_a_tenant_name_with_white_space_is_refused() -> None:
    assert problems(BASE.replace("name: globex", "name: glo bex")) == [
        "inv.yaml:11: hosts[0].tenants[0].name: tenant name 'glo bex' must be letters, digits, . _ - with no white space"
    ]


def test_a_duplicate_tenant_is_named_at_its_second_occurrence() -> None:
    assert problems(BASE + "      - name: globex\n") == [
        "inv.yaml:12: hosts[0].tenants[1].name: duplicate tenant globex (also in emea)"
    ]


def test_a_tenant_duplicated_across_host_groups_is_refused() -> None:
    text = BASE + "  - name: us\n    server: {name: us-1, address: 10.0.2.1, version: 6.11.0}\n    tenants:\n"
    text += "      - name: globex\n"
    assert problems(text) == ["inv.yaml:15: hosts[1].tenants[0].name: duplicate tenant globex (also in emea)"]


def test_a_duplicate_host_group_name_is_refused() -> None:
    text = BASE + "  - name: emea\n    server: {name: e2, address: 10.0.2.1, version: 6.11.0}\n"
    assert problems(text) == ["inv.yaml:12: hosts[1].name: duplicate host group name emea"]


def test_an_ssh_port_out_of_range_is_refused() -> None:
    text = BASE.replace("version: 6.11.0}\nhosts", "version: 6.11.0, ssh_port: 70000}\nhosts")
    assert problems(text) == ["inv.yaml:6: main.server.ssh_port: 70000 is out of range (1 to 65535)"]


def test_a_tenant_port_out_of_range_is_refused() -> None:
    text = BASE.replace("      - name: globex", "      - name: globex\n        port: 0")
    assert problems(text) == ["inv.yaml:12: hosts[0].tenants[0].port: 0 is out of range (1 to 65535)"]


def test_a_version_that_does_not_parse_is_refused() -> None:
    text = BASE.replace("address: 10.0.1.1, version: 6.11.0", "address: 10.0.1.1, version: six")
    assert problems(text) == [
        "inv.yaml:9: hosts[0].server.version: 'six' is not a version (expected e.g. 6.11.0)"
    ]


def test_a_version_not_in_the_release_list_is_refused() -> None:
    text = BASE.replace("address: 10.0.1.1, version: 6.11.0", "address: 10.0.1.1, version: 6.3.0")
    assert problems(text) == [
        "inv.yaml:9: hosts[0].server.version: 6.3 is not a known release (6.0 to 6.14); "
        "add newer ones under `releases:` in the inventory"
    ]


def test_a_version_from_the_extended_release_list_is_accepted() -> None:
    text = BASE.replace("6.11.0", "6.15.0") + "releases: ['6.15']\n"
    assert parse(text).server("main").version == Version(6, 15, 0)


def test_a_host_newer_than_main_is_refused() -> None:
    text = BASE.replace("address: 10.0.1.1, version: 6.11.0", "address: 10.0.1.1, version: 6.12.0")
    assert problems(text) == [
        "inv.yaml:9: hosts[0].server.version: host runs 6.12.0, newer than main (6.11.0); "
        "a host must never run a newer release than main"
    ]


def test_a_host_on_a_newer_build_of_mains_release_is_allowed() -> None:
    text = BASE.replace("address: 10.0.1.1, version: 6.11.0", "address: 10.0.1.1, version: 6.11.0 (B999)")
    assert parse(text).server("emea-1").version == Version(6, 11, 0, "999")


def test_main_servers_with_and_without_a_build_number_validate() -> None:
    text = BASE.replace(
        "  server: {name: main, address: 10.0.0.1, version: 6.11.0}",
        "  dr:\n    primary: {name: main, address: 10.0.0.1, version: '6.11.0 (B187344)'}\n"
        "    secondary: {name: main-b, address: 10.0.0.2, version: 6.11.0}",
    )
    assert parse(text).main.topology is Topology.DR


def test_a_secret_written_inline_is_refused() -> None:
    assert problems(BASE + "ssh:\n  sudo_password: hunter2\n") == [
        "inv.yaml:13: ssh.sudo_password: a secret is never written in the inventory; "
        "use {env: VARIABLE}, {file: PATH} or {prompt: true}"
    ]


def test_an_inline_secret_never_appears_in_the_problem() -> None:
    assert not any("hunter2" in p for p in problems(BASE + "ssh:\n  sudo_password: hunter2\n"))


def test_a_duplicate_yaml_key_is_refused() -> None:
    text = BASE.replace("  database: bolt\n", "  database: bolt\n  database: elasticsearch\n")
    assert problems(text) == ["inv.yaml:5: deployment.database: this key appears twice"]


def test_an_unknown_placeholder_in_a_command_is_refused_listing_the_known_ones() -> None:
    assert problems(BASE + "commands:\n  stop: sudo systemctl stop {service}\n") == [
        "inv.yaml:13: commands.stop: unknown placeholder {service}; this command knows {server}, {address}"
    ]


def test_unbalanced_braces_in_a_command_are_refused() -> None:
    assert problems(BASE + "commands:\n  start: sudo start {server\n") == [
        "inv.yaml:13: commands.start: unbalanced braces; write {{ and }} for literal braces"
    ]


def test_yaml_that_does_not_parse_is_one_problem_with_its_line() -> None:
    assert problems(BASE.replace("  database: bolt", "  database: [bolt")) == [
        "inv.yaml:5: not valid YAML: did not find expected ',' or ']'"
    ]


def test_every_problem_is_reported_not_only_the_first() -> None:
    text = BASE.replace("  database: bolt", "  databse: bolt").replace("name: globex", "name: glo bex")
    assert [p.split(":")[1] for p in problems(text)] == ["4", "11"]


def test_an_unquoted_6_10_stays_release_6_10() -> None:
    text = BASE.replace("6.11.0", "6.10")
    inventory = parse(text)
    assert inventory.server("main").version == Version(6, 10, 0)
    assert inventory.server("emea-1").version is not None
    assert inventory.server("emea-1").version.release == "6.10"


def test_tenant_ports_count_up_from_the_base_skipping_ports_already_given() -> None:
    text = BASE + "      - name: initech\n        port: 18502\n      - name: umbrella\n"
    tenants = parse(text).group("emea").tenants
    assert [(t.name, t.port) for t in tenants] == [("globex", 18501), ("initech", 18502), ("umbrella", 18503)]


def test_tenant_ports_count_up_from_a_configured_base() -> None:
    text = (
        BASE.replace("  database: bolt", "  database: bolt\n  tenant_port_base: 19000") + "      - name: b\n"
    )
    assert [t.port for t in parse(text).group("emea").tenants] == [19000, 19001]


def test_a_tenant_is_addressed_as_acc_and_its_name() -> None:
    assert parse(BASE).group("emea").tenants[0].account == "acc_globex"


def test_a_servers_ssh_settings_inherit_the_defaults_and_override_per_server() -> None:
    text = BASE + "ssh:\n  user: ops\n  port: 2200\n"
    text = text.replace("address: 10.0.1.1,", "address: 10.0.1.1, ssh: {user: root},")
    inventory = parse(text)
    assert (inventory.server("main").ssh.user, inventory.server("main").ssh_port) == ("ops", 2200)
    assert (inventory.server("emea-1").ssh.user, inventory.server("emea-1").ssh_port) == ("root", 2200)


def test_the_digest_changes_with_the_files_text() -> None:
    assert parse(BASE).digest != parse(BASE + "# a comment\n").digest


def test_upload_delivery_from_a_link_is_valid() -> None:
    inventory = parse(BASE + "installer: {delivery: upload, link: {env: XSOAR_LINK}}\n")
    assert inventory.installer.delivery == "upload" and inventory.installer.link is not None


def test_upload_delivery_with_neither_file_nor_link_is_refused_at_its_line() -> None:
    assert problems(BASE + "installer: {delivery: upload}\n") == [
        "inv.yaml:12: installer.delivery: upload delivery needs installer.file (a local installer) or "
        "installer.link (downloaded once on this machine, then uploaded)"
    ]


def test_a_target_dir_the_install_command_cannot_use_is_refused() -> None:
    text = (
        BASE + "installer: {target_dir: /var/tmp}\ncommands: {install: 'sudo {installer} -- -multi-tenant'}\n"
    )
    assert problems(text) == [
        "inv.yaml:13: commands: commands.install has no {target}, so installer.target_dir would be ignored: "
        "add {target}"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "256.0.0.1",
        "10.020.0.1",
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.4 ",
        "1..3.4",
        "1.2.3.\u0664",
        "\u0661.2.3.4",
        "999.1.1.1",
        "199.249.250.251",
    ],
)
def test_a_dotted_quad_is_an_address_exactly_when_ipaddress_reads_it(text: str) -> None:
    """The reader's quick IPv4 check gives ipaddress's answer (no leading zeros, 0-255, ASCII digits)."""
    import ipaddress

    from xsoar_mt.inventory.sections import _DOTTED_QUAD

    try:
        ipaddress.IPv4Address(text)
        valid = True
    except ValueError:
        valid = False
    assert (_DOTTED_QUAD.fullmatch(text) is not None) == valid
