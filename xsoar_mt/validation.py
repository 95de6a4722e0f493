"""Post-upgrade validation: main answers (through its load balancer for HA) and every tenant answers through main."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable

from xsoar_mt.inventory import Inventory
from xsoar_mt.plan import Step
from xsoar_mt.releases import Version
from xsoar_mt.remote import RemoteShell

_TENANT_MARK = "== tenant "


def health_url_command(url: str) -> str:
    return f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time 10 {shlex.quote(url)}"


def tenants_command(inventory: Inventory, address: str, accounts: list[str]) -> str:
    """One round trip from main: `/accounts`, then each tenant's `/about` through main.

    The API key header arrives on stdin and goes to a private temporary file, never onto a command line.
    """
    base = f"https://{address}:{inventory.communication_port}"
    loop = " ".join(shlex.quote(a) for a in accounts)
    return (
        'umask 077; h=$(mktemp); cat > "$h"; '
        f"echo '{_TENANT_MARK}/accounts'; curl -sk --max-time 10 -H @\"$h\" {base}/accounts; echo; "
        f'for t in {loop}; do echo "{_TENANT_MARK}$t"; '
        f'curl -sk --max-time 10 -H @"$h" {base}/$t/about; echo; done; rm -f "$h"'
    )


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


def check_tenants(inventory: Inventory, answers: dict[str, str], target: str | None) -> list[str]:
    problems: list[str] = []
    for group in inventory.groups:
        for tenant in group.tenants:
            raw = answers.get(tenant.account, "")
            try:
                version = Version.parse(str(json.loads(raw)["demistoVersion"]))
            except (ValueError, KeyError, TypeError):
                problems.append(
                    f"tenant {tenant.name} ({group.name}) did not answer through main: {raw[:80]!r}"
                )
                continue
            if target is not None and version.release != target:
                problems.append(f"tenant {tenant.name} ({group.name}) runs {version}, expected {target}")
    return problems


def validate_step(
    step: Step, inventory: Inventory, shell_for: Callable[[str], RemoteShell], api_key: str | None
) -> list[str]:
    """Carry out one validation step of a plan; return the problems found (none means it passed)."""
    main = inventory.main
    entry = step.servers[0]
    shell = shell_for(entry)
    kind = step.id.split("/")[1]
    if kind in ("load-balancer", "main"):
        url = (
            f"{main.load_balancer}/health"
            if kind == "load-balancer" and main.load_balancer
            else f"https://{inventory.server(entry).address}:{inventory.communication_port}/health"
        )
        result = shell.run(health_url_command(url), timeout=60)
        code = result.stdout.strip()[-3:]
        return [] if result.ok and code == "200" else [f"{url} answered {code or 'nothing'} (from {entry})"]
    accounts = [t.account for g in inventory.groups for t in g.tenants]
    stdin = f"Authorization: {api_key}\n" if api_key else "\n"
    result = shell.run(tenants_command(inventory, inventory.server(entry).address, accounts), stdin=stdin,
                       timeout=60 + 15 * len(accounts))  # fmt: skip
    return check_tenants(inventory, parse_tenant_answers(result.stdout), step.release)
