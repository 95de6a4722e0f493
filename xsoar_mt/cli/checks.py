"""The `preflight`, `status` and `validate` commands: arguments, one call into the core, rendering."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from xsoar_mt.errors import ExitCode

if TYPE_CHECKING:
    from xsoar_mt.executor import RunSecrets
    from xsoar_mt.inventory import Inventory
    from xsoar_mt.run import ShellPool


class Output(StrEnum):
    text = "text"
    json = "json"


InventoryOption = Annotated[Path, typer.Option("--inventory", "-i", help="The inventory file.")]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text or json.")]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where runs, locks and the last observed state of each server are kept "
        "(default: $XSOAR_MT_STATE_DIR, else ~/.local/state/xsoar-mt).",
    ),
]


def resolved_state_dir(given: Path | None) -> Path:
    """The state directory (absolute), from --state-dir or the default (state_home.py); its note, if any,
    on standard error."""
    from xsoar_mt.state_home import state_home

    home = state_home(given)
    if home.note:
        typer.echo(home.note, err=True)
    return home.path


AcceptNewOption = Annotated[
    bool,
    typer.Option(
        "--accept-new-host-keys", help="Trust unknown host keys on first contact (never changed ones)."
    ),
]


def _prompt(label: str) -> str:
    return str(typer.prompt(label, hide_input=True))


def _connect(inventory: Inventory, accept_new: bool, *, want_link: bool) -> tuple[ShellPool, RunSecrets]:
    """Read every secret the command needs (each source once), then the SSH pool."""
    from dataclasses import replace

    from xsoar_mt.errors import InvalidInput
    from xsoar_mt.run import load_secrets, ssh_pool
    from xsoar_mt.secrets import read_secret

    names = [s.name for s in inventory.servers]
    sudo, secrets = load_secrets(inventory, names, need_sudo=True, need_link=False, prompt=_prompt)
    link_ref = inventory.installer.link
    if want_link and link_ref is not None:
        with contextlib.suppress(InvalidInput):  # the installer check reports a missing link
            secrets = replace(secrets, link=read_secret(link_ref, "download link"))
    return ssh_pool(inventory, sudo, accept_new), secrets


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


# -- preflight --------------------------------------------------------------------------------------


def _preflight(
    inventory_path: Path,
    to: str,
    ignore: str | None,
    output: Output,
    accept_new_host_keys: bool,
    min_installer_free_gb: float,
    min_data_free_gb: float,
    state_dir: Path,
    verbose: bool = False,
    matrix: bool = False,
) -> None:
    from xsoar_mt.checks import PreflightOptions, parse_ignore, run_preflight
    from xsoar_mt.inventory import load_inventory
    from xsoar_mt.known import KnownState
    from xsoar_mt.releases import parse_target

    ignored = parse_ignore(ignore)
    inventory = load_inventory(inventory_path)
    target = parse_target(to, inventory.releases)
    known = KnownState(state_dir, inventory)
    pool, secrets = _connect(inventory, accept_new_host_keys, want_link=True)
    options = PreflightOptions(min_installer_free_gb=min_installer_free_gb, min_data_free_gb=min_data_free_gb)
    try:
        report = run_preflight(inventory, pool, secrets, target, ignored, options=options,
                               known=known.servers(), backed_up=known.backups())  # fmt: skip
    finally:
        pool.close()
    _record(known, report.observed)
    if output is Output.json:
        _print_json(report.to_dict())
    else:
        from xsoar_mt.cli.checks_render import render_preflight
        from xsoar_mt.cli.render import console

        render_preflight(report, console(), verbose=verbose, matrix=matrix)
    raise typer.Exit(int(ExitCode.OK if report.ok else ExitCode.PREFLIGHT_FAILED))


# -- status -----------------------------------------------------------------------------------------


def _record(known: Any, observed: Any) -> None:
    """Keep what was just observed in the local record; a record that cannot be written is only a warning."""
    try:
        known.record(observed.views.values())
    except OSError as exc:
        typer.echo(f"warning: cannot update the local record {known.path}: {exc}", err=True)


def _status(inventory_path: Path, output: Output, accept_new_host_keys: bool, state_dir: Path) -> None:
    from xsoar_mt.inventory import load_inventory
    from xsoar_mt.known import KnownState
    from xsoar_mt.status import deployment_status

    inventory = load_inventory(inventory_path)
    known = KnownState(state_dir, inventory)
    pool, secrets = _connect(inventory, accept_new_host_keys, want_link=False)
    try:
        report = deployment_status(inventory, pool, secrets.api_key, known.servers())
    finally:
        pool.close()
    _record(known, report.observed)
    if output is Output.json:
        _print_json(report.to_dict())
    else:
        from xsoar_mt.cli.checks_render import render_status
        from xsoar_mt.cli.render import console

        render_status(report, console())


# -- validate ---------------------------------------------------------------------------------------


def _validate(
    inventory_path: Path,
    to: str | None,
    only: str | None,
    group: list[str] | None,
    output: Output,
    accept_new_host_keys: bool,
    state_dir: Path,
) -> None:
    from xsoar_mt.commands import scope_from_flags
    from xsoar_mt.inventory import load_inventory
    from xsoar_mt.known import KnownState
    from xsoar_mt.planner import check_scope
    from xsoar_mt.releases import parse_target
    from xsoar_mt.validation import validate_deployment

    inventory = load_inventory(inventory_path)
    scope = scope_from_flags(only, group)
    check_scope(inventory, scope)  # before any server is contacted
    expected = parse_target(to, inventory.releases) if to else None
    known = KnownState(state_dir, inventory)
    pool, secrets = _connect(inventory, accept_new_host_keys, want_link=False)
    try:
        report = validate_deployment(inventory, pool, secrets.api_key, expected, scope, known.servers())
    finally:
        pool.close()
    _record(known, report.observed)
    if output is Output.json:
        _print_json(report.to_dict())
    else:
        from xsoar_mt.cli.checks_render import render_validation
        from xsoar_mt.cli.render import console

        render_validation(report, console())
    raise typer.Exit(int(ExitCode.OK if report.ok else ExitCode.VALIDATION_FAILED))


# -- registration -----------------------------------------------------------------------------------


def register(app: typer.Typer, boundary: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    @app.command("preflight", short_help="Check everything that would stop an upgrade.")
    @boundary
    def preflight(
        inventory: InventoryOption,
        to: Annotated[str, typer.Option("--to", help="Target release, e.g. 6.12.")],
        ignore_preflight_errors: Annotated[
            str | None,
            typer.Option(
                "--ignore-preflight-errors",
                help="Skippable checks whose failures do not block: NAME,... or all.",
                metavar="NAME,...|all",
            ),
        ] = None,
        output: OutputOption = Output.text,
        accept_new_host_keys: AcceptNewOption = False,
        min_installer_free_gb: Annotated[
            float,
            typer.Option("--min-installer-free-gb", help="Free space needed in installer.directory, in GiB."),
        ] = 4.0,
        min_data_free_gb: Annotated[
            float,
            typer.Option("--min-data-free-gb", help="Free space needed under /var/lib/demisto, in GiB."),
        ] = 10.0,
        state_dir: StateDirOption = None,
        verbose: Annotated[
            bool, typer.Option("--verbose", "-v", help="Text: every check on every server, and the matrix.")
        ] = False,
        matrix: Annotated[
            bool,
            typer.Option("--matrix", help="Text: the communication matrix even when every path is open."),
        ] = False,
    ) -> None:
        """Everything that would stop an upgrade, checked on every server at once. Changes nothing."""
        _preflight(inventory, to, ignore_preflight_errors, output, accept_new_host_keys,
                   min_installer_free_gb, min_data_free_gb, resolved_state_dir(state_dir), verbose, matrix)  # fmt: skip

    @app.command("status", short_help="Each server's version, service and skew, live.")
    @boundary
    def status(
        inventory: InventoryOption,
        output: OutputOption = Output.text,
        accept_new_host_keys: AcceptNewOption = False,
        state_dir: StateDirOption = None,
    ) -> None:
        """Every server's role, version (and where it comes from), service, reachability and skew, live."""
        _status(inventory, output, accept_new_host_keys, resolved_state_dir(state_dir))

    @app.command("validate", short_help="Check that main and every tenant answer.")
    @boundary
    def validate(
        inventory: InventoryOption,
        to: Annotated[str | None, typer.Option("--to", help="The release every server should run.")] = None,
        only: Annotated[str | None, typer.Option("--only", help="`main`: only main.", metavar="main")] = None,
        group: Annotated[
            list[str] | None, typer.Option("--group", "-g", help="Only this host group (repeatable).")
        ] = None,
        output: OutputOption = Output.text,
        accept_new_host_keys: AcceptNewOption = False,
        state_dir: StateDirOption = None,
    ) -> None:
        """Main answers, every tenant answers through main, every server runs the release and is up."""
        _validate(inventory, to, only, group, output, accept_new_host_keys, resolved_state_dir(state_dir))
