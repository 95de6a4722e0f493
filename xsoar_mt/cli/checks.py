"""The `preflight`, `status` and `validate` commands: arguments, one call into the core, rendering."""

import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from xsoar_mt.plan import Scope
    from xsoar_mt.usecases.session import Session


class Output(StrEnum):
    text = "text"
    json = "json"


InventoryOption = Annotated[Path, typer.Option("--inventory", "-i", help="The inventory file.")]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text or json.")]
# The options the commands that change servers share (upgrade run and prepare, rollback run), declared once.
EventsOption = Annotated[Output, typer.Option("--output", "-o", help="text, or json (one event per line).")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Change nothing: print every command that would run.")
]
OnlyMainOption = Annotated[
    str | None, typer.Option("--only", help="`main`: only the main server.", metavar="main")
]
GroupsOption = Annotated[
    list[str] | None, typer.Option("--group", "-g", help="Only this host group (repeatable).")
]
TargetOption = Annotated[str | None, typer.Option("--to", help="Target release, e.g. 6.12.")]
IgnorePreflightOption = Annotated[
    str | None,
    typer.Option(
        "--ignore-preflight-errors",
        help="Skippable preflight checks to lower to warnings (NAME,... or all).",
        metavar="NAMES",
    ),
]
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


def session(
    ctx: typer.Context, inventory: Path, state_dir: Path | None, accept_new_host_keys: bool
) -> "Session":
    """The session a command works in: SSH shells, unless a test handed the CLI a shell factory as the
    root context's `obj` (`CliRunner().invoke(app, args, obj=factory)`)."""
    from xsoar_mt.usecases.session import Session

    wired = ctx.find_root().obj
    return Session(
        inventory,
        resolved_state_dir(state_dir),
        accept_new_host_keys=accept_new_host_keys,
        prompt=_prompt,
        shells=wired if callable(wired) else None,
    )


def stop_on_signals(executor: Any) -> None:
    """Ctrl-C and SIGTERM ask the run's executor to stop at a safe point,
    for every command that changes servers."""
    import signal

    def stop(signum: int, frame: object) -> None:
        executor.request_stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def scope_from_flags(only: str | None, groups: list[str] | None) -> "Scope":
    """`--only main` and `--group NAME` (repeatable) as a plan's scope."""
    from xsoar_mt.errors import UsageError, shown
    from xsoar_mt.plan import Scope

    if only is not None and only != "main":
        raise UsageError(f"--only takes `main`, not {shown(only)} (use --group NAME for host groups)")
    if only == "main":
        return Scope(main=True, groups=tuple(groups or ()))
    if groups:
        return Scope(main=False, groups=tuple(dict.fromkeys(groups)))
    return Scope()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _warn(warning: str | None) -> None:
    if warning is not None:
        typer.echo(warning, err=True)


# -- preflight --------------------------------------------------------------------------------------


def _preflight(
    ctx: typer.Context,
    inventory_path: Path,
    to: str,
    ignore: str | None,
    output: Output,
    accept_new_host_keys: bool,
    options: Any,
    state_dir: Path | None,
    verbose: bool = False,
    matrix: bool = False,
) -> None:
    from xsoar_mt.checks.model import parse_ignore
    from xsoar_mt.usecases.preflight import PreflightRequest, preflight

    request = PreflightRequest(to, parse_ignore(ignore), options)
    with session(ctx, inventory_path, state_dir, accept_new_host_keys) as opened:
        result = preflight(opened, request)
    _warn(result.warning)
    if output is Output.json:
        _print_json(result.report.to_dict())
    else:
        from xsoar_mt.cli.checks_render import render_preflight
        from xsoar_mt.cli.render import console

        render_preflight(result.report, console(), verbose=verbose, matrix=matrix)
    raise typer.Exit(result.exit_code)


# -- status -----------------------------------------------------------------------------------------


def _status(
    ctx: typer.Context,
    inventory_path: Path,
    output: Output,
    accept_new_host_keys: bool,
    state_dir: Path | None,
) -> None:
    from xsoar_mt.usecases.status import StatusRequest, status

    with session(ctx, inventory_path, state_dir, accept_new_host_keys) as opened:
        result = status(opened, StatusRequest())
    _warn(result.warning)
    if output is Output.json:
        _print_json(result.report.to_dict())
    else:
        from xsoar_mt.cli.checks_render import render_status
        from xsoar_mt.cli.render import console

        render_status(result.report, console())
    raise typer.Exit(result.exit_code)


# -- validate ---------------------------------------------------------------------------------------


def _validate(
    ctx: typer.Context,
    inventory_path: Path,
    to: str | None,
    only: str | None,
    group: list[str] | None,
    output: Output,
    accept_new_host_keys: bool,
    state_dir: Path | None,
) -> None:
    from xsoar_mt.usecases.validate import ValidateRequest, validate

    with session(ctx, inventory_path, state_dir, accept_new_host_keys) as opened:
        result = validate(opened, ValidateRequest(to, scope_from_flags(only, group)))
    _warn(result.warning)
    if output is Output.json:
        _print_json(result.report.to_dict())
    else:
        from xsoar_mt.cli.checks_render import render_validation
        from xsoar_mt.cli.render import console

        render_validation(result.report, console())
    raise typer.Exit(result.exit_code)


# -- registration -----------------------------------------------------------------------------------


Boundary = Callable[[Callable[..., Any]], Callable[..., Any]]


def register(app: typer.Typer, boundary: Boundary) -> None:
    """`preflight`, `status` and `validate` on `app`, each inside the CLI's error boundary."""
    _register_preflight(app, boundary)
    _register_status(app, boundary)
    _register_validate(app, boundary)


def _register_preflight(app: typer.Typer, boundary: Boundary) -> None:
    @app.command("preflight", short_help="Check everything that would stop an upgrade.")
    @boundary
    def preflight(
        ctx: typer.Context,
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
        from xsoar_mt.checks.verdicts import PreflightOptions

        options = PreflightOptions(
            min_installer_free_gb=min_installer_free_gb, min_data_free_gb=min_data_free_gb
        )
        _preflight(
            ctx,
            inventory,
            to,
            ignore_preflight_errors,
            output,
            accept_new_host_keys,
            options,
            state_dir,
            verbose,
            matrix,
        )


def _register_status(app: typer.Typer, boundary: Boundary) -> None:
    @app.command("status", short_help="Each server's version, service and skew, live.")
    @boundary
    def status(
        ctx: typer.Context,
        inventory: InventoryOption,
        output: OutputOption = Output.text,
        accept_new_host_keys: AcceptNewOption = False,
        state_dir: StateDirOption = None,
    ) -> None:
        """Every server's role, version (and where it comes from), service, reachability and skew, live."""
        _status(ctx, inventory, output, accept_new_host_keys, state_dir)


def _register_validate(app: typer.Typer, boundary: Boundary) -> None:
    @app.command("validate", short_help="Check that main and every tenant answer.")
    @boundary
    def validate(
        ctx: typer.Context,
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
        _validate(ctx, inventory, to, only, group, output, accept_new_host_keys, state_dir)
