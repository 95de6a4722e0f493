"""Running the preflight checks: gather from every server at once (two round trips each), then judge."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import xsoar_mt.checks.verdicts as v
from xsoar_mt.checks.elasticsearch import cluster_answers
from xsoar_mt.checks.matrix import communication_links
from xsoar_mt.checks.model import (
    CHECKS,
    Finding,
    FindingVerdict,
    PathResult,
    PreflightReport,
    apply_ignore,
    parse_ignore,
)
from xsoar_mt.checks.survey import (
    Section,
    SurveyRequest,
    link_check_script,
    parse_df,
    parse_int,
    parse_memory,
    parse_sections,
    parse_tcp,
    survey_script,
    survey_stdin,
)
from xsoar_mt.checks.tls import observe_tls
from xsoar_mt.errors import InvalidInput
from xsoar_mt.framed import Unreadable, shown_text
from xsoar_mt.installer import download_name, file_sha256, local_installer, normalise_link
from xsoar_mt.inventory import Inventory, Topology, url_address
from xsoar_mt.observed import Known, Observed, Reading, resolve
from xsoar_mt.plan import Scope
from xsoar_mt.probe import (
    observe_server,
    parse_version,
    read_version,
    state_command,
    state_reading,
    version_command,
)
from xsoar_mt.releases import Version
from xsoar_mt.remote import ConnectionLost, HostKeyRefused, RemoteError, RemoteShell, SudoRejected
from xsoar_mt.remote_paths import RemotePaths
from xsoar_mt.secrets import REDACTOR, RunSecrets, read_secret
from xsoar_mt.workdir import directories


@dataclass
class ServerFacts:
    """What the two round trips to one server gave back."""

    server: str
    ssh_error: str | None = None
    ssh_kind: str = ""
    sudo_error: str | None = None
    state: Reading | None = None  # what the state command printed, as probe.py reads it
    version: Version | None = None
    version_error: str | None = None
    sections: dict[str, Section] = field(default_factory=dict)

    @property
    def sudo_ok(self) -> bool | None:
        if self.state is not None:
            return self.state.sudo_ok
        return False if self.sudo_error is not None else None

    @property
    def running(self) -> bool | None:
        return self.state.status_code == 0 if self.state is not None and self.state.sudo_ok else None

    def reading(self) -> Reading:
        """The same facts as the observed-state model reads them (no second probe)."""
        return replace(
            self.state or Reading(self.server, time.time(), sudo_ok=self.sudo_ok),
            error=self.ssh_error or self.sudo_error,
            api_version=self.version,
            api_error=self.version_error,
        )


def _survey_request(
    inventory: Inventory, server: str, target: str, link: bool, with_version: bool
) -> SurveyRequest:
    installer = inventory.installer
    main = inventory.main
    api_urls: list[tuple[str, str]] = []
    if server == main.servers[0].name:
        base = f"https://{url_address(main.servers[0].address)}:{inventory.communication_port}"
        api_urls.append(("main", f"{base}/about"))
        tenants = [t for g in inventory.groups for t in g.tenants]
        if tenants:
            api_urls.append((f"tenant {tenants[0].name}", f"{base}/{tenants[0].account}/about"))
    return SurveyRequest(
        installer_dir=installer.directory,
        extract_dir=installer.target_dir or "/tmp",
        links=[k for k in communication_links(inventory) if k.source == server],
        version_command=version_command(inventory, server) if with_version else None,
        link_check=link,
        api_key_urls=api_urls,
        work_dirs=[path for _, path in directories(inventory)],
    )


def gather(
    inventory: Inventory, shell: RemoteShell, target: str, secrets: RunSecrets, link: str | None
) -> ServerFacts:
    """Round trip 1: sudo and service state (may answer sudo's prompt). Round trip 2: everything else."""
    facts = ServerFacts(shell.server)
    try:
        shell.connect()
    except HostKeyRefused as exc:
        facts.ssh_error, facts.ssh_kind = exc.detail, "host-key"
        return facts
    except ConnectionLost as exc:
        facts.ssh_error, facts.ssh_kind = exc.detail, "unreachable"
        return facts
    except RemoteError as exc:
        facts.ssh_error, facts.ssh_kind = exc.detail, "auth"
        return facts
    try:
        state = shell.run(state_command(inventory, shell.server, with_version=False), timeout=60)
        facts.state = state_reading(shell.server, state.stdout, time.time())
        if not facts.state.sudo_ok:
            facts.sudo_error = f"`sudo true` failed: {state.tail(2) or 'no output'}"
    except SudoRejected as exc:
        facts.sudo_error = exc.detail
    except RemoteError as exc:
        facts.ssh_error, facts.ssh_kind = exc.detail, "unreachable"
        return facts
    version_in_script = "sudo" not in inventory.commands.version  # stdin and a sudo password do not mix
    request = _survey_request(
        inventory, shell.server, target, link is not None, facts.running is not False and version_in_script
    )
    try:
        result = shell.run(survey_script(request), stdin=survey_stdin(secrets.api_key, link), timeout=90)
        try:
            facts.sections = parse_sections(result.stdout)
        except Unreadable as exc:  # this server's facts are unknown; the others' are read as ever
            facts.version_error = f"its preflight answer cannot be read ({exc.reason})"
        if facts.running is not False and not version_in_script:
            facts.version = read_version(shell, inventory, secrets.api_key)
    except RemoteError as exc:
        facts.version_error = exc.detail
    found = facts.sections.get("version")
    if found is not None:
        try:
            if found.rc != 0:
                raise InvalidInput(
                    f"the version probe failed (exit {found.rc}): {shown_text(found.text.strip()[-120:])}"
                )
            facts.version = parse_version(found.text)
        except InvalidInput as exc:
            facts.version_error = exc.message
    return facts


@dataclass(frozen=True)
class PreflightInput:
    """What preflight is asked: the target, the checks lowered to warnings, the thresholds, the servers in
    scope (all by default; the rest are read only), and what the local record adds: each server's last
    view (a version's third source), the backups taken, and whether a run is being resumed (`verify`)."""

    target: str
    ignore: frozenset[str] | str | None = None
    options: v.PreflightOptions = field(default_factory=v.PreflightOptions)
    servers: Sequence[str] | None = None
    scope: Scope = field(default_factory=Scope)
    known: Mapping[str, Known] = field(default_factory=dict)
    backed_up: Mapping[str, Sequence[str]] = field(default_factory=dict)
    verify: bool = False


@dataclass
class _Gathered:
    """What every server and this machine answered, before any verdict."""

    facts: dict[str, ServerFacts]  # the servers in scope
    others: list[str]  # the servers read only
    readings: dict[str, Reading]
    tls: dict[str, v.TlsObservation]
    local: list[Finding]  # the link asked from this machine, Elasticsearch


@dataclass
class _Judged:
    findings: list[Finding] = field(default_factory=list)
    paths: list[PathResult] = field(default_factory=list)
    extract_dirs: dict[str, str] = field(default_factory=dict)


def run_preflight(
    inventory: Inventory,
    shells: Callable[[str], RemoteShell],
    secrets: RunSecrets,
    asked: PreflightInput | str,
) -> PreflightReport:
    """Every preflight check against every server in scope, concurrently; nothing is changed.

    The servers out of scope are read too, read-only (one round trip each, two with a sudo password), so
    the skew rule is judged on the whole deployment: scope narrows what changes, never what is observed.
    `secrets` carries the download link (for the installer check) and the API key; the Elasticsearch
    credentials are read here from their source. `report.blocking` lists what stops an upgrade.
    `asked` may be just the target.
    """
    started = time.monotonic()
    asked = asked if isinstance(asked, PreflightInput) else PreflightInput(asked)
    ignored = asked.ignore if isinstance(asked.ignore, frozenset) else parse_ignore(asked.ignore)
    names = list(asked.servers) if asked.servers is not None else [s.name for s in inventory.servers]
    link, findings = _download_link(inventory, secrets, asked.target, inventory.installer.build)
    gathered = _gather_all(inventory, shells, secrets, asked, names, link)
    findings += gathered.local
    observed = resolve(inventory, gathered.readings, asked.known)
    judged = _judge_servers(inventory, gathered.facts, observed, link, asked)
    findings += judged.findings
    ha_groups = [[s.name for s in g.servers] for g in inventory.groups if g.topology is Topology.HA]
    findings += v.tls_findings(gathered.tls, ha_groups, asked.options)
    for name in gathered.others:  # read only: a version finding each, so an unknown one is named
        findings.append(v.server_version_finding(observed[name], in_scope=False))
    findings.append(_api_key(inventory, gathered.facts))
    facts = observed.facts(asked.backed_up, asked.verify)
    findings.append(v.skew_finding(inventory, observed, asked.target, asked.scope, facts))
    order = list(CHECKS)
    findings.sort(key=lambda f: (order.index(f.check), _server_order(inventory, f.server)))
    redacted = [
        Finding(f.check, f.server, f.verdict, REDACTOR.redact(f.detail), REDACTOR.redact(f.fix))
        for f in findings
    ]
    stats_of = getattr(shells, "stats", None)
    return PreflightReport(
        target=asked.target,
        findings=apply_ignore(redacted, ignored),
        paths=tuple(judged.paths),
        ignored=tuple(sorted(ignored)),
        seconds=time.monotonic() - started,
        ssh=stats_of() if callable(stats_of) else {},
        observed=observed,
        readings=gathered.readings,
        extract_dirs=judged.extract_dirs,
    )


def _download_link(
    inventory: Inventory, secrets: RunSecrets, target: str, build: str | None
) -> tuple[str | None, list[Finding]]:
    """The link the servers download `target` (of `build`) from (server-download delivery), or the finding
    saying why there is none; with an installer file on this machine, that file's finding."""
    installer = inventory.installer
    if installer.delivery == "server-download":
        if secrets.link is None:
            missing = Finding(
                "installer",
                "local",
                FindingVerdict.FAIL,
                "no download link (installer.link is not set or unreadable)",
                "set installer.link: {env: NAME} or {file: PATH}",
            )
            return None, [missing]
        try:
            link = normalise_link(secrets.link, target, build)
        except InvalidInput as exc:
            return None, [
                Finding("installer", "local", FindingVerdict.FAIL, exc.message, "fix installer.link")
            ]
        REDACTOR.register(link)
        return link, []
    if installer.link is None:
        return None, [_local_installer(inventory, target)]
    return None, []  # upload from a link: the link is asked from this machine alongside the servers


def _gather_all(
    inventory: Inventory,
    shells: Callable[[str], RemoteShell],
    secrets: RunSecrets,
    asked: PreflightInput,
    names: list[str],
    link: str | None,
) -> _Gathered:
    """Every server at once (the ones in scope surveyed, the others read), TLS, the link, Elasticsearch."""
    installer = inventory.installer
    width = max(1, min(64, len(names)))
    local_link = installer.delivery == "upload" and installer.link is not None
    with ThreadPoolExecutor(max_workers=width * 2 + 2) as pool:
        link_job = (
            pool.submit(_local_link, inventory, secrets, asked.target, inventory.installer.build)
            if local_link
            else None
        )
        tls_jobs: dict[str, Future[v.TlsObservation]] = {
            name: pool.submit(observe_tls, inventory.server(name).address, inventory.communication_port)
            for name in names
        }
        es_job = (
            pool.submit(_elasticsearch, inventory, asked.options)
            if inventory.database == "elasticsearch"
            else None
        )
        fact_jobs = {
            name: pool.submit(gather, inventory, shells(name), asked.target, secrets, link) for name in names
        }
        others = [s.name for s in inventory.servers if s.name not in fact_jobs]
        read_jobs = {
            name: pool.submit(observe_server, shells(name), inventory, secrets.api_key) for name in others
        }
        facts = {name: job.result() for name, job in fact_jobs.items()}
        readings = {name: f.reading() for name, f in facts.items()}
        readings.update({name: job.result() for name, job in read_jobs.items()})
        tls = {name: job.result() for name, job in tls_jobs.items()}
        local = [job.result() for job in (link_job, es_job) if job is not None]
    return _Gathered(facts, others, readings, tls, local)


def _judge_servers(
    inventory: Inventory,
    facts: Mapping[str, ServerFacts],
    observed: Observed,
    link: str | None,
    asked: PreflightInput,
) -> _Judged:
    """The verdicts on each server in scope, and the communication paths from each."""
    judged = _Judged()
    stopped = frozenset(name for name, f in facts.items() if f.running is False)
    for name, seen in facts.items():
        links = [k for k in communication_links(inventory) if k.source == name]
        judged.findings.append(v.ssh_finding(name, seen.ssh_error, seen.ssh_kind))
        if seen.ssh_error is not None:
            continue
        has_password = inventory.server(name).ssh.sudo_password is not None
        judged.findings.append(v.sudo_finding(name, seen.sudo_ok, seen.sudo_error, has_password))
        judged.findings.append(v.server_version_finding(observed[name]))
        judged.findings.append(
            v.working_directory_finding(name, seen.sections.get("working-directory"), inventory)
        )
        if link is not None:
            judged.findings.append(
                v.installer_link_finding(name, seen.sections.get("installer-link"), asked.target)
            )
        judged.findings += _disk_and_tmp(inventory, name, seen, asked.options, judged.extract_dirs)
        judged.findings.append(_system(inventory, name, seen))
        tcp = parse_tcp(seen.sections["tcp"].text) if "tcp" in seen.sections else {}
        results = [v.behind_stopped_service(r, stopped) for r in v.path_results(links, tcp)]  # read at once
        judged.paths += results
        if links:
            judged.findings.append(v.communication_finding(name, results))
    for name, seen in facts.items():
        if seen.ssh_error is not None:
            links = [k for k in communication_links(inventory) if k.source == name]
            judged.paths += v.path_results(links, {})
    return judged


def _disk_and_tmp(
    inventory: Inventory,
    name: str,
    seen: ServerFacts,
    options: v.PreflightOptions,
    extract_dirs: dict[str, str],
) -> list[Finding]:
    """Free space where the installer and the data go, and where the installer extracts itself (noting
    the `-target` a noexec /tmp calls for in `extract_dirs`)."""
    installer = inventory.installer
    findings = v.disk_findings(
        name, seen.sections.get("df-installer"), seen.sections.get("df-data"), installer.directory, options
    )
    auto_dir = RemotePaths.of(inventory).extract if "{target}" in inventory.commands.install else None
    tmp, extract_dir = v.tmp_finding(
        name,
        seen.sections.get("extract-dir"),
        installer.target_dir or "/tmp",
        bool(installer.target_dir),
        installer=seen.sections.get("installer-dir-mount"),
        installer_dir=installer.directory,
        auto_dir=auto_dir,
    )
    if extract_dir is not None:
        extract_dirs[name] = extract_dir
    return [*findings, tmp]


def _server_order(inventory: Inventory, name: str) -> int:
    order = [s.name for s in inventory.servers]
    return order.index(name) if name in order else -1


def _system(inventory: Inventory, name: str, seen: ServerFacts) -> Finding:
    group = inventory.group_of(name)
    data = seen.sections.get("df-data")
    return v.system_finding(
        name,
        parse_int(seen.sections["nproc"].text) if "nproc" in seen.sections else None,
        parse_memory(seen.sections["memory"].text) if "memory" in seen.sections else None,
        parse_df(data.text) if data else None,
        inventory.profile,
        1 + len(group.tenants),
    )


def _api_key(inventory: Inventory, facts: dict[str, ServerFacts]) -> Finding:
    first = inventory.main.servers[0].name
    sections = facts[first].sections if first in facts else {}
    tenants = [t for g in inventory.groups for t in g.tenants]
    tenant = tenants[0].name if tenants else None

    def code(label: str) -> str | None:
        found = sections.get(f"api-key {label}")
        return found.text.strip()[-3:] if found is not None and found.text.strip() else None

    source = inventory.api_key.describe() if inventory.api_key else None
    return v.api_key_finding(source, code("main"), tenant, code(f"tenant {tenant}") if tenant else None)


def _elasticsearch(inventory: Inventory, options: v.PreflightOptions) -> Finding:
    if not inventory.elasticsearch_url:
        return Finding(
            "elasticsearch",
            "cluster",
            FindingVerdict.FAIL,
            "the database is Elasticsearch but deployment.elasticsearch_url is not set",
            "set deployment.elasticsearch_url (and elasticsearch_credentials)",
        )
    credentials = None
    if inventory.elasticsearch_credentials is not None:
        try:
            credentials = read_secret(inventory.elasticsearch_credentials, "Elasticsearch credentials")
        except InvalidInput as exc:
            return Finding(
                "elasticsearch",
                "cluster",
                FindingVerdict.FAIL,
                exc.message,
                "give the credentials as {env: NAME} or {file: PATH}",
            )
    try:
        health, settings = cluster_answers(inventory.elasticsearch_url, credentials)
    except OSError as exc:
        return Finding(
            "elasticsearch",
            "cluster",
            FindingVerdict.FAIL,
            str(exc),
            "check deployment.elasticsearch_url and the credentials, and that this machine reaches the cluster",
        )
    return v.elasticsearch_finding(health, settings, v.needed_indices(inventory), options)


def _local_link(inventory: Inventory, secrets: RunSecrets, target: str, build: str | None) -> Finding:
    """Upload delivery from a link: this machine downloads the installer, so this machine must reach it."""
    from xsoar_mt.download import DownloadFailed, check_link

    fix = "check installer.link (a fresh link from the vendor) and that this machine reaches its host"
    if secrets.link is None:
        return Finding(
            "installer", "local", FindingVerdict.FAIL, "no download link (installer.link is unreadable)", fix
        )
    try:
        return Finding("installer", "local", FindingVerdict.PASS, check_link(secrets.link, target, build))
    except (DownloadFailed, InvalidInput) as exc:
        return Finding("installer", "local", FindingVerdict.FAIL, exc.message, exc.hint or fix)


def _local_installer(inventory: Inventory, target: str) -> Finding:
    name = inventory.installer.file
    if name is None:
        return Finding(
            "installer",
            "local",
            FindingVerdict.FAIL,
            "delivery is upload but installer.file is not set",
            "set installer.file",
        )
    path = local_installer(inventory.installer, inventory.path, target)
    if not path.is_file():
        return v.local_installer_finding(str(path), False, None, None)
    expected = inventory.installer.sha256.get(target)
    digest = file_sha256(path) if expected is not None else None
    return v.local_installer_finding(str(path), True, digest, expected)


@dataclass(frozen=True)
class FetchAsked:
    """An installer a run fetches other than the upgrade's (a rollback's old release): its release, the
    build it is fetched for, and the servers it goes to."""

    release: str
    build: str | None
    servers: tuple[str, ...]


def fetch_findings(
    inventory: Inventory,
    shells: Callable[[str], RemoteShell],
    secrets: RunSecrets,
    asked: Sequence[FetchAsked],
    *,
    links: bool = True,
) -> list[Finding]:
    """Whether each installer in `asked` can be fetched the way the run will fetch it; read only.

    Server-download delivery: the link for that release and build, asked (headers only) from every server
    it goes to, as the upgrade's preflight asks it (the link on standard input). Upload delivery: the link
    asked from this machine, or the operator's file for that release, which `installer.file` must name
    with `{release}` unless `installer.sha256` pins that release. `links=False` (a dry run, which reads
    no link) checks only the operator's files.
    """
    installer = inventory.installer
    findings: list[Finding] = []
    width = max(1, min(64, sum(len(a.servers) for a in asked)))
    with ThreadPoolExecutor(max_workers=width) as pool:
        jobs: list[Future[Finding]] = []
        for want in asked:
            if installer.delivery == "upload" and installer.link is None:
                findings.append(_release_file(inventory, want.release))
            elif not links:
                continue
            elif installer.delivery == "upload":
                jobs.append(pool.submit(_local_link, inventory, secrets, want.release, want.build))
            else:
                link, missing = _download_link(inventory, secrets, want.release, want.build)
                findings += missing
                if link is not None:
                    jobs += [
                        pool.submit(_link_from, shells(server), link, want.release, want.build)
                        for server in want.servers
                    ]
        findings += [job.result() for job in jobs]
    return [replace(f, detail=REDACTOR.redact(f.detail), fix=REDACTOR.redact(f.fix)) for f in findings]


def _link_from(shell: RemoteShell, link: str, release: str, build: str | None) -> Finding:
    """The download link for `release` asked from one server (the survey's link check alone)."""
    fix = (
        f"check that the vendor still serves {release} (downloadName {download_name(release, build)}) to "
        "this link, and that the server reaches the download host; or use delivery: upload"
    )
    try:
        result = shell.run(link_check_script(), stdin=link + "\n", timeout=60)
        finding = v.installer_link_finding(
            shell.server, parse_sections(result.stdout).get("installer-link"), release
        )
    except Unreadable as exc:
        return Finding(
            "installer",
            shell.server,
            FindingVerdict.FAIL,
            f"its link check answer cannot be read ({exc.reason})",
            fix,
        )
    except RemoteError as exc:
        return Finding(
            "installer",
            shell.server,
            FindingVerdict.FAIL,
            f"the link check could not run ({exc.detail})",
            fix,
        )
    if finding.verdict is FindingVerdict.PASS:
        return finding
    return replace(
        finding,
        detail=f"{finding.detail}, for {release} (downloadName {download_name(release, build)})",
        fix=fix,
    )


def _release_file(inventory: Inventory, release: str) -> Finding:
    """The operator's installer file for `release` when it is not the upgrade's target: the file's name
    must say the release, or its sha256 be pinned, else it would be the upgrade's installer again."""
    installer = inventory.installer
    if installer.file is not None and "{release}" not in installer.file and release not in installer.sha256:
        return Finding(
            "installer",
            "local",
            FindingVerdict.FAIL,
            f"installer.file ({installer.file}) does not name {{release}}: no file of its own for {release}",
            f"name each release's file with {{release}} (e.g. installers/demisto-{{release}}.sh), or pin "
            f"installer.sha256 for {release}",
        )
    return _local_installer(inventory, release)


def blocking_summary(findings: Iterable[Finding]) -> list[str]:
    """One line per blocking finding, for an error message."""
    return [f"{f.check} on {f.server}: {f.detail}" for f in findings if f.verdict is FindingVerdict.FAIL]
