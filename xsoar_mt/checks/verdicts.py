"""Pure verdicts: from what a server, a TLS handshake or Elasticsearch answered to findings with fixes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from xsoar_mt.checks.model import Finding, FindingVerdict, Link, PathResult, PathState
from xsoar_mt.checks.survey import DiskSpace, Section, parse_df
from xsoar_mt.errors import InvalidInput, PlanRefused
from xsoar_mt.inventory import Inventory
from xsoar_mt.observed import Observed, ServerView, Source, unknown_lines
from xsoar_mt.plan import Plan, PlanFacts, Scope
from xsoar_mt.releases import Version
from xsoar_mt.skew import DEGRADED_FUNCTIONS, Judgement, SkewVerdict, judge_releases
from xsoar_mt.workdir import CHECK, directories, judge_workdir, parse_walk

GB = 1000**3
GIB = 1024**3
# The vendor's sizing per server; each host and each tenant counts as one: cores, memory in GiB (the
# vendor's "32 GB" of RAM) and disk in GB (its "1 TB" disk, sold in decimal units). Every figure shown
# is in GiB.
SIZING: Mapping[str, tuple[int, int, int]] = {"production": (16, 32, 1000), "dev": (8, 16, 500)}
# A 32 GiB machine reports a little less to the OS, a 1 TB disk less after formatting.
SIZE_TOLERANCE = 0.9


@dataclass(frozen=True)
class PreflightOptions:
    """Thresholds the vendor does not document; the CLI can change them."""

    min_installer_free_gb: float = 4.0  # GiB: the installer file plus its extraction
    min_data_free_gb: float = 10.0  # GiB: the installer's backup of /var/lib/demisto lands there
    cert_warn_days: int = 30
    shards_per_index: int = 1  # shards each new Elasticsearch index takes (primaries x copies)


# -- ssh, sudo, version -----------------------------------------------------------------------------


def ssh_finding(server: str, error: str | None, kind: str = "") -> Finding:
    if error is None:
        return Finding(
            "ssh", server, FindingVerdict.PASS, "reachable, authenticated, host key matches known_hosts"
        )
    fixes = {
        "host-key": "verify the fingerprint with the server's owner and fix known_hosts "
        "(for a first contact: --accept-new-host-keys); a changed key is never accepted",
        "auth": "check ssh.user and ssh.identity_file (or your agent) for this server",
        "unreachable": "check the address, ssh_port, bastion and firewall from this machine",
    }
    return Finding(
        "ssh",
        server,
        FindingVerdict.FAIL,
        f"{error}; the other checks of this server did not run",
        fixes.get(kind, ""),
    )


def sudo_finding(server: str, sudo_ok: bool | None, error: str | None, with_password: bool) -> Finding:
    fix = "set ssh.sudo_password (env, file or prompt) for this server, or allow the user passwordless sudo"
    if error is not None:
        return Finding("sudo", server, FindingVerdict.FAIL, error, fix)
    if not sudo_ok:
        return Finding(
            "sudo", server, FindingVerdict.FAIL, "`sudo true` failed (is the user allowed sudo?)", fix
        )
    how = "with the configured password" if with_password else "without a password prompt"
    return Finding("sudo", server, FindingVerdict.PASS, f"sudo works {how}")


def server_version_finding(view: ServerView, in_scope: bool = True) -> Finding:
    """One server's version: where it comes from, what disagrees, and whether a plan can start from it."""
    name = view.server
    scope = "" if in_scope else " (out of scope: read only)"
    if view.version is not None:
        source = view.source.value if view.source else "?"
        detail = f"{view.version} ({source}, {view.service.value}){scope}"
        if view.notes:
            return Finding(
                "version",
                name,
                FindingVerdict.WARN,
                f"{detail}; {'; '.join(view.notes)}",
                f"fix or remove `version:` for {name} in the inventory: the server's own answer is used",
            )
        if view.source is Source.API:
            return Finding("version", name, FindingVerdict.PASS, detail)
        return Finding(
            "version",
            name,
            FindingVerdict.WARN,
            f"{detail}: the service does not answer, so the {source} is used",
            "start the service (`sudo service demisto start`) so its running version can be read",
        )
    if view.in_flight is not None:
        return Finding(
            "version",
            name,
            FindingVerdict.WARN,
            f"{view.unknown}{scope}: `upgrade run` follows it to its end and never starts it again",
            "let it finish, or `xsoar-mt upgrade run --resume` to follow it",
        )
    if view.basis is not None:
        return Finding(
            "version",
            name,
            FindingVerdict.WARN,
            f"version unknown ({view.unknown}){scope}; planned from {view.basis}, its last verified version, "
            "so that install runs again",
            "fix what made the installer fail (its log is in the installer directory), then run or resume",
        )
    return Finding(
        "version",
        name,
        FindingVerdict.FAIL,
        unknown_lines([view], "the inventory")[0],
        "start the service so /about answers, or give the server's `version:` in the inventory",
    )


_SKEW_ORDER = [SkewVerdict.OK, SkewVerdict.DEGRADED, SkewVerdict.UNSUPPORTED]


def _degraded_along(judged: Judgement | None, plan: Plan, after: Judgement) -> bool:
    """Whether hosts lag main by one release now, at some step of the plan, or after it."""
    worst = max((s.verdict_after for s in plan.steps), key=_SKEW_ORDER.index, default=after.verdict)
    lagging_now = judged is not None and judged.verdict is SkewVerdict.DEGRADED
    return lagging_now or SkewVerdict.DEGRADED in (worst, after.verdict)


def skew_finding(
    inventory: Inventory,
    observed: Observed,
    target: str,
    scope: Scope = Scope(),
    facts: PlanFacts | None = None,
) -> Finding:
    """The skew verdict now, on every server of the deployment, and after the plan to `target` for `scope`."""
    from xsoar_mt.planner import plan_upgrade

    judged = observed.judge(inventory)
    now = _skew_now(judged, observed)
    if observed.unknown():
        names = ", ".join(v.server for v in observed.unknown())
        return Finding(
            "version",
            "deployment",
            FindingVerdict.FAIL,
            f"{now}; no plan can start without a version for {names}",
            "settle each server's version (see its own finding), then run again",
        )
    try:
        plan = plan_upgrade(inventory, observed.versions(), target, scope, facts or PlanFacts())
    except (PlanRefused, InvalidInput) as exc:
        already = judged is not None and judged.verdict is SkewVerdict.UNSUPPORTED  # the refusal says it all
        return Finding(
            "version",
            "deployment",
            FindingVerdict.FAIL,
            exc.message if already else f"{now}; {exc.message}",
            exc.hint or "",
        )
    after = after_plan(inventory, observed.versions(), plan)
    reasons = "; ".join(f.reason for f in after.faults)
    what = (
        "nothing to do"
        if plan.nothing_to_do
        else f"hops {' -> '.join(plan.hops) or 'none'}, {plan.step_count} steps"
    )
    detail = f"{now}; after the plan to {target} ({scope.describe()}; {what}): {after.verdict.value}"
    detail += f" ({reasons})" if reasons else ""
    if _degraded_along(judged, plan, after) or plan.degraded_functions:
        functions = "; ".join(plan.degraded_functions or DEGRADED_FUNCTIONS)
        return Finding(
            "version",
            "deployment",
            FindingVerdict.WARN,
            f"{detail}; while hosts lag main by one release these do not work: {functions}",
            "upgrade every host group in the same window to keep the degraded time short",
        )
    return Finding("version", "deployment", FindingVerdict.PASS, detail)


def _skew_now(judged: Judgement | None, observed: Observed) -> str:
    """The skew verdict on the servers as they are, for the deployment's version finding."""
    if judged is None:
        missing = [v.server for v in observed.views.values() if v.version is None]
        return f"now: cannot be judged (version unknown for {', '.join(missing)})"
    reasons = "; ".join(f.reason for f in judged.faults)
    return f"now {judged.verdict.value}" + (f" ({reasons})" if reasons else "")


def after_plan(inventory: Inventory, versions: Mapping[str, Version], plan: Plan) -> Judgement:
    """The skew verdict once every install of `plan` is done."""
    releases = {name: version.release for name, version in versions.items()}
    for step in plan.steps:
        if step.sets_release is not None:
            releases.update(dict.fromkeys(step.servers, step.sets_release))
    in_order = {s.name: releases[s.name] for s in inventory.servers}
    return judge_releases(in_order, {s.name for s in inventory.main.servers}, inventory.releases)


# -- installer --------------------------------------------------------------------------------------

_WGET_CODES = {
    4: "network failure",
    5: "TLS failure",
    6: "authentication failure",
    8: "the server answered an error",
}
_CURL_CODES = {
    6: "host not resolved",
    7: "cannot connect",
    22: "the server answered an error",
    28: "timed out",
    35: "TLS failure",
    60: "certificate not trusted",
}


def working_directory_finding(server: str, section: Section | None, inventory: Inventory) -> Finding:
    """Whether the working directories on `server` (installer.directory, commands.backup_dir) and their
    parents are private enough to write to as root. Mandatory: the failure cannot be ignored."""
    named = directories(inventory)
    uid, entries = parse_walk(section.text if section is not None else "", len(named))
    for (setting, path), found in zip(named, entries, strict=True):
        problem = judge_workdir(setting, path, found, uid)
        if problem is not None:
            return Finding(CHECK, server, FindingVerdict.FAIL, problem.detail, problem.fix)
    shown = " and ".join(path for _, path in named)
    return Finding(CHECK, server, FindingVerdict.PASS, f"{shown}: private (missing ones are made 0700)")


def installer_link_finding(server: str, section: Section | None, release: str) -> Finding:
    fix = (
        "check installer.link (a fresh link from the vendor, host download.demisto.com) and that the server "
        "reaches download.demisto.com:443 (proxy, firewall); or use delivery: upload"
    )
    if section is None:
        return Finding("installer", server, FindingVerdict.FAIL, "the link check printed nothing", fix)
    tool = "wget" if "tool=wget" in section.text else "curl"
    if section.rc == 0:
        return Finding(
            "installer", server, FindingVerdict.PASS, f"the download link for {release} answers ({tool})"
        )
    meaning = (_WGET_CODES if tool == "wget" else _CURL_CODES).get(section.rc or -1, "failed")
    last = [line for line in section.text.splitlines() if line.strip() and not line.startswith("tool=")]
    tail = f": {last[-1].strip()}" if last else ""
    return Finding(
        "installer",
        server,
        FindingVerdict.FAIL,
        f"the download link does not answer ({tool} exit {section.rc}, {meaning}){tail}",
        fix,
    )


def local_installer_finding(path: str, exists: bool, digest: str | None, expected: str | None) -> Finding:
    if not exists:
        return Finding(
            "installer",
            "local",
            FindingVerdict.FAIL,
            f"installer file {path} does not exist",
            "fix installer.file",
        )
    if expected is None:
        return Finding(
            "installer", "local", FindingVerdict.PASS, f"{path} exists (no sha256 given to compare)"
        )
    if digest != expected:
        return Finding(
            "installer",
            "local",
            FindingVerdict.FAIL,
            f"{path} has sha256 {digest}, the inventory expects {expected}",
            "download the installer again, or correct installer.sha256",
        )
    return Finding("installer", "local", FindingVerdict.PASS, f"{path} exists and its sha256 matches")


# -- disk, /tmp, system -----------------------------------------------------------------------------


def _gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def disk_findings(
    server: str,
    installer: Section | None,
    data: Section | None,
    installer_dir: str,
    options: PreflightOptions,
) -> list[Finding]:
    findings = []
    for what, section, need_gb in (
        (f"installer directory {installer_dir}", installer, options.min_installer_free_gb),
        ("/var/lib/demisto", data, options.min_data_free_gb),
    ):
        space = parse_df(section.text) if section else None
        if space is None:
            findings.append(
                Finding("disk", server, FindingVerdict.FAIL, f"{what}: df printed nothing usable")
            )
            continue
        need = int(need_gb * GIB)
        if space.free_bytes < need:
            findings.append(
                Finding(
                    "disk",
                    server,
                    FindingVerdict.FAIL,
                    f"{what}: {_gib(space.free_bytes)} free on {space.path}, needs {_gib(need)}",
                    f"free space on {space.path}, or point installer.directory elsewhere "
                    "(thresholds: --min-installer-free-gb, --min-data-free-gb)",
                )
            )
        else:
            findings.append(
                Finding(
                    "disk",
                    server,
                    FindingVerdict.PASS,
                    f"{what}: {_gib(space.free_bytes)} free on {space.path}",
                )
            )
    return findings


def _options(section: Section | None) -> list[str]:
    return section.text.strip().split(",") if section and section.text.strip() else []


def tmp_finding(
    server: str,
    section: Section | None,
    extract_dir: str,
    target_dir_set: bool,
    *,
    installer: Section | None = None,
    installer_dir: str = "",
    auto_dir: str | None = None,
) -> tuple[Finding, str | None]:
    """Can the installer run and extract itself? Returns the finding, and the `-target` directory the run
    adds for this server (when /tmp is noexec and the inventory names none) or None.

    `auto_dir` is that directory (under installer.directory, whose mount must allow exec anyway), or None
    when commands.install has no {target} to put it in.
    """
    if "noexec" in _options(installer):
        return Finding(
            "tmp-noexec",
            server,
            FindingVerdict.FAIL,
            f"installer.directory {installer_dir} is on a noexec mount: the installer cannot run from it",
            "set installer.directory to a directory on a mount that allows exec",
        ), None
    options = _options(section)
    if not options:
        return Finding(
            "tmp-noexec", server, FindingVerdict.WARN, f"could not read the mount options of {extract_dir}"
        ), None
    if "noexec" not in options:
        return Finding(
            "tmp-noexec",
            server,
            FindingVerdict.PASS,
            f"{extract_dir} allows exec (the installer extracts there)",
        ), None
    problem = f"{extract_dir} is mounted noexec: the installer cannot run from it"
    if target_dir_set:
        fix = f"installer.target_dir {extract_dir} is mounted noexec too: choose a directory that allows exec"
        return Finding("tmp-noexec", server, FindingVerdict.FAIL, problem, fix), None
    if auto_dir is None:
        fix = "commands.install has no {target}: add it, so the installer can be given -target"
        return Finding("tmp-noexec", server, FindingVerdict.FAIL, problem, fix), None
    return Finding(
        "tmp-noexec",
        server,
        FindingVerdict.WARN,
        f"{extract_dir} is mounted noexec: this server's installer gets -target {auto_dir}",
        "nothing to do; set installer.target_dir to choose the directory yourself",
    ), auto_dir


def system_finding(
    server: str, cores: int | None, memory: int | None, disk: DiskSpace | None, profile: str, units: int
) -> Finding:
    """Against the vendor's sizing: below one server's size fails; below host + tenants' size warns."""
    if cores is None or memory is None or disk is None:
        return Finding("system", server, FindingVerdict.WARN, "could not read cores, memory or disk size")
    per_cores, per_mem, per_disk = SIZING[profile]
    have = f"{cores} cores, {memory / GIB:.0f} GiB memory, {_gib(disk.total_bytes)} disk on {disk.path}"

    def short(count: int, sizing: tuple[int, int, int] = (per_cores, per_mem, per_disk)) -> list[str]:
        out = []
        if cores < sizing[0] * count:
            out.append(f"{sizing[0] * count} cores")
        if memory < sizing[1] * count * GIB * SIZE_TOLERANCE:
            out.append(f"{sizing[1] * count} GiB memory")
        if disk.total_bytes < sizing[2] * count * GB * SIZE_TOLERANCE:
            out.append(f"{sizing[2] * count * GB / GIB:.0f} GiB disk")
        return out

    below_one = short(1)
    if below_one:
        # Suggest the dev profile only where it would pass: on a server too small for it, it fails as well.
        fits_dev = profile != "dev" and not short(1, SIZING["dev"])
        lesser = (
            "set deployment.profile: dev for a non-production deployment (its sizing fits this server)"
            if fits_dev
            else "for a lab knowingly this small, pass --ignore-preflight-errors=system"
        )
        return Finding(
            "system",
            server,
            FindingVerdict.FAIL,
            f"{have}; the {profile} sizing of one server needs {', '.join(below_one)}",
            f"add resources, or {lesser}",
        )
    below_all = short(units)
    if below_all:
        return Finding(
            "system",
            server,
            FindingVerdict.WARN,
            f"{have}; it runs {units - 1} tenant{'' if units == 2 else 's'} and the vendor counts each as a server: "
            f"{units} x {profile} needs {', '.join(below_all)}",
            "add resources before adding load, or move tenants to another host",
        )
    return Finding("system", server, FindingVerdict.PASS, f"{have} (enough for {units} x {profile})")


# -- communication ----------------------------------------------------------------------------------


def path_state(code: str) -> PathState:
    if code == "0":
        return PathState.OPEN
    if code == "124":
        return PathState.TIMEOUT
    if code == "untested":
        return PathState.UNTESTED
    return PathState.REFUSED


def behind_stopped_service(result: PathResult, stopped: frozenset[str]) -> PathResult:
    """A refused path to a server whose service is stopped says nothing about the network: mark it."""
    destination = result.link.target.split("@")[-1]
    if result.state is PathState.REFUSED and destination in stopped:
        return replace(result, state=PathState.STOPPED)
    return result


def communication_finding(server: str, results: Sequence[PathResult]) -> Finding:
    closed = [r for r in results if r.link.required and r.state in (PathState.REFUSED, PathState.TIMEOUT)]
    untested = [r for r in results if r.state is PathState.UNTESTED]
    stopped = [r for r in results if r.state is PathState.STOPPED]
    extra = [r for r in results if not r.link.required and r.state is PathState.OPEN]

    def name(r: PathResult) -> str:
        return f"{r.link.target} {r.link.address}:{r.link.port} ({r.link.why}, {r.state.value})"

    notes = ""
    if extra:
        notes = "; open but not required: " + ", ".join(name(r) for r in extra)
    required = sum(1 for r in results if r.link.required)
    if closed:
        return Finding(
            "communication",
            server,
            FindingVerdict.FAIL,
            f"{len(closed)} of {required} required {'path' if required == 1 else 'paths'} closed: "
            + ", ".join(name(r) for r in closed)
            + notes,
            "open these ports between the servers (firewall, security groups) and check the service listens",
        )
    if stopped:
        return Finding(
            "communication",
            server,
            FindingVerdict.WARN,
            f"{len(stopped)} {'path leads' if len(stopped) == 1 else 'paths lead'} to a stopped service and "
            "cannot be tested until it runs: " + ", ".join(name(r) for r in stopped) + notes,
            "start the service, or let `upgrade run --resume` start it, then check again",
        )
    if untested:
        return Finding(
            "communication",
            server,
            FindingVerdict.WARN,
            f"{len(untested)} {'path' if len(untested) == 1 else 'paths'} could not be tested (no bash with timeout, and no nc)"
            + notes,
            "install nc, or test the paths by hand",
        )
    return Finding(
        "communication",
        server,
        FindingVerdict.PASS,
        (
            f"the required path is open{notes}"
            if required == 1
            else f"all {required} required paths open{notes}"
        ),
    )


# -- TLS --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsObservation:
    """What the operator's machine saw on a server's communication port."""

    negotiated: str | None  # e.g. TLSv1.3; None when no handshake at TLS 1.2 or newer
    old_accepted: tuple[str, ...] = ()  # e.g. ("TLSv1",)
    subject: str = ""
    issuer: str = ""
    days_left: int | None = None
    fingerprint: str = ""
    error: str | None = None  # could not connect at all


def tls_findings(
    observations: Mapping[str, TlsObservation], groups: Sequence[Sequence[str]], options: PreflightOptions
) -> list[Finding]:
    """One finding per server; `groups` lists the servers of each HA group (they must share a certificate)."""
    peers: dict[str, Sequence[str]] = {name: group for group in groups for name in group}
    return [_tls_finding(server, observations, peers, options) for server in observations]


def _tls_finding(
    server: str,
    observations: Mapping[str, TlsObservation],
    peers: Mapping[str, Sequence[str]],
    options: PreflightOptions,
) -> Finding:
    seen = observations[server]
    if seen.error is not None:
        return Finding(
            "tls",
            server,
            FindingVerdict.WARN,
            f"not checked: {seen.error}",
            "run preflight from a machine that reaches the communication port, or check TLS by hand",
        )
    problems: list[str] = []
    warnings: list[str] = []
    if seen.negotiated is None:
        problems.append("no handshake at TLS 1.2 or newer")
    if seen.old_accepted:
        problems.append(f"the server also accepts {', '.join(seen.old_accepted)} (below TLS 1.2)")
    if seen.days_left is not None and seen.days_left < 0:
        problems.append(f"the certificate expired {-seen.days_left} days ago")
    elif seen.days_left is not None and seen.days_left < options.cert_warn_days:
        warnings.append(f"the certificate expires in {seen.days_left} days")
    others = [p for p in peers.get(server, ()) if p != server and p in observations]
    differing = [
        p for p in others if observations[p].fingerprint and observations[p].fingerprint != seen.fingerprint
    ]
    if differing and seen.fingerprint:
        problems.append(f"its certificate differs from its HA peer(s) {', '.join(differing)}")
    self_signed = " (self-signed)" if seen.subject and seen.subject == seen.issuer else ""
    expiry = f", {seen.days_left} days left" if seen.days_left is not None else ""
    facts = f"{seen.negotiated or 'no TLS 1.2+'}; certificate {seen.subject}{self_signed}, issuer {seen.issuer}{expiry}"
    if problems:
        return Finding(
            "tls",
            server,
            FindingVerdict.FAIL,
            "; ".join(problems + warnings) + f" [{facts}]",
            "serve TLS 1.2+ only; replace /usr/local/demisto/cert.pem and cert.key (owner demisto:demisto) "
            "with a valid certificate, the same on every server of an HA group",
        )
    if warnings:
        return Finding(
            "tls", server, FindingVerdict.WARN, "; ".join(warnings) + f" [{facts}]", "renew the certificate"
        )
    return Finding("tls", server, FindingVerdict.PASS, facts)


# -- Elasticsearch ----------------------------------------------------------------------------------


def _setting(data: Mapping[str, Any], dotted: str) -> Any:
    if dotted in data:
        return data[dotted]
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def max_shards_per_node(settings: Mapping[str, Any]) -> int:
    """`cluster.max_shards_per_node`: transient over persistent over defaults; 1000 when absent."""
    for scope in ("transient", "persistent", "defaults"):
        value = _setting(settings.get(scope) or {}, "cluster.max_shards_per_node")
        if value is not None:
            return int(value)
    return 1000


def elasticsearch_finding(
    health_text: str, settings_text: str, needed_indices: int, options: PreflightOptions
) -> Finding:
    try:
        health = json.loads(health_text)
        settings = json.loads(settings_text)
        status = str(health["status"])
        data_nodes = int(health["number_of_data_nodes"])
        active = int(health["active_shards"])
        limit = max_shards_per_node(settings)
    except (ValueError, KeyError, TypeError) as exc:
        return Finding(
            "elasticsearch", "cluster", FindingVerdict.FAIL, f"unexpected answer from the cluster ({exc})"
        )
    free = limit * data_nodes - active
    needed = needed_indices * options.shards_per_index
    facts = (
        f"status {status}; {data_nodes} data node(s) x max_shards_per_node {limit} - {active} active shards "
        f"= {free} free; the upgrade adds {needed_indices} indices ({needed} shards)"
    )
    if free < needed:
        return Finding(
            "elasticsearch",
            "cluster",
            FindingVerdict.FAIL,
            f"too few free shards: {facts}",
            "raise cluster.max_shards_per_node, add data nodes, or delete unused indices before the upgrade",
        )
    if status == "red":
        return Finding(
            "elasticsearch",
            "cluster",
            FindingVerdict.FAIL,
            f"cluster health is red: {facts}",
            "repair the cluster first",
        )
    if status != "green":
        return Finding(
            "elasticsearch",
            "cluster",
            FindingVerdict.WARN,
            f"cluster health is {status}: {facts}",
            "bring the cluster to green",
        )
    return Finding("elasticsearch", "cluster", FindingVerdict.PASS, facts)


def needed_indices(inventory: Inventory) -> int:
    """One new index per tenant, per host group and for main (the vendor, from 6.5 on)."""
    return sum(len(g.tenants) for g in inventory.groups) + len(inventory.hosts) + 1


# -- API key ----------------------------------------------------------------------------------------


def api_key_finding(
    source: str | None, main_code: str | None, tenant: str | None, tenant_code: str | None
) -> Finding:
    """Whether the key is a main-account key: main's /about accepts it, and a tenant through main does too."""
    if source is None:
        if main_code == "200":
            return Finding(
                "api-key",
                "deployment",
                FindingVerdict.PASS,
                "no API key configured; main answers without one",
            )
        return Finding(
            "api-key",
            "deployment",
            FindingVerdict.FAIL if main_code == "401" else FindingVerdict.WARN,
            f"no API key configured; main's /about answered {main_code or 'nothing'}",
            "create an API key on main and give it as deployment.api_key: {env: NAME} or {file: PATH}",
        )
    if main_code is None:
        return Finding(
            "api-key", "deployment", FindingVerdict.WARN, f"key from {source}; not checked (main not reached)"
        )
    if main_code != "200":
        return Finding(
            "api-key",
            "deployment",
            FindingVerdict.FAIL,
            f"key from {source}: main's /about answered {main_code}, so it is not a main-account key "
            "(a tenant's key works only on that tenant) or it is wrong",
            "create the key on main (Settings > Integrations > API Keys on the main account)",
        )
    through = ""
    if tenant is not None:
        if tenant_code != "200":
            return Finding(
                "api-key",
                "deployment",
                FindingVerdict.FAIL,
                f"key from {source}: main accepts it but tenant {tenant} through main answered {tenant_code}",
                "check that the tenant runs and that the key was created on main",
            )
        through = f" and by tenant {tenant} through main"
    return Finding(
        "api-key",
        "deployment",
        FindingVerdict.PASS,
        f"main-account key from {source}: accepted by main{through}; "
        "it reaches every tenant, so anyone holding it can reach all of them",
    )


def path_results(links: Sequence[Link], codes: Mapping[tuple[str, int], str]) -> list[PathResult]:
    return [PathResult(k, path_state(codes.get((k.address, k.port), "untested"))) for k in links]
