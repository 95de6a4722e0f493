"""Every preflight verdict, word for word: each verdict function on recorded answers, against a golden file.

`golden/verdicts.txt` holds, per case, the finding(s) a verdict function returns: check, server,
verdict, detail and fix. The cases walk every branch and sit on every threshold (one byte, core, day or
shard either side), so a changed verdict, number or message shows as a diff. After an intended change
to a message: `make golden`, then review the diff.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from tests.golden import assert_matches
from tests.inventories import GroupSpec, build
from xsoar_mt.checks import verdicts as v
from xsoar_mt.checks.model import Finding, Link, PathResult, PathState
from xsoar_mt.checks.survey import DiskSpace, Section
from xsoar_mt.inventory import Group, Inventory
from xsoar_mt.observed import Installer, Observed, Reading, ServerView, Service, Source, resolve
from xsoar_mt.plan import Scope
from xsoar_mt.releases import Version

GOLDEN = Path(__file__).parent / "golden" / "verdicts.txt"
OPTIONS = v.PreflightOptions()
GB = v.GB


def df(available_kib: int, mount: str = "/var") -> Section:
    return Section(
        "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
        f"/dev/sda1 976562500 1 {available_kib} 1% {mount}\n",
        0,
    )


def link(target: str, port: int = 443, required: bool = True) -> Link:
    return Link("h1", target, f"10.0.0.{len(target)}", port, f"{target} needs it", required)


def tmp(*args: object, **kwargs: object) -> list[Finding | str]:
    finding, target = v.tmp_finding(*args, **kwargs)  # type: ignore[arg-type]
    return [finding, f"-target: {target}"]


def view(
    server: str, version: Version | None, source: Source | None, service: Service, **more: object
) -> ServerView:
    return ServerView(server, version, source, 0.0, service, **more)  # type: ignore[arg-type]  # test data


def answered(inventory: Inventory, versions: dict[str, str], stopped: tuple[str, ...] = ()) -> Observed:
    """Every server's /about answered with these versions; those `stopped` answered nothing and tell none."""
    readings = {
        n: Reading(n, 1.0, sudo_ok=True, status_code=0, api_version=Version.parse(x))
        for n, x in versions.items()
    }
    readings.update({n: Reading(n, 1.0, sudo_ok=True, status_code=3) for n in stopped})
    bare = replace(
        inventory, main=_unversioned(inventory.main), hosts=tuple(_unversioned(g) for g in inventory.hosts)
    )
    return resolve(bare, readings, {})


def _unversioned(group: Group) -> Group:
    return replace(group, servers=tuple(replace(s, version=None) for s in group.servers))


def cases() -> Iterator[tuple[str, list[Finding] | list[Finding | str]]]:
    yield "ssh ok", [v.ssh_finding("h1", None)]
    for kind in ("host-key", "auth", "unreachable", "other"):
        yield f"ssh {kind}", [v.ssh_finding("h1", f"{kind} went wrong", kind)]

    yield "sudo error", [v.sudo_finding("h1", False, "sudo: a password is required", True)]
    yield "sudo refused", [v.sudo_finding("h1", False, None, False)]
    yield "sudo with password", [v.sudo_finding("h1", True, None, True)]
    yield "sudo without password", [v.sudo_finding("h1", True, None, False)]

    v11, v12 = Version.parse("6.11.0"), Version.parse("6.12.1")
    failed = Installer("6.12", 42, 1, False, False, 0.0, 60.0)
    running = Installer("6.12", 42, None, True, False, 0.0, None)
    yield "version from the api", [v.server_version_finding(view("h1", v12, Source.API, Service.RUNNING))]
    yield (
        "version from the api, out of scope",
        [v.server_version_finding(view("h1", v12, Source.API, Service.RUNNING), in_scope=False)],
    )
    yield (
        "version disagreeing",
        [
            v.server_version_finding(
                view(
                    "h1",
                    v12,
                    Source.API,
                    Service.RUNNING,
                    notes=("inventory says 6.11.0, h1 reports 6.12.1",),
                )
            )
        ],
    )
    yield (
        "version from the marker, stopped",
        [v.server_version_finding(view("h1", v11, Source.MARKER, Service.STOPPED))],
    )
    yield (
        "version from the inventory, stopped",
        [v.server_version_finding(view("h1", v11, Source.INVENTORY, Service.STOPPED))],
    )
    yield (
        "version installer in flight",
        [
            v.server_version_finding(
                view(
                    "h1",
                    None,
                    None,
                    Service.STOPPED,
                    installer=running,
                    unknown=running.describe(),
                    basis=v11,
                )
            )
        ],
    )
    yield (
        "version after a failed install",
        [
            v.server_version_finding(
                view(
                    "h1", None, None, Service.STOPPED, installer=failed, unknown=failed.describe(), basis=v11
                )
            )
        ],
    )
    yield "version unknown", [v.server_version_finding(view("h1", None, None, Service.STOPPED))]

    inventory = build("bolt", GroupSpec("main", "single", ("6.11",)), [GroupSpec("a", "single", ("6.11",))])
    versions = {n: str(ver) for n, ver in inventory.versions().items()}
    yield "skew degraded on the way", [v.skew_finding(inventory, answered(inventory, versions), "6.12")]
    yield (
        "skew degraded now",
        [v.skew_finding(inventory, answered(inventory, {**versions, "a-0": "6.10.0"}), "6.11")],
    )
    yield "skew nothing to do", [v.skew_finding(inventory, answered(inventory, versions), "6.11")]
    yield (
        "skew refused",
        [v.skew_finding(inventory, answered(inventory, {**versions, "a-0": "6.9.0"}), "6.12")],
    )
    yield (
        "skew scoped",
        [v.skew_finding(inventory, answered(inventory, versions), "6.12", Scope(main=True, groups=()))],
    )
    yield (
        "skew unknown",
        [v.skew_finding(inventory, answered(inventory, {"main-0": "6.11.0"}, stopped=("a-0",)), "6.12")],
    )
    lone = build("bolt", GroupSpec("main", "single", ("6.11",)), [])
    yield "skew ok all the way", [v.skew_finding(lone, answered(lone, {"main-0": "6.11.0"}), "6.12")]

    yield "link check silent", [v.installer_link_finding("h1", None, "6.12")]
    yield "link ok wget", [v.installer_link_finding("h1", Section("tool=wget\n", 0), "6.12")]
    yield "link ok curl", [v.installer_link_finding("h1", Section("tool=curl\n", 0), "6.12")]
    for tool, rc in (("wget", 4), ("wget", 5), ("wget", 6), ("wget", 8), ("wget", 3), ("curl", 6),
                     ("curl", 7), ("curl", 22), ("curl", 28), ("curl", 35), ("curl", 60), ("curl", 1)):  # fmt: skip
        text = f"tool={tool}\n\n  first line\n  last line of {tool} \n\n"
        yield f"link {tool} exit {rc}", [v.installer_link_finding("h1", Section(text, rc), "6.12")]
    yield "link no exit code", [v.installer_link_finding("h1", Section("tool=wget\n", None), "6.12")]

    yield "local missing", [v.local_installer_finding("demisto-6.12.sh", False, None, None)]
    yield "local no pin", [v.local_installer_finding("demisto-6.12.sh", True, "ab12", None)]
    yield "local mismatch", [v.local_installer_finding("demisto-6.12.sh", True, "ab12", "cd34")]
    yield "local match", [v.local_installer_finding("demisto-6.12.sh", True, "ab12", "ab12")]

    # 4 GB = 3906250 KiB, 10 GB = 9765625 KiB exactly: either side of each threshold
    yield (
        "disk at both thresholds",
        v.disk_findings("h1", df(3906250, "/opt"), df(9765625), "/opt/x", OPTIONS),
    )
    yield "disk one KiB short", v.disk_findings("h1", df(3906249, "/opt"), df(9765624), "/opt/x", OPTIONS)
    yield "disk unreadable", v.disk_findings("h1", None, Section("garbage", 0), "/opt/x", OPTIONS)

    noexec, exec_ = Section("rw,nosuid,noexec", 0), Section("rw,nosuid", 0)
    yield (
        "tmp installer dir noexec",
        tmp("h1", exec_, "/tmp", False, installer=noexec, installer_dir="/opt/x"),
    )
    yield "tmp unreadable", tmp("h1", Section("  ", 0), "/tmp", False, installer=exec_)
    yield "tmp exec", tmp("h1", exec_, "/tmp", False)
    yield "tmp noexec, target_dir set", tmp("h1", noexec, "/data/x", True)
    yield "tmp noexec, no {target}", tmp("h1", noexec, "/tmp", False, auto_dir=None)
    yield "tmp noexec, auto -target", tmp("h1", noexec, "/tmp", False, auto_dir="/opt/x/extract")

    disk = DiskSpace("/", 900 * GB, 1)  # 1000 GB x 0.9 exactly
    memory = int(32 * GB * 0.9)
    yield "system unreadable", [v.system_finding("h1", None, memory, disk, "production", 1)]
    yield "system exactly one server", [v.system_finding("h1", 16, memory, disk, "production", 1)]
    yield (
        "system short by one of each",
        [v.system_finding("h1", 15, memory - 1, DiskSpace("/", 900 * GB - 1, 1), "production", 1)],
    )
    yield "system one server for three", [v.system_finding("h1", 16, memory, disk, "production", 3)]
    yield (
        "system three for three",
        [v.system_finding("h1", 48, 3 * memory, DiskSpace("/", 3 * 900 * GB, 1), "production", 3)],
    )
    yield (
        "system dev profile",
        [v.system_finding("h1", 8, int(16 * GB * 0.9), DiskSpace("/", 450 * GB, 1), "dev", 1)],
    )

    main, tenant = link("main"), link("acme@h2", 18501)
    optional = link("other-group", 443, required=False)
    yield "paths open", [v.communication_finding("h1", [PathResult(main, PathState.OPEN)])]
    yield "paths closed", [v.communication_finding("h1", [PathResult(main, PathState.REFUSED),
                           PathResult(tenant, PathState.TIMEOUT), PathResult(optional, PathState.OPEN)])]  # fmt: skip
    yield "paths stopped", [v.communication_finding("h1", [PathResult(main, PathState.OPEN),
                            PathResult(tenant, PathState.STOPPED)])]  # fmt: skip
    yield "paths untested", [v.communication_finding("h1", [PathResult(main, PathState.UNTESTED),
                             PathResult(optional, PathState.OPEN)])]  # fmt: skip
    yield "paths optional closed", [v.communication_finding("h1", [PathResult(main, PathState.OPEN),
                                    PathResult(optional, PathState.REFUSED)])]  # fmt: skip
    for code in ("0", "124", "untested", "1", "7"):
        state = v.behind_stopped_service(PathResult(tenant, v.path_state(code)), frozenset({"h2"}))
        yield f"path code {code} to a stopped h2", [f"state: {state.state.value}"]

    good = v.TlsObservation("TLSv1.3", (), "CN=h", "CN=h", 30, "aa")
    yield (
        "tls",
        v.tls_findings(
            {
                "good": good,
                "signed": v.TlsObservation("TLSv1.2", (), "CN=s", "CN=ca", None, "bb"),
                "unreached": v.TlsObservation(None, error="connection refused"),
                "warns": v.TlsObservation("TLSv1.3", (), "CN=h", "CN=h", 29, "aa"),
                "today": v.TlsObservation("TLSv1.3", (), "CN=h", "CN=h", 0, "aa"),
                "expired": v.TlsObservation("TLSv1.3", (), "CN=h", "CN=h", -1, "aa"),
                "old": v.TlsObservation(None, ("TLSv1", "TLSv1.1"), "CN=o", "CN=o", 400, "cc"),
                "peer-a": v.TlsObservation("TLSv1.3", (), "CN=p", "CN=p", 400, "dd"),
                "peer-b": v.TlsObservation("TLSv1.3", (), "CN=p", "CN=p", 400, "ee"),
                "peer-c": v.TlsObservation("TLSv1.3", (), "CN=p", "CN=p", 400, ""),
                "peer-d": v.TlsObservation("TLSv1.3", (), "CN=p", "CN=p", 10, "dd"),
            },
            [["peer-a", "peer-b", "peer-c", "peer-d", "absent"]],
            OPTIONS,
        ),
    )

    def cluster(status: str, nodes: int, active: int) -> str:
        return f'{{"status": "{status}", "number_of_data_nodes": {nodes}, "active_shards": {active}}}'

    yield "es exactly enough", [v.elasticsearch_finding(cluster("green", 2, 1990), "{}", 10, OPTIONS)]
    yield "es one shard short", [v.elasticsearch_finding(cluster("green", 2, 1991), "{}", 10, OPTIONS)]
    yield "es red", [v.elasticsearch_finding(cluster("red", 1, 0), "{}", 1, OPTIONS)]
    yield "es yellow", [v.elasticsearch_finding(cluster("yellow", 1, 0), "{}", 1, OPTIONS)]
    yield "es garbage", [v.elasticsearch_finding("not json", "{}", 1, OPTIONS)]
    yield "es missing key", [v.elasticsearch_finding('{"status": "green"}', "{}", 1, OPTIONS)]
    two_shards = v.PreflightOptions(shards_per_index=2)
    limit = '{"persistent": {"cluster.max_shards_per_node": "30"}}'
    yield "es two shards per index", [v.elasticsearch_finding(cluster("green", 1, 10), limit, 10, two_shards)]

    yield "api key none, main open", [v.api_key_finding(None, "200", None, None)]
    yield "api key none, main 401", [v.api_key_finding(None, "401", None, None)]
    yield "api key none, main silent", [v.api_key_finding(None, None, None, None)]
    yield "api key, main not reached", [v.api_key_finding("env KEY", None, "acme", None)]
    yield "api key refused by main", [v.api_key_finding("env KEY", "401", "acme", None)]
    yield "api key refused by tenant", [v.api_key_finding("env KEY", "200", "acme", "502")]
    yield "api key main and tenant", [v.api_key_finding("env KEY", "200", "acme", "200")]
    yield "api key main, no tenant", [v.api_key_finding("env KEY", "200", None, None)]


def render() -> str:
    lines = []
    for label, findings in cases():
        lines.append(f"## {label}")
        for item in findings:
            if isinstance(item, Finding):
                lines.append(
                    f"{item.check} | {item.server} | {item.verdict.value} | {item.detail} | {item.fix}"
                )
            else:
                lines.append(item)
    return "\n".join(lines) + "\n"


def test_every_verdict_reads_as_the_golden_file_says() -> None:
    assert_matches(render(), GOLDEN)
