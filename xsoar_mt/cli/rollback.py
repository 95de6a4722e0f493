"""`xsoar-mt rollback ...`: parses the arguments, calls the rollback use case, renders its plan as text or JSON."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from xsoar_mt.cli.checks import (
    AcceptNewOption,
    Boundary,
    InventoryOption,
    Output,
    OutputOption,
    StateDirOption,
)
from xsoar_mt.errors import ExitCode

# The options `rollback plan` and `rollback run` share, declared once.
OnlyMainBack = Annotated[
    str | None, typer.Option("--only", help="`main`: take only main back.", metavar="main")
]
GroupsBack = Annotated[
    list[str] | None, typer.Option("--group", "-g", help="Take only this host group back (repeatable).")
]
WavesBack = Annotated[
    str | None,
    typer.Option(
        "--waves",
        help="Host groups go back in waves of these sizes (1,25%,100%), as upgrade's.",
        metavar="SPEC",
    ),
]

rollback_app = typer.Typer(help="Undo an upgrade: plan the way back to its backups.", no_args_is_help=True)


def register(app: typer.Typer, boundary: Boundary) -> None:
    """`rollback plan` and `rollback run` under `app`, each inside the CLI's error boundary."""
    app.add_typer(rollback_app, name="rollback")
    _register_plan(rollback_app, boundary)
    _register_run(rollback_app, boundary)


def _register_plan(app: typer.Typer, boundary: Boundary) -> None:
    @app.command("plan", short_help="Show the ordered way back to the pre-upgrade releases; changes nothing.")
    @boundary
    def rollback_plan(
        ctx: typer.Context,
        inventory: InventoryOption,
        only: OnlyMainBack = None,
        group: GroupsBack = None,
        release_only: Annotated[
            bool,
            typer.Option(
                "--release-only",
                help="With Elasticsearch and no snapshot repository: take back the releases alone (the data stays).",
            ),
        ] = False,
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Save the plan (JSON, the saved-plan format of upgrade plans)."),
        ] = None,
        probe: Annotated[
            bool,
            typer.Option(
                "--probe",
                help="Read every server over SSH (read only) and check each backup's size and sha256.",
            ),
        ] = False,
        accept_new_host_keys: AcceptNewOption = False,
        state_dir: StateDirOption = None,
        detail: Annotated[
            bool, typer.Option("--detail", help="Text: every step with its whole command.")
        ] = False,
        waves: WavesBack = None,
        parallel: Annotated[
            int | None,
            typer.Option(
                "--parallel", min=1, max=64, help="For the estimate: host groups taken back at once."
            ),
        ] = None,
        output: OutputOption = Output.text,
    ) -> None:
        """Show how each server group goes back to the release and data of the backup xsoar-mt took just
        before its upgrade: what comes back, what is lost, and every step in order. Changes nothing.

        Without --probe no server is contacted: versions and backups come from the record under
        --state-dir (then the inventory's `version:`).
        """
        from xsoar_mt.cli.checks import scope_from_flags, session
        from xsoar_mt.usecases.rollback_plan import RollbackRequest, make_rollback_plan
        from xsoar_mt.waves import WaveSpec

        request = RollbackRequest(
            scope=scope_from_flags(only, group),
            release_only=release_only,
            probe=probe,
            waves=WaveSpec.parse(waves) if waves is not None else None,
            parallel=parallel,
        )
        with session(ctx, inventory, state_dir, accept_new_host_keys) as opened:
            view = make_rollback_plan(opened, request)
        _show_plan(view, output, out=out, probed=probe, detail=detail)


def _register_run(app: typer.Typer, boundary: Boundary) -> None:
    @app.command("run", short_help="Take servers back to their pre-upgrade release and data over SSH.")
    @boundary
    def rollback_run(
        ctx: typer.Context,
        inventory: InventoryOption,
        only: OnlyMainBack = None,
        group: GroupsBack = None,
        plan_file: Annotated[
            Path | None,
            typer.Option("--plan", help="Run exactly this saved rollback plan (refused if stale or edited)."),
        ] = None,
        release_only: Annotated[
            bool,
            typer.Option(
                "--release-only", help="With Elasticsearch and no snapshot repository: releases only."
            ),
        ] = False,
        resume: Annotated[
            str | None, typer.Option("--resume", help="Finish rollback run ID, or `latest`.", metavar="ID")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Change nothing: read the servers, print every command.")
        ] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before the first change.")] = False,
        parallel: Annotated[
            int | None,
            typer.Option("--parallel", min=1, max=64, help="Host groups taken back at once (default 1)."),
        ] = None,
        waves: WavesBack = None,
        output: Annotated[
            str, typer.Option("--output", "-o", help="text, or json (one event per line).", metavar="FORMAT")
        ] = "text",
        accept_new_host_keys: AcceptNewOption = False,
        state_dir: StateDirOption = None,
    ) -> None:
        """Take each server group back to the release and data of the backup xsoar-mt took just before its
        upgrade, host groups before main, checking the skew rule before every step.

        `upgrade run --resume` finishes an upgrade; `rollback run` undoes it (`rollback run --resume`
        finishes an interrupted rollback).
        """
        from xsoar_mt.cli.checks import resolved_state_dir, scope_from_flags, session
        from xsoar_mt.usecases.rollback_run import RollbackRunRequest
        from xsoar_mt.waves import WaveSpec

        _check_run_flags(output, resume, plan_file, dry_run=dry_run, yes=yes)
        state = resolved_state_dir(state_dir)
        if not dry_run:
            from xsoar_mt.state_dir import StateDir

            StateDir(state).require_usable()
        request = RollbackRunRequest(
            scope=scope_from_flags(only, group),
            plan_file=plan_file,
            resume=resume,
            release_only=release_only,
            dry_run=dry_run,
            parallel=parallel,
            yes=yes,
            json_output=output == "json",
            waves=WaveSpec.parse(waves) if waves is not None else None,
        )
        with session(ctx, inventory, state, accept_new_host_keys) as opened:
            outcome = _carry_out(opened, request, yes=yes, json_lines=output == "json")
        _end_run(outcome, output)


def _show_plan(view: Any, output: Output, *, out: Path | None, probed: bool, detail: bool) -> None:
    """`rollback plan`'s result: saved with --out, printed as text or JSON; exit 5 when nothing goes back."""
    from xsoar_mt.usecases.saved_plan import write_plan

    if out is not None:
        write_plan(json.dumps(view.rollback.plan.to_dict(), indent=2) + "\n", out)
    if output is Output.json:
        data = {**rollback_dict(view.rollback), "parallel": view.timing.parallel,
                "expected_minutes": round(view.timing.minutes, 1)}  # fmt: skip
        typer.echo(json.dumps(data, indent=2))
    else:
        for line in rollback_text(view, probed=probed, detail=detail, saved_to=out):
            typer.echo(line)
    if view.rollback.nothing_to_do:
        raise typer.Exit(int(ExitCode.NOTHING_TO_DO))


def _end_run(outcome: Any, output: str) -> None:
    """`rollback run`'s recap (text only) and its exit code: 5 when nothing went back, else the run's."""
    if output == "text":
        from xsoar_mt.cli.render import render_recap

        render_recap(outcome)
    if outcome.report is None and outcome.plan.nothing_to_do:
        raise typer.Exit(int(ExitCode.NOTHING_TO_DO))
    raise typer.Exit(int(outcome.exit_code))


def _check_run_flags(
    output: str, resume: str | None, plan_file: Path | None, *, dry_run: bool, yes: bool
) -> None:
    """What `rollback run`'s command line cannot ask, refused before anything is read."""
    import sys

    from xsoar_mt.errors import UsageError

    if output not in ("text", "json"):
        raise UsageError(f"--output takes text or json, not {output}")
    if resume is not None and plan_file is not None:
        raise UsageError("--resume and --plan do not go together: a resumed rollback keeps its own plan")
    if not (dry_run or yes or (sys.stdin.isatty() and output == "text")):
        raise UsageError("no terminal to confirm on: pass --yes to run without asking (or --dry-run)")


def _carry_out(opened: Any, request: Any, *, yes: bool, json_lines: bool) -> Any:
    """The rollback, its events printed as they come; Ctrl-C and SIGTERM ask the engine to stop safely."""
    from xsoar_mt.cli.checks import stop_on_signals
    from xsoar_mt.cli.render import EventPrinter
    from xsoar_mt.usecases.rollback_run import run_rollback

    def confirm(plan: Any) -> bool:
        return yes or bool(
            typer.confirm(f"Roll {plan.deployment} back ({plan.step_count} steps) now?", default=False)
        )

    with EventPrinter(json_lines=json_lines) as printer:
        return run_rollback(opened, request, printer, confirm=confirm, on_executor=stop_on_signals)


def rollback_dict(rollback: Any) -> dict[str, Any]:
    """The plan's JSON form (as saved) with what comes back per group."""
    return {
        **rollback.plan.to_dict(),
        "rollback": [
            {
                "group": r.group,
                "servers": list(r.servers),
                "from": r.from_release,
                "to": r.release,
                "build": r.build,
                "backup_taken_at": r.taken_at,
                "backup_bytes": r.size,
                "held_until_main_is_back": r.held,
                "snapshot": r.snapshot,
            }
            for r in rollback.returns
        ],
    }


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover  (the loop returns at GiB)


def rollback_text(view: Any, *, probed: bool, detail: bool, saved_to: Path | None) -> list[str]:
    """The plan as lines: first what comes back and what is lost per group, then the installers, the
    warnings and the steps. With --release-only on Elasticsearch the first line says so."""
    rollback, inventory, plan = view.rollback, view.inventory, view.rollback.plan
    lines: list[str] = list(plan.warnings[:1]) if rollback.release_only and plan.warnings else []
    if rollback.nothing_to_do:
        lines.append(
            f"Nothing to roll back in {inventory.name}: no server in scope runs a newer release than its backup"
        )
        return lines
    groups = len(rollback.returns)
    lines.append(
        f"Rollback plan for {inventory.name}: {groups} server group{'s' if groups != 1 else ''} go back, "
        "host groups before main"
    )
    lines.append(
        "Read from the servers; every backup's size and sha256 checked on its server."
        if probed
        else "From the local record (no server contacted; --probe reads the servers and checks every backup)."
    )
    lines += _comes_back_lines(rollback, inventory)
    lines += _installer_lines(rollback, inventory)
    rest = plan.warnings[1:] if rollback.release_only and plan.warnings else plan.warnings
    if rest:
        lines += ["", "Warnings:", *(f"  {w}" for w in rest)]
    lines += _step_lines(plan, view.timing, detail=detail)
    lines += [
        "",
        "Resume finishes an interrupted upgrade; rollback undoes a finished or failed one. "
        "This plan changes nothing.",
    ]
    if saved_to is not None:
        lines.append(f"Saved to {saved_to}.")
    return lines


def _comes_back_lines(rollback: Any, inventory: Any) -> list[str]:
    """Per group: from which release to which, its backup, and what is lost."""
    from xsoar_mt.observed import stamp

    lines = ["", "What comes back, and what is lost:"]
    es_data = inventory.database == "elasticsearch" and not rollback.release_only
    for ret in rollback.returns:
        build = f" (build {ret.build})" if ret.build else ""
        count = len(ret.servers)
        lines.append(
            f"  {ret.label}: {ret.from_release} -> {ret.release}{build}; backup taken {stamp(ret.taken_at)}, "
            f"{_size(ret.size)} ({count} server{'s' if count != 1 else ''})"
        )
        what = "on its servers" + (" and in its Elasticsearch indices" if es_data else "")
        lines.append(f"      lost: everything written {what} after {stamp(ret.taken_at)}")
        if ret.snapshot:
            lines.append(f"      Elasticsearch: snapshot {ret.snapshot} restored")
        if ret.held:
            lines.append(
                "      kept stopped until main is back: meanwhile it is more than one release behind main"
            )
    return lines


def _installer_lines(rollback: Any, inventory: Any) -> list[str]:
    """How each old release's installer reaches the servers, for the build its servers ran before: the
    upload's source named as the upgrade plan names it."""
    from dataclasses import replace

    from xsoar_mt.installer import download_name, upload_source

    lines = ["", "Installers of the old releases (checked before anything is stopped):"]
    installer = inventory.installer
    for release, build in rollback.builds.items():
        how = (
            f"upload of {upload_source(replace(installer, build=build), inventory.path, release)} over SFTP "
            "unless the server holds it already, then the sha256 check on each server"
            if installer.delivery == "upload"
            else f"downloadName {download_name(release, build)}, each server downloads it"
        )
        lines.append(f"  {release}: {how}")
    return lines


def _step_lines(plan: Any, timing: Any, *, detail: bool) -> list[str]:
    """How the host groups go (one at a time, --parallel, --waves), then every step, numbered, under its
    phase; with --detail its whole command (and each server's own)."""
    from xsoar_mt.cli.plan_text import pace

    lines = [
        "",
        f"Steps ({plan.step_count} in {len(plan.phases)} phases, about {timing.minutes:.0f} min; "
        f"{pace(plan, timing)}, before main):",
    ]
    number = 0
    for phase in plan.phases:
        lines.append(f"  {phase.title}" + (f" [wave {phase.wave}]" if phase.wave is not None else ""))
        for step in phase.steps:
            number += 1
            lines.append(f"    {number:>3}. {step.action.value:<16} {', '.join(step.servers)}: {step.why}")
            if detail:
                for server in step.servers[:1] or step.servers:
                    lines.append(f"         $ {step.command_on(server)}")
                for server, command in step.per_server.items():
                    lines.append(f"         $ ({server}) {command}")
    return lines
