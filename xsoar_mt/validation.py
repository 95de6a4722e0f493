"""Post-upgrade validation: main answers (through its load balancer for HA) and every tenant answers through main."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xsoar_mt.errors import ExitCode
from xsoar_mt.inventory import Inventory, url_address
from xsoar_mt.observed import Known, Observed, resolve
from xsoar_mt.plan import Scope, Step, ValidationKind
from xsoar_mt.releases import Version
from xsoar_mt.remote import Cancel, CommandKind, RemoteCommand, RemoteError, RemoteShell
from xsoar_mt.shellwords import word, words

_TENANT_MARK = "== tenant "


def health_url_command(url: str) -> str:
    return RemoteCommand(
        f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time 10 {word(url)}", CommandKind.HEALTH_URL
    )


def tenants_command(inventory: Inventory, address: str, accounts: list[str]) -> str:
    """One round trip from main: `/accounts`, then each tenant's `/about` through main.

    The API key header arrives on stdin and goes to a private temporary file, never onto a command line.
    """
    base = f"https://{url_address(address)}:{inventory.communication_port}"
    text = (
        'umask 077; h=$(mktemp); cat > "$h"; '
        f"echo '{_TENANT_MARK}/accounts'; curl -sk --max-time 10 -H @\"$h\" {word(base + '/accounts')}; echo; "
        f'for t in {words(accounts)}; do echo "{_TENANT_MARK}$t"; '
        f'curl -sk --max-time 10 -H @"$h" {word(base + "/")}"$t"/about; echo; done; rm -f "$h"'
    )
    return RemoteCommand(text, CommandKind.TENANTS)


def parse_tenant_answers(stdout: str) -> dict[str, str]:
    answers: dict[str, str] = {}
    current: str | None = None
    for line in stdout.splitlines():
        if line.startswith(_TENANT_MARK):
            current = line[len(_TENANT_MARK) :].strip()
            answers[current] = ""
        elif current is not None:
            answers[current] += line
    return answers


@dataclass(frozen=True)
class ValidationProblem:
    """What a validation check found wrong, and the tenant it is about (group, tenant), if one."""

    message: str
    tenant: tuple[str, str] | None = None


def check_tenants(
    inventory: Inventory,
    answers: dict[str, str],
    target: str | None,
    scope: Scope | None = None,
    only_scope: bool = False,
) -> list[ValidationProblem]:
    """Every tenant answers through main; those of groups in `scope` on `target` (the others, out of scope,
    are not expected to have moved). With `only_scope`, the tenants of groups out of scope are not asked."""
    problems: list[ValidationProblem] = []
    for group in inventory.groups:
        covered = scope is None or scope.covers(group.name, group.is_main)
        if only_scope and not covered:
            continue
        expected = target if covered else None
        for tenant in group.tenants:
            raw = answers.get(tenant.account, "")
            about = (group.name, tenant.name)
            try:
                version = Version.parse(str(json.loads(raw)["demistoVersion"]))
            except (ValueError, KeyError, TypeError):
                problems.append(
                    ValidationProblem(
                        f"tenant {tenant.name} ({group.name}) did not answer through main: {raw[:80]!r}",
                        about,
                    )
                )
                continue
            if expected is not None and version.release != expected:
                problems.append(
                    ValidationProblem(
                        f"tenant {tenant.name} ({group.name}) runs {version}, expected {expected}", about
                    )
                )
    return problems


def validate_step(
    step: Step,
    inventory: Inventory,
    shell_for: Callable[[str], RemoteShell],
    api_key: str | None,
    scope: Scope | None = None,
    cancel: Cancel | None = None,
    *,
    only_scope: bool = False,
) -> list[ValidationProblem]:
    """Carry out one validation step of a plan; return the problems found (none means it passed)."""
    assert step.check is not None  # Step refuses a validation step without its kind
    check = ValidationCheck(step.check, step.servers[0], step.release or None)
    return run_check(check, inventory, shell_for, api_key, scope, cancel, only_scope=only_scope)


@dataclass(frozen=True)
class ValidationCheck:
    """One validation check: its kind, the main server it is asked from, and the release expected."""

    kind: ValidationKind
    entry: str
    expected: str | None


def run_check(
    check: ValidationCheck,
    inventory: Inventory,
    shell_for: Callable[[str], RemoteShell],
    api_key: str | None,
    scope: Scope | None = None,
    cancel: Cancel | None = None,
    *,
    only_scope: bool = False,
) -> list[ValidationProblem]:
    """Carry out one validation check; return the problems found (none means it passed).

    Tenants of groups outside `scope` must answer through main, on whatever release they run; with
    `only_scope` (a wave's validation) only the tenants of groups in `scope` are asked. `cancel` (a
    second interrupt) cuts the check off."""
    main = inventory.main
    entry = check.entry
    shell = shell_for(entry)
    if check.kind is not ValidationKind.TENANTS:
        url = (
            f"{main.load_balancer}/health"
            if check.kind is ValidationKind.LOAD_BALANCER and main.load_balancer
            else f"https://{url_address(inventory.server(entry).address)}:{inventory.communication_port}/health"
        )
        result = shell.run(health_url_command(url), timeout=60, cancel=cancel)
        code = result.stdout.strip()[-3:]
        answered = f"{url} answered {code or 'nothing'} (from {entry})"
        return [] if result.ok and code == "200" else [ValidationProblem(answered)]
    asked = [
        g for g in inventory.groups if not only_scope or scope is None or scope.covers(g.name, g.is_main)
    ]
    accounts = [t.account for g in asked for t in g.tenants]
    stdin = f"Authorization: {api_key}\n" if api_key else "\n"
    result = shell.run(
        tenants_command(inventory, inventory.server(entry).address, accounts),
        stdin=stdin,
        cancel=cancel,
        timeout=60 + 15 * len(accounts),
    )
    answers = parse_tenant_answers(result.stdout)
    return check_tenants(inventory, answers, check.expected, scope, only_scope)


# ---------------------------------------------------------------------------------------------------
# `xsoar-mt validate`: the same checks as a plan's validation phase, plus every server on the release


@dataclass(frozen=True)
class ValidationResult:
    check: str  # main, tenants, servers
    subject: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "subject": self.subject, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class ValidationReport:
    deployment: str
    expected: str | None
    results: tuple[ValidationResult, ...]
    observed: Observed = field(default_factory=Observed)  # what each server was seen to run

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.VALIDATION_FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "expected": self.expected,
            "ok": self.ok,
            "results": [r.to_dict() for r in self.results],
        }


def validate_servers(
    inventory: Inventory, observed: Observed, expected: str, names: Sequence[str]
) -> list[ValidationResult]:
    """Pure: each server in scope runs `expected` (as `/about` reports it) and its service is up."""
    results = []
    for name in names:
        view = observed.views.get(name)
        if view is None or view.reachable is False:
            detail = view.error if view is not None and view.error else "not probed"
            results.append(ValidationResult("servers", name, False, f"could not be checked: {detail}"))
        elif not view.running:
            results.append(ValidationResult("servers", name, False, f"the service is {view.service.value}"))
        elif view.version is None or view.version.release != expected:
            results.append(
                ValidationResult(
                    "servers", name, False, f"runs {view.describe_version()}, expected {expected}"
                )
            )
        else:
            results.append(ValidationResult("servers", name, True, f"runs {view.version} ({view.source})"))
    return results


def validate_deployment(
    inventory: Inventory,
    shell_for: Callable[[str], RemoteShell],
    api_key: str | None,
    expected: str | None = None,
    scope: Scope | None = None,
    known: Mapping[str, Known] | None = None,
) -> ValidationReport:
    """Main answers (through the load balancer for HA), every tenant answers through main with the expected
    release, and every server in scope runs it. Without `expected`, main's release is expected everywhere."""
    from xsoar_mt.probe import observe_all

    scope = scope or Scope()
    names = [s.name for g in inventory.groups if scope.covers(g.name, g.is_main) for s in g.servers]
    every = list(dict.fromkeys([*(s.name for s in inventory.main.servers), *names]))
    observed = resolve(inventory, observe_all(inventory, shell_for, api_key, every), known or {}, every)
    seen = observed.views
    if expected is None:
        mains = [v for s in inventory.main.servers if (v := seen[s.name].version) is not None]
        expected = max(mains).release if mains else None
    results: list[ValidationResult] = []
    main = inventory.main
    entry = next((s.name for s in main.servers if seen[s.name].running), main.servers[0].name)
    kinds = [ValidationKind.LOAD_BALANCER] if main.load_balancer else [ValidationKind.MAIN]
    if main.load_balancer:
        kinds.append(ValidationKind.MAIN)
    for kind in kinds:
        try:
            problems = run_check(ValidationCheck(kind, entry, expected), inventory, shell_for, api_key)
        except RemoteError as exc:
            problems = [ValidationProblem(exc.detail)]
        lb = kind is ValidationKind.LOAD_BALANCER
        subject = f"{main.load_balancer} (load balancer)" if lb else f"main ({entry})"
        said = "; ".join(p.message for p in problems)
        results.append(ValidationResult("main", subject, not problems, said or "answers /health"))
    accounts = [(g, t) for g in inventory.groups if scope.covers(g.name, g.is_main) for t in g.tenants]
    if accounts:
        try:
            check = ValidationCheck(ValidationKind.TENANTS, entry, expected)
            problems = run_check(check, inventory, shell_for, api_key)
        except RemoteError as exc:
            problems = [ValidationProblem(exc.detail)]
        for group, tenant in accounts:
            mine = [p.message for p in problems if p.tenant == (group.name, tenant.name)]
            results.append(
                ValidationResult(
                    "tenants",
                    f"{tenant.name} ({group.name})",
                    not mine,
                    "; ".join(mine) or f"answers through main at /{tenant.account}/about",
                )
            )
    if expected is None:
        results.append(ValidationResult("servers", "main", False, "main's version could not be read"))
    else:
        results += validate_servers(inventory, observed, expected, names)
    return ValidationReport(inventory.name, expected, tuple(results), observed)
