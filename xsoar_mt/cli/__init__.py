"""The command line: parses arguments, calls one function per command, renders, maps errors to exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from xsoar_mt import __version__
from xsoar_mt.errors import ExitCode, InventoryError, XsoarMtError

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="xsoar-mt",
    help="Upgrade orchestrator for Cortex XSOAR 6.x multi-tenant deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # a traceback must never print a password
    add_completion=False,
)
inventory_app = typer.Typer(help="Check an inventory file.", no_args_is_help=True)
upgrade_app = typer.Typer(help="Plan and run an upgrade.", no_args_is_help=True)
app.add_typer(inventory_app, name="inventory")
app.add_typer(upgrade_app, name="upgrade")

_state = {"debug": False}


class TextOrJson(StrEnum):
    text = "text"
    json = "json"


class PlanFormat(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"xsoar-mt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback for unexpected errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    _state["debug"] = debug


def boundary(func: Callable[P, R]) -> Callable[P, R]:
    """The one place where errors become messages and exit codes (docs/reference/exit-codes.md)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except XsoarMtError as exc:
            _report(exc)
            raise typer.Exit(int(exc.exit_code)) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _state["debug"]:
                raise
            typer.echo(f"error: internal error ({type(exc).__name__}): {exc}", err=True)
            typer.echo("hint: run again with --debug and report the traceback", err=True)
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper


def _report(exc: XsoarMtError) -> None:
    if isinstance(exc, InventoryError):
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
    else:
        typer.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)


InventoryOption = Annotated[Path, typer.Option("--inventory", "-i", help="The inventory file.")]


@inventory_app.command("validate")
@boundary
def inventory_validate(
    file: Annotated[Path, typer.Argument(help="The inventory file.")],
    output: Annotated[TextOrJson, typer.Option("--output", "-o", help="text or json.")] = TextOrJson.text,
) -> None:
    """Check an inventory and print its topology (main, groups, servers, tenants, versions)."""
    from xsoar_mt.inventory import load_inventory

    if output is TextOrJson.json:
        try:
            inventory = load_inventory(file)
        except InventoryError as exc:
            _print_json({"valid": False, "problems": exc.problems})
            raise typer.Exit(int(exc.exit_code)) from None
        from xsoar_mt.topology import topology_dict

        _print_json({"valid": True, "inventory": topology_dict(inventory)})
        return
    inventory = load_inventory(file)
    from xsoar_mt.cli.render import render_topology

    render_topology(inventory)


@upgrade_app.command("plan")
@boundary
def upgrade_plan(
    inventory: InventoryOption,
    to: Annotated[str, typer.Option("--to", help="Target release, e.g. 6.12.")],
    only: Annotated[
        str | None,
        typer.Option("--only", help="`main`: plan only the main server.", metavar="main"),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Plan only this host group (repeatable)."),
    ] = None,
    output: Annotated[
        PlanFormat, typer.Option("--output", "-o", help="text, json or yaml.")
    ] = PlanFormat.text,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan (JSON) for `upgrade run --plan`.")
    ] = None,
) -> None:
    """Show the exact ordered steps that take the deployment to a release. Changes nothing."""
    from xsoar_mt.commands import make_plan, scope_from_flags, write_plan

    plan = make_plan(inventory, to, scope_from_flags(only, group))
    if out is not None:
        write_plan(plan, out)
    if output is PlanFormat.json:
        _print_json(plan.to_dict())
    elif output is PlanFormat.yaml:
        import yaml

        typer.echo(yaml.safe_dump(plan.to_dict(), sort_keys=False, width=1000), nl=False)
    else:
        from xsoar_mt.cli.render import render_plan

        render_plan(plan, saved_to=out)
    if plan.nothing_to_do:
        raise typer.Exit(int(ExitCode.NOTHING_TO_DO))


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
