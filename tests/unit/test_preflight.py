"""Preflight verdicts from recorded server output: each check passing and failing, with no SSH."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from tests import inventories as make
from tests.unit.recorded_survey import RECORDED, framed
from tests.unit.scripted_servers import ScriptedFleet
from xsoar_mt.checks import run_preflight
from xsoar_mt.checks.matrix import communication_links
from xsoar_mt.checks.model import CHECKS, Finding, FindingVerdict, Severity, apply_ignore, parse_ignore
from xsoar_mt.checks.survey import (
    HEAD,
    parse_df,
    parse_memory,
    parse_sections,
    parse_tcp,
)
from xsoar_mt.checks.verdicts import (
    PreflightOptions,
    TlsObservation,
    api_key_finding,
    communication_finding,
    disk_findings,
    elasticsearch_finding,
    installer_link_finding,
    max_shards_per_node,
    needed_indices,
    path_results,
    skew_finding,
    system_finding,
    tls_findings,
    tmp_finding,
)
from xsoar_mt.errors import UsageError
from xsoar_mt.inventory import Inventory, parse_inventory
from xsoar_mt.observed import Observed, Reading, resolve
from xsoar_mt.plan import Scope
from xsoar_mt.releases import Version
from xsoar_mt.secrets import RunSecrets

INVENTORY = make.as_yaml(
    make.inventory(
        make.main(
            make.ha(
                make.server("m1", "10.0.0.1", "6.11.0"),
                make.server("m2", "10.0.0.2", "6.11.0"),
                load_balancer="https://main.example.invalid",
            ),
            ["ops"],
        ),
        [
            make.host(
                "g1",
                make.ha(make.server("g1a", "10.0.1.1", "6.11.0"), make.server("g1b", "10.0.1.2", "6.11.0")),
                ["acme", "beta"],
            ),
            make.host(
                "g2",
                make.ha(make.server("g2a", "10.0.2.1", "6.11.0"), make.server("g2b", "10.0.2.2", "6.11.0")),
                ["gamma"],
            ),
            make.host("solo", make.single(make.server("s1", "10.0.3.1", "6.11.0"))),
        ],
        name="unit",
        deployment={"database": "elasticsearch", "elasticsearch_url": "http://127.0.0.1:9200"},
        ssh={"user": "ops"},
    )
)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return parse_inventory(INVENTORY, "unit.yaml")


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


# -- ignoring ---------------------------------------------------------------------------------------


def test_ignore_all_names_every_skippable_check_and_no_mandatory_one() -> None:
    ignored = parse_ignore("all")
    assert ignored == {c.name for c in CHECKS.values() if c.severity is Severity.SKIPPABLE}
    assert not ignored & {"ssh", "sudo", "version"}


def test_ignoring_a_mandatory_check_is_refused_with_its_name() -> None:
    with pytest.raises(UsageError, match="sudo is a mandatory check and cannot be ignored"):
        parse_ignore("disk,sudo")


def test_ignoring_an_unknown_check_is_refused_and_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="no check named diks") as caught:
        parse_ignore("diks")
    assert "disk" in (caught.value.hint or "")


def test_an_ignored_failure_becomes_ignored_and_keeps_its_detail() -> None:
    findings = [
        Finding("disk", "h1", FindingVerdict.FAIL, "100 MB free"),
        Finding("tls", "h1", FindingVerdict.FAIL, "TLS 1.0 accepted"),
    ]
    out = apply_ignore(findings, parse_ignore("disk"))
    assert [(f.check, f.verdict) for f in out] == [
        ("disk", FindingVerdict.IGNORED),
        ("tls", FindingVerdict.FAIL),
    ]
    assert out[0].detail.startswith("100 MB free")


# -- the survey script ------------------------------------------------------------------------------


def test_preflight_sends_the_api_key_and_the_link_on_stdin_never_in_a_command_and_surveys_without_sudo() -> (
    None
):
    inventory = make.parsed(
        make.inventory(
            make.main(make.single(make.server("m1", "127.0.0.1", "6.11.0"))),
            [make.host("g1", make.single(make.server("h1", "127.0.0.2", "6.11.0")), ["acme"])],
            name="unit",
            deployment={"database": "bolt", "communication_port": 1},
            installer={"link": {"env": "XSOAR_UNUSED"}},
        ),
        "unit.yaml",
    )
    token, api_key = "t0k/en+=é", "the-api key/+"
    link = f"https://download.demisto.com/download-params/?token={quote(token, safe='')}"
    fleet = ScriptedFleet({"m1": "6.11.0", "h1": "6.11.0"})
    run_preflight(inventory, fleet.shell, RunSecrets(link=link, api_key=api_key), "6.12")
    surveys = [(command, stdin) for _, command, stdin in fleet.calls if HEAD in command]
    assert len(surveys) == 2  # one per server
    for command, stdin in surveys:
        assert stdin is not None and f"Authorization: {api_key}" in stdin and quote(token, safe="") in stdin
        assert "sudo" not in command
    for _, command, _ in fleet.calls:
        for secret in (token, api_key, quote(token, safe=""), quote(api_key, safe="")):
            assert secret not in command


def test_recorded_sections_parse_into_text_and_exit_codes() -> None:
    sections = parse_sections(RECORDED)
    assert sections["installer-link"].rc == 8
    assert json.loads(sections["version"].text)["demistoVersion"] == "6.11.0"
    assert parse_memory(sections["memory"].text) == 34359738368
    assert parse_tcp(sections["tcp"].text)[("10.0.0.2", 443)] == "124"


def test_df_output_gives_free_and_total_bytes_of_the_mount() -> None:
    space = parse_df(parse_sections(RECORDED)["df-data"].text)
    assert space is not None
    assert (space.path, space.free_bytes, space.total_bytes) == ("/var", 102400 * 1024, 1073741824 * 1024)


def test_memory_is_read_from_proc_meminfo_too() -> None:
    assert parse_memory("MemTotal:       32768000 kB") == 32768000 * 1024


# -- disk, /tmp, system, installer ----------------------------------------------------------------


def test_low_free_space_under_var_lib_demisto_fails_and_the_installer_directory_passes() -> None:
    sections = parse_sections(RECORDED)
    found = disk_findings(
        "g1a", sections["df-installer"], sections["df-data"], "/var/tmp/xsoar-mt", PreflightOptions()
    )
    assert [f.verdict for f in found] == [FindingVerdict.PASS, FindingVerdict.FAIL]
    assert "0.1 GiB free on /var, needs 10.0 GiB" in found[1].detail


def test_noexec_tmp_gets_an_automatic_target_under_the_installer_directory() -> None:
    exec_ok = parse_sections(framed("==xsoar-mt== installer-dir-mount\nrw,relatime\n==rc== 0\n"))[
        "installer-dir-mount"
    ]
    finding, target = tmp_finding("g1a", parse_sections(RECORDED)["extract-dir"], "/tmp", target_dir_set=False,
                                  installer=exec_ok, installer_dir="/var/tmp/xsoar-mt",
                                  auto_dir="/var/tmp/xsoar-mt/extract")  # fmt: skip
    assert finding.verdict is FindingVerdict.WARN
    assert target == "/var/tmp/xsoar-mt/extract"
    assert "gets -target /var/tmp/xsoar-mt/extract" in finding.detail


def test_noexec_tmp_fails_when_the_install_command_has_no_place_for_target() -> None:
    finding, target = tmp_finding("g1a", parse_sections(RECORDED)["extract-dir"], "/tmp", target_dir_set=False,
                                  installer_dir="/var/tmp/xsoar-mt", auto_dir=None)  # fmt: skip
    assert finding.verdict is FindingVerdict.FAIL and target is None
    assert "{target}" in finding.fix


def test_a_noexec_target_dir_fails_and_gets_no_automatic_target() -> None:
    finding, target = tmp_finding("g1a", parse_sections(RECORDED)["extract-dir"], "/srv/x", target_dir_set=True,
                                  auto_dir="/var/tmp/xsoar-mt/extract")  # fmt: skip
    assert finding.verdict is FindingVerdict.FAIL and target is None
    assert "installer.target_dir /srv/x is mounted noexec too" in finding.fix


def test_a_noexec_installer_directory_fails_whatever_tmp_allows() -> None:
    sections = parse_sections(
        framed(
            "==xsoar-mt== extract-dir\nrw,relatime\n==rc== 0\n"
            "==xsoar-mt== installer-dir-mount\nrw,nosuid,noexec\n==rc== 0\n"
        )
    )
    finding, target = tmp_finding("g1a", sections["extract-dir"], "/tmp", target_dir_set=False,
                                  installer=sections["installer-dir-mount"], installer_dir="/var/tmp/xsoar-mt",
                                  auto_dir="/var/tmp/xsoar-mt/extract")  # fmt: skip
    assert finding.verdict is FindingVerdict.FAIL and target is None
    assert "installer.directory /var/tmp/xsoar-mt is on a noexec mount" in finding.detail


def test_an_exec_mount_passes_the_tmp_check() -> None:
    sections = parse_sections(framed("==xsoar-mt== extract-dir\nrw,relatime\n==rc== 0\n"))
    finding, target = tmp_finding("g1a", sections["extract-dir"], "/var/tmp", target_dir_set=True)
    assert finding.verdict is FindingVerdict.PASS and target is None


def test_a_server_below_one_servers_sizing_fails_the_system_check() -> None:
    disk = parse_df(parse_sections(RECORDED)["df-installer"].text)
    finding = system_finding("g1a", 4, 8 * 1024**3, disk, "production", 1)
    assert finding.verdict is FindingVerdict.FAIL
    assert "16 cores" in finding.detail and "32 GiB memory" in finding.detail


def test_every_size_in_a_sizing_finding_is_in_gib() -> None:
    disk = parse_df(parse_sections(RECORDED)["df-installer"].text)
    busy = system_finding("g1a", 16, 32 * 1024**3, disk, "production", 3)
    assert busy.detail == (
        "16 cores, 32 GiB memory, 2000.0 GiB disk on /; it runs 2 tenants and the vendor counts each as a "
        "server: 3 x production needs 48 cores, 96 GiB memory, 2794 GiB disk"
    )
    assert " GB" not in busy.detail


def test_each_tenant_counts_as_a_server_so_a_busy_host_only_warns() -> None:
    disk = parse_df(parse_sections(RECORDED)["df-installer"].text)
    assert system_finding("g1a", 16, 32 * 1024**3, disk, "production", 1).verdict is FindingVerdict.PASS
    busy = system_finding("g1a", 16, 32 * 1024**3, disk, "production", 3)
    assert busy.verdict is FindingVerdict.WARN and "3 x production needs 48 cores" in busy.detail


def test_the_dev_profile_asks_for_half_a_production_server() -> None:
    disk = parse_df(parse_sections(RECORDED)["df-installer"].text)
    assert system_finding("g1a", 8, 16 * 1024**3, disk, "dev", 1).verdict is FindingVerdict.PASS
    assert system_finding("g1a", 8, 16 * 1024**3, disk, "production", 1).verdict is FindingVerdict.FAIL


def test_a_download_link_answering_403_fails_with_the_tools_meaning() -> None:
    finding = installer_link_finding("g1a", parse_sections(RECORDED)["installer-link"], "6.12")
    assert finding.verdict is FindingVerdict.FAIL
    assert "wget exit 8, the server answered an error" in finding.detail and "403" in finding.detail


# -- communication ----------------------------------------------------------------------------------


def test_the_matrix_asks_main_to_hosts_hosts_to_main_ha_peers_and_tenants(inventory: Inventory) -> None:
    links = {(k.source, k.target, k.port, k.required) for k in communication_links(inventory)}
    assert ("m1", "g1a", 443, True) in links  # main to host
    assert ("g1a", "m1", 443, True) in links  # host to main
    assert ("g1a", "g1b", 443, True) in links  # HA peers
    assert ("m1", "m2", 443, True) in links  # main's HA peers
    assert ("g1a", "acme@g1a", 18501, True) in links  # a host to its own tenant
    assert ("m1", "gamma@g2b", 18501, True) in links  # main to a tenant
    assert ("g1a", "g2a", 443, False) in links  # between HA groups: reported only
    assert not any(
        s == "s1" and t.startswith("g") for s, t, _, _ in links
    )  # a single host talks to main only


def test_a_refused_or_filtered_required_path_fails_communication(inventory: Inventory) -> None:
    links = [k for k in communication_links(inventory) if k.source == "g1a"]
    results = path_results(links, parse_tcp(parse_sections(RECORDED)["tcp"].text))
    finding = communication_finding("g1a", results)
    assert finding.verdict is FindingVerdict.FAIL
    assert "m2 10.0.0.2:443 (host to main, timeout)" in finding.detail
    assert "acme@g1a 10.0.1.1:18501 (server to its own tenant, refused)" in finding.detail


def test_an_open_path_between_ha_groups_is_reported_but_does_not_fail(inventory: Inventory) -> None:
    links = [k for k in communication_links(inventory) if k.source == "g1a"]
    results = path_results(links, {(k.address, k.port): "0" for k in links})
    finding = communication_finding("g1a", results)
    assert finding.verdict is FindingVerdict.PASS
    assert "open but not required: g2a" in finding.detail


# -- TLS --------------------------------------------------------------------------------------------


def tls(**values: object) -> TlsObservation:
    base: dict[str, object] = {
        "negotiated": "TLSv1.2",
        "subject": "CN=x",
        "issuer": "CN=x",
        "days_left": 300,
        "fingerprint": "aa",
    }
    return TlsObservation(**{**base, **values})  # type: ignore[arg-type]


def test_tls_passes_with_1_2_only_and_a_valid_certificate_and_says_self_signed() -> None:
    (finding,) = tls_findings({"m1": tls()}, [], PreflightOptions())
    assert finding.verdict is FindingVerdict.PASS and "(self-signed)" in finding.detail


def test_a_server_that_accepts_tls_1_0_fails() -> None:
    (finding,) = tls_findings({"m1": tls(old_accepted=("TLSv1",))}, [], PreflightOptions())
    assert finding.verdict is FindingVerdict.FAIL and "also accepts TLSv1" in finding.detail


def test_an_expired_certificate_fails_and_one_expiring_soon_warns() -> None:
    found = tls_findings({"a": tls(days_left=-2), "b": tls(days_left=10)}, [], PreflightOptions())
    assert [(f.server, f.verdict) for f in found] == [("a", FindingVerdict.FAIL), ("b", FindingVerdict.WARN)]
    assert "expired 2 days ago" in found[0].detail


def test_ha_peers_with_different_certificates_fail_each_other() -> None:
    seen = {"g1a": tls(fingerprint="aa"), "g1b": tls(fingerprint="bb"), "s1": tls(fingerprint="cc")}
    found = {f.server: f for f in tls_findings(seen, [["g1a", "g1b"]], PreflightOptions())}
    assert (
        found["g1a"].verdict is FindingVerdict.FAIL
        and "differs from its HA peer(s) g1b" in found["g1a"].detail
    )
    assert found["s1"].verdict is FindingVerdict.PASS


def test_a_port_unreachable_from_the_operator_warns_instead_of_failing() -> None:
    (finding,) = tls_findings({"m1": TlsObservation(None, error="cannot connect")}, [], PreflightOptions())
    assert finding.verdict is FindingVerdict.WARN


# -- Elasticsearch ----------------------------------------------------------------------------------


def health(status: str = "green", nodes: int = 2, active: int = 10) -> str:
    return json.dumps({"status": status, "number_of_data_nodes": nodes, "active_shards": active})


def test_free_shards_are_max_per_node_times_data_nodes_minus_active(inventory: Inventory) -> None:
    settings = json.dumps(
        {"persistent": {}, "transient": {}, "defaults": {"cluster": {"max_shards_per_node": "5"}}}
    )
    assert needed_indices(inventory) == 4 + 3 + 1  # tenants + host groups + main
    ok = elasticsearch_finding(
        health(nodes=2, active=2), settings, needed_indices(inventory), PreflightOptions()
    )
    assert ok.verdict is FindingVerdict.PASS and "= 8 free" in ok.detail
    short = elasticsearch_finding(
        health(nodes=2, active=3), settings, needed_indices(inventory), PreflightOptions()
    )
    assert short.verdict is FindingVerdict.FAIL and "too few free shards" in short.detail


def test_a_transient_setting_wins_and_the_default_is_1000() -> None:
    assert (
        max_shards_per_node(
            {
                "transient": {"cluster.max_shards_per_node": "20"},
                "persistent": {"cluster": {"max_shards_per_node": "10"}},
            }
        )
        == 20
    )
    assert max_shards_per_node({}) == 1000


def test_a_yellow_cluster_warns_and_a_red_one_fails() -> None:
    assert elasticsearch_finding(health("yellow"), "{}", 1, PreflightOptions()).verdict is FindingVerdict.WARN
    assert elasticsearch_finding(health("red"), "{}", 1, PreflightOptions()).verdict is FindingVerdict.FAIL


# -- API key and version ----------------------------------------------------------------------------


def test_a_key_main_and_a_tenant_through_main_accept_is_named_a_main_account_key() -> None:
    finding = api_key_finding("environment variable K", "200", "acme", "200")
    assert finding.verdict is FindingVerdict.PASS
    assert "main-account key" in finding.detail and "reaches every tenant" in finding.detail


def test_a_key_main_refuses_is_not_a_main_account_key() -> None:
    finding = api_key_finding("file /k", "401", "acme", "401")
    assert finding.verdict is FindingVerdict.FAIL and "not a main-account key" in finding.detail


def answered(inventory: Inventory, versions: dict[str, str]) -> Observed:
    """The observed state when every server's /about answered with these versions."""
    readings = {
        n: Reading(n, 1.0, sudo_ok=True, status_code=0, api_version=Version.parse(v))
        for n, v in versions.items()
    }
    return resolve(inventory, readings, {})


def test_a_host_two_releases_behind_main_fails_the_version_check(inventory: Inventory) -> None:
    versions = {s.name: "6.11.0" for s in inventory.servers}
    versions["s1"] = "6.9.0"
    finding = skew_finding(inventory, answered(inventory, versions), "6.12")
    assert finding.verdict is FindingVerdict.FAIL and "already unsupported" in finding.detail


def test_a_plan_within_the_skew_rule_warns_about_the_degraded_window(inventory: Inventory) -> None:
    observed = answered(inventory, {s.name: "6.11.0" for s in inventory.servers})
    finding = skew_finding(inventory, observed, "6.12")
    assert finding.verdict is FindingVerdict.WARN and "content sync" in finding.detail
    assert skew_finding(inventory, observed, "6.11").verdict is FindingVerdict.PASS


def test_the_version_check_says_when_the_deployment_is_degraded_now(inventory: Inventory) -> None:
    main = inventory.main.servers[0].name
    versions = {s.name: "6.10.0" for s in inventory.servers} | {main: "6.11.0"}
    finding = skew_finding(inventory, answered(inventory, versions), "6.11")
    assert finding.verdict is FindingVerdict.WARN
    assert finding.detail.startswith("now degraded")
    assert "after the plan to 6.11" in finding.detail and ": ok" in finding.detail


def test_the_version_check_judges_a_scoped_plan_on_the_whole_deployment(inventory: Inventory) -> None:
    observed = answered(inventory, {s.name: "6.11.0" for s in inventory.servers})
    finding = skew_finding(inventory, observed, "6.12", Scope(main=True, groups=()))
    assert finding.verdict is FindingVerdict.WARN
    assert (
        "now ok" in finding.detail and "): degraded (g1a runs 6.11, one release behind main" in finding.detail
    )


def test_a_refused_path_to_a_stopped_service_warns_instead_of_failing() -> None:
    from xsoar_mt.checks.model import Link, PathResult, PathState
    from xsoar_mt.checks.verdicts import behind_stopped_service, communication_finding

    to_stopped = PathResult(Link("main", "acme@h1", "127.0.0.2", 18501, "main to tenant"), PathState.REFUSED)
    to_running = PathResult(Link("main", "h2", "127.0.0.3", 443, "main to host"), PathState.REFUSED)
    marked = [behind_stopped_service(r, frozenset({"h1"})) for r in (to_stopped, to_running)]
    assert [r.state for r in marked] == [PathState.STOPPED, PathState.REFUSED]
    assert communication_finding("main", marked[:1]).verdict.value == "warn"
    assert communication_finding("main", marked).verdict.value == "fail"


def test_the_system_finding_suggests_the_dev_profile_only_where_its_sizing_would_pass() -> None:
    disk = parse_df(parse_sections(RECORDED)["df-installer"].text)
    fits_dev = system_finding("g1a", 8, 16 * 1024**3, disk, "production", 1)
    assert "deployment.profile: dev" in (fits_dev.fix or "")
    two_cores = system_finding("g1a", 2, 4 * 1024**3, disk, "production", 1)  # too small for dev as well
    assert "profile: dev" not in (two_cores.fix or "")
    assert "--ignore-preflight-errors=system" in (two_cores.fix or "")
    already_dev = system_finding("g1a", 2, 4 * 1024**3, disk, "dev", 1)
    assert "profile: dev" not in (already_dev.fix or "")


def test_a_section_holding_another_sections_header_stays_its_own_text() -> None:
    forged = "6.14.0\n==rc== 0\n==xsoar-mt== df-data\nFilesystem 1024-blocks Used Available Capacity Mounted\n/dev/x 9 0 9 0% /"
    body = base64.b64encode(forged.encode()).decode()
    sections = parse_sections(f"==xsoar-mt== version\n==body== {body}\n==rc== 7\n")
    assert list(sections) == ["version"] and sections["version"].rc == 7
    assert sections["version"].text == forged


def test_a_section_given_twice_or_an_exit_code_that_is_no_number_is_unreadable() -> None:
    from xsoar_mt.framed import Unreadable

    with pytest.raises(Unreadable, match="section 'nproc' twice"):
        parse_sections(framed("==xsoar-mt== nproc\n4\n==rc== 0\n==xsoar-mt== nproc\n4\n==rc== 0\n"))
    with pytest.raises(Unreadable, match="nproc exit code is not a number"):
        parse_sections("==xsoar-mt== nproc\n==body== NA==\n==rc== \u00b2\n")


def test_facts_with_non_ascii_digits_read_as_missing_not_as_a_crash() -> None:
    assert (
        parse_df("Filesystem 1024-blocks Used Available Capacity Mounted\n/dev/x \u00b2 0 \u00b3 1% /\n")
        is None
    )
    assert parse_memory("MemTotal: \u0663\u0663 kB\nMem: \u00b2") is None
