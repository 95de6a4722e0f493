"""The command line: parses arguments, calls one function per command, renders, maps errors to exit codes."""

import functools
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from xsoar_mt import __version__
from xsoar_mt.cli.checks import (
    AcceptNewOption,
    DryRunOption,
    EventsOption,
    GroupsOption,
    IgnorePreflightOption,
    InventoryOption,
    OnlyMainOption,
    Output,
    StateDirOption,
    TargetOption,
    resolved_state_dir,
)
from xsoar_mt.errors import ExitCode, InventoryError, XsoarMtError

if TYPE_CHECKING:
    from xsoar_mt.usecases.plan import PlanView

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="xsoar-mt",
    help="Upgrade orchestrator for Cortex XSOAR 6.x multi-tenant deployments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # a traceback must never print a password
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
)
inventory_app = typer.Typer(help="Check an inventory file.", no_args_is_help=True)
upgrade_app = typer.Typer(help="Plan and run an upgrade.", no_args_is_help=True)
app.add_typer(inventory_app, name="inventory")
app.add_typer(upgrade_app, name="upgrade")

_state = {"debug": False}


class PlanFormat(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"
    csv = "csv"


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
    if debug:  # the SSH library's own log (connection details) as well; without --debug it stays silent
        import logging

        logging.basicConfig(level=logging.INFO, format="debug: %(name)s: %(message)s")


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
        except BrokenPipeError:
            _closed_pipe()
            raise typer.Exit(int(ExitCode.OK)) from None
        except Exception as exc:
            from xsoar_mt.secrets import REDACTOR

            if _state["debug"]:  # the traceback passes the redactor too: it may quote a secret's value
                import traceback

                typer.echo(REDACTOR.redact(traceback.format_exc()), err=True)
                raise typer.Exit(int(ExitCode.INTERNAL)) from None
            typer.echo(REDACTOR.redact(f"error: internal error ({type(exc).__name__}): {exc}"), err=True)
            typer.echo("hint: run again with --debug and report the traceback", err=True)
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper


def _report(exc: XsoarMtError) -> None:
    from xsoar_mt.secrets import REDACTOR

    problems = list(getattr(exc, "problems", None) or [exc.message])
    for problem in problems:
        typer.echo(REDACTOR.redact(f"error: {_one_line(problem)}"), err=True)
    if exc.hint:
        typer.echo(REDACTOR.redact(f"hint: {_one_line(exc.hint)}"), err=True)


def _one_line(message: str, limit: int = 4000) -> str:
    """A safety net under the messages' own cutting: one line, never more than `limit` characters."""
    from xsoar_mt.framed import printable  # a server's text may hold escape sequences: never to the terminal

    message = printable(message.replace("\r", " ").replace("\n", " | "))
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message)} characters)"


WavesOption = Annotated[
    str | None,
    typer.Option(
        "--waves",
        help="Host groups in waves of these sizes, after main: counts or percentages of the groups left "
        "(1,25%,100%); each wave is validated before the next.",
        metavar="SPEC",
    ),
]
WindowOption = Annotated[
    str | None,
    typer.Option(
        "--window-end",
        help="When the maintenance window ends (ISO 8601, HH:MM local, +90m, +2h): start no group that "
        "would end after it.",
        metavar="TIME",
    ),
]


def _waves(spec: str | None) -> Any:
    from xsoar_mt.waves import WaveSpec

    return WaveSpec.parse(spec) if spec is not None else None


def _window_end(text: str | None) -> Any:
    """(now, when the window ends), read against this machine's clock and time zone."""
    if text is None:
        return None
    from datetime import datetime

    from xsoar_mt.window import parse_window_end

    now = datetime.now().astimezone()
    return now, parse_window_end(text, now)


@inventory_app.command("validate", short_help="Check an inventory and print its topology.")
@boundary
def inventory_validate(
    file: Annotated[Path, typer.Argument(help="The inventory file.")],
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json.")] = Output.text,
) -> None:
    """Check an inventory and print its topology (main, groups, servers, tenants, versions)."""
    from xsoar_mt.usecases.inventory import InventoryRequest, check_inventory

    result = check_inventory(InventoryRequest(file))
    if output is Output.json:
        _print_json(result.to_dict())
        raise typer.Exit(result.exit_code)
    if result.inventory is None:
        raise InventoryError(list(result.problems))
    from xsoar_mt.cli.render import render_topology

    render_topology(result.inventory)


@upgrade_app.command("plan", short_help="Show the ordered steps to a release; changes nothing.")
@boundary
def upgrade_plan(
    ctx: typer.Context,
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
        PlanFormat,
        typer.Option(
            "--output", "-o", help="text, json, yaml, or csv (the tenant impact, for customer notices)."
        ),
    ] = PlanFormat.text,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan (JSON) for `upgrade run --plan`.")
    ] = None,
    probe: Annotated[
        bool,
        typer.Option("--probe", help="Read every server's state over SSH (read only) and plan from it."),
    ] = False,
    accept_new_host_keys: Annotated[
        bool,
        typer.Option(
            "--accept-new-host-keys",
            help="With --probe: trust unknown host keys on first contact (never changed ones).",
        ),
    ] = False,
    state_dir: StateDirOption = None,
    detail: Annotated[
        bool, typer.Option("--detail", help="Text: every step with its command, not one line per group.")
    ] = False,
    waves: WavesOption = None,
    parallel: Annotated[
        int | None,
        typer.Option(
            "--parallel", min=1, max=64, help="For the estimate: host groups upgraded at once, as in the run."
        ),
    ] = None,
    window_end: WindowOption = None,
    tenant_impact: Annotated[
        bool,
        typer.Option(
            "--tenant-impact", help="Text: a table of every tenant's expected downtime, not the steps."
        ),
    ] = False,
) -> None:
    """Show the exact ordered steps that take the deployment to a release. Changes nothing.

    Without --probe no server is contacted: versions come from the last observation recorded under
    --state-dir, then the inventory's `version:`.
    """
    from xsoar_mt.cli.checks import scope_from_flags, session
    from xsoar_mt.usecases.plan import PlanRequest, make_plan

    request = PlanRequest(
        to,
        scope_from_flags(only, group),
        probe=probe,
        waves=_waves(waves),
        parallel=parallel,
        window=_window_end(window_end),
        out=out,
    )
    from xsoar_mt.bulk import gc_paused

    # A short command over ~300 objects a server, none in a cycle: the collector's passes only cost time.
    with gc_paused():
        with session(ctx, inventory, state_dir, accept_new_host_keys) as opened:
            view = make_plan(opened, request)
        _show_upgrade_plan(view, output, out=out, detail=detail, tenant_impact=tenant_impact)
    raise typer.Exit(int(view.exit_code))


def _show_upgrade_plan(
    view: "PlanView", output: PlanFormat, *, out: Path | None, detail: bool, tenant_impact: bool
) -> None:
    """`upgrade plan`'s result as JSON, YAML, the tenant impact's CSV or table, or the plan's text."""
    plan = view.plan
    if output is PlanFormat.json:
        _print_json(view.to_dict())
    elif output is PlanFormat.yaml:
        import yaml

        typer.echo(yaml.safe_dump(view.to_dict(), sort_keys=False, width=1000), nl=False)
    elif output is PlanFormat.csv:
        from xsoar_mt.cli.plan_text import tenant_impact_csv

        typer.echo(tenant_impact_csv(view.impact), nl=False)
    elif tenant_impact:
        from xsoar_mt.cli.plan_text import render_tenant_impact
        from xsoar_mt.cli.render import console

        render_tenant_impact(view.impact, plan, console())
        for note in view.notes:
            console().print(f"note: {note}", markup=False)
    else:
        from xsoar_mt.cli.plan_text import render_plan
        from xsoar_mt.cli.render import console

        render_plan(
            plan,
            view.inventory,
            console(),
            saved_to=out,
            detail=detail,
            timing=view.timing,
            window=view.window,
            prepared=view.prepared,
        )
        for note in view.notes:
            console().print(f"note: {note}", markup=False)


@upgrade_app.command("run", short_help="Carry out the upgrade over SSH.")
@boundary
def upgrade_run(
    ctx: typer.Context,
    inventory: InventoryOption,
    to: TargetOption = None,
    only: OnlyMainOption = None,
    group: GroupsOption = None,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="Run exactly this saved plan (refused if stale).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue run ID, or `latest`.", metavar="ID")
    ] = None,
    dry_run: DryRunOption = False,
    probe: Annotated[
        bool, typer.Option("--probe", help="With --dry-run: read the servers' versions over SSH.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before the first change.")] = False,
    parallel: Annotated[
        int | None,
        typer.Option(
            "--parallel",
            min=1,
            max=64,
            help="Host groups upgraded at once (default 1; with --waves, the whole wave).",
        ),
    ] = None,
    output: EventsOption = Output.text,
    accept_new_host_keys: AcceptNewOption = False,
    ignore_preflight_errors: IgnorePreflightOption = None,
    force_unlock: Annotated[
        str | None, typer.Option("--force-unlock", help="Break the lock left by run ID.", metavar="ID")
    ] = None,
    state_dir: StateDirOption = None,
    waves: WavesOption = None,
    window_end: WindowOption = None,
) -> None:
    """Carry out the upgrade over SSH, in the vendor's order, checking the skew rule before every step."""
    from xsoar_mt.cli.checks import scope_from_flags, session
    from xsoar_mt.usecases.run import RunRequest

    state = resolved_state_dir(state_dir)
    if force_unlock is not None:
        from xsoar_mt.usecases.unlock import UnlockRequest
        from xsoar_mt.usecases.unlock import force_unlock as break_lock

        with session(ctx, inventory, state, accept_new_host_keys) as opened:
            typer.echo(break_lock(opened, UnlockRequest(force_unlock)).message)
        return
    _check_run_flags(to, plan_file, resume, probe=probe, dry_run=dry_run)
    if ignore_preflight_errors is not None:  # a dry run refuses a wrong name as the real run does
        from xsoar_mt.checks.model import parse_ignore

        parse_ignore(ignore_preflight_errors)
    interactive = _can_prompt() and output is Output.text
    if not (dry_run or yes or interactive):
        from xsoar_mt.errors import UsageError

        raise UsageError("no terminal to confirm on: pass --yes to run without asking (or --dry-run)")
    if not dry_run:
        from xsoar_mt.state_dir import StateDir

        StateDir(state).require_usable()
    scope, spec, window = scope_from_flags(only, group), _waves(waves), _window_end(window_end)
    request = RunRequest(
        target=to,
        scope=scope,
        plan_file=plan_file,
        resume=resume,
        dry_run=dry_run,
        probe_in_dry_run=probe,
        ignore_preflight_errors=ignore_preflight_errors,
        parallel=parallel,
        yes=yes,
        json_output=output is Output.json,
        waves=spec,
        window_end=window[1] if window is not None else None,
    )
    with session(ctx, inventory, state, accept_new_host_keys) as opened:
        outcome = _carry_out(opened, request, yes=yes, json_lines=output is Output.json)
    if output is Output.text:
        from xsoar_mt.cli.render import render_recap

        render_recap(outcome)
    raise typer.Exit(int(outcome.exit_code))


def _carry_out(opened: Any, request: Any, *, yes: bool, json_lines: bool) -> Any:
    """The run, its events printed as they come; Ctrl-C and SIGTERM ask the executor to stop safely."""
    from xsoar_mt.cli.checks import stop_on_signals
    from xsoar_mt.cli.plan_text import render_plan
    from xsoar_mt.cli.render import EventPrinter, console
    from xsoar_mt.usecases.run import run_upgrade

    def confirm(plan: Any) -> bool:
        """Before the first change: the plan's summary (with --yes too, so a CI log records what was about
        to change), estimated as `upgrade plan` estimates it; then, without --yes, the question. A prepare
        changes no service: it asks only whether to fetch."""
        if request.prepare_only:
            return yes or typer.confirm(
                f"Fetch the installers for {plan.target} to {plan.deployment} now?", default=False
            )
        from xsoar_mt.cli.plan_text import render_plan_summary
        from xsoar_mt.usecases.plan import estimate_for

        timing = estimate_for(opened, plan, request.parallel)
        if not json_lines and yes:
            render_plan_summary(plan, opened.inventory, console(), timing)
        if yes:
            return True
        render_plan(plan, opened.inventory, console(), timing=timing)
        return typer.confirm(f"Upgrade {plan.deployment} to {plan.target} now?", default=False)

    with EventPrinter(json_lines=json_lines) as printer:
        return run_upgrade(opened, request, printer, confirm=confirm, on_executor=stop_on_signals)


def _can_prompt() -> bool:
    """Is there a person to ask (standard input is a terminal)?"""
    return sys.stdin.isatty()


def _closed_pipe() -> None:
    """Standard output's reader went away (`| head`): not an error. Whatever is still buffered goes
    nowhere, so Python's own flush at exit does not complain either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a test's capture): nothing to silence
        pass


@upgrade_app.command("prepare", short_help="By day: fetch and verify every installer; change no service.")
@boundary
def upgrade_prepare(
    ctx: typer.Context,
    inventory: InventoryOption,
    to: TargetOption = None,
    only: OnlyMainOption = None,
    group: GroupsOption = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue prepare run ID, or `latest`.", metavar="ID")
    ] = None,
    dry_run: DryRunOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before the first fetch.")] = False,
    output: EventsOption = Output.text,
    accept_new_host_keys: AcceptNewOption = False,
    ignore_preflight_errors: IgnorePreflightOption = None,
    state_dir: StateDirOption = None,
    waves: WavesOption = None,
) -> None:
    """By day, ahead of the window: the preflight (free disk included), and every installer the plan needs
    fetched to every server and verified. Stops nothing, starts nothing, takes no backup."""
    from xsoar_mt.cli.checks import scope_from_flags, session
    from xsoar_mt.usecases.run import RunRequest

    _check_run_flags(to, None, resume, probe=False, dry_run=dry_run)
    interactive = _can_prompt() and output is Output.text
    if not (dry_run or yes or interactive):
        from xsoar_mt.errors import UsageError

        raise UsageError("no terminal to confirm on: pass --yes to prepare without asking (or --dry-run)")
    state = resolved_state_dir(state_dir)
    if not dry_run:
        from xsoar_mt.state_dir import StateDir

        StateDir(state).require_usable()
    request = RunRequest(
        target=to,
        scope=scope_from_flags(only, group),
        resume=resume,
        dry_run=dry_run,
        ignore_preflight_errors=ignore_preflight_errors,
        yes=yes,
        json_output=output is Output.json,
        waves=_waves(waves),
        prepare_only=True,
    )
    with session(ctx, inventory, state, accept_new_host_keys) as opened:
        outcome = _carry_out(opened, request, yes=yes, json_lines=output is Output.json)
    if output is Output.text:
        from xsoar_mt.cli.render import render_recap

        render_recap(outcome)
    raise typer.Exit(int(outcome.exit_code))


_LONGEST_ARGUMENT = 4096  # PATH_MAX: no option of xsoar-mt takes a longer value


def _refuse_overlong(argv: list[str]) -> None:
    """Refuse an argument no option could take, before the parser echoes it whole in its own message."""
    from xsoar_mt.errors import UsageError, shown

    for arg in argv:
        if len(arg) > _LONGEST_ARGUMENT:
            raise UsageError(
                f"an argument of {len(arg):,} characters ({shown(arg, 60)}): no option takes more than "
                f"{_LONGEST_ARGUMENT:,}"
            )


def _check_run_flags(
    to: str | None, plan_file: Path | None, resume: str | None, *, probe: bool, dry_run: bool
) -> None:
    """What `upgrade run` is to do comes from exactly one of --to, --plan (with the plan's own --to, or
    none) and --resume."""
    from xsoar_mt.errors import UsageError

    if to is None and plan_file is None and resume is None:
        raise UsageError("give --to RELEASE, --plan FILE or --resume RUN")
    if resume is not None and plan_file is not None:
        given = "--to, --plan and --resume" if to is not None else "--plan and --resume"
        raise UsageError(
            f"{given} cannot be given together: a resumed run follows its own journal",
            hint="resume with --resume RUN alone, or start a new run from the plan with --plan FILE",
        )
    if probe and not dry_run:
        raise UsageError("--probe goes with --dry-run")


def _register_check_commands() -> None:
    """`preflight`, `status` and `validate` live in their own module (xsoar_mt/cli/checks.py); `report` in
    xsoar_mt/cli/report.py."""
    from xsoar_mt.cli import checks

    checks.register(app, boundary)
    from xsoar_mt.cli import report

    report.register(app, boundary)


_register_check_commands()


def _register_rollback_commands() -> None:
    """`rollback plan` lives in its own module (xsoar_mt/cli/rollback.py)."""
    from xsoar_mt.cli import rollback

    rollback.register(app, boundary)


_register_rollback_commands()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def main() -> None:
    """Console-script entry point. A secret-looking flag is refused here, before Typer parses anything:
    inside a command it would never be reached (an unknown option is an error first).

    A command-line mistake is one `error:` line and a `hint:` on standard error, exit 2, like every other
    error (Typer would draw a box, cut to 80 columns off a terminal). Off a terminal, help is plain text
    wrapped at COLUMNS (or 80) with nothing cut."""
    from xsoar_mt.secrets import refuse_on_command_line

    try:
        refuse_on_command_line(sys.argv[1:])
        _refuse_overlong(sys.argv[1:])
    except XsoarMtError as exc:
        _report(exc)
        sys.exit(int(exc.exit_code))
    command = typer.main.get_command(app)
    if not sys.stdout.isatty():
        _plain_help(command)
    try:
        code = command.main(args=sys.argv[1:], prog_name="xsoar-mt", standalone_mode=False)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        _closed_pipe()
        sys.exit(int(ExitCode.OK))
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        sys.exit(_command_line_error(exc))
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _closed_pipe()
    sys.exit(code if isinstance(code, int) else 0)


def _is_click_error(exc: Exception) -> bool:
    """Click's own errors (usage, bad parameter), whichever Click Typer runs on (its own copy lately)."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__) and hasattr(exc, "exit_code")


def _command_line_error(exc: Any) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":  # a command group run without arguments: its help
        exc.show()
        return int(exc.exit_code)
    typer.echo(f"error: {exc.format_message()}", err=True)
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        typer.echo(f"hint: `{ctx.command_path} --help` lists the options", err=True)
    return int(exc.exit_code)


def _plain_help(command: Any) -> None:
    """Click's plain help for this command and every subcommand, instead of Rich's boxes."""
    command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)
