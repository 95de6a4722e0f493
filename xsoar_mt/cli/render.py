"""Rich rendering for a person: the console every command prints through, topologies, a run's progress
and its recap. (The plan's text is in plan_text.py.)"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.console import Group as Stack
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from xsoar_mt.inventory import Group, Inventory

if TYPE_CHECKING:
    from xsoar_mt.events import Event
    from xsoar_mt.plan import Phase
    from xsoar_mt.usecases.run import RunOutcome, WindowClosed

# Off a terminal nothing may be cut or wrapped mid-command: lines are as long as their content.
UNLIMITED = 1_000_000


class _Console(Console):
    """Rich's console, with two promises: a closed pipe (`| head`) ends the command as a success (Rich's
    own handling exits 1, which would tell a script that xsoar-mt failed), and every string it renders
    has its control characters stripped (`framed.printable`): text a server sent (an error tail, a
    reason, a name in a record) never moves the cursor or rings a bell."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError  # the CLI's boundary ends the command with 0, silently

    def render_str(self, text: str, *args: Any, **kwargs: Any) -> Text:
        from xsoar_mt.framed import printable

        return super().render_str(printable(text), *args, **kwargs)


def console() -> Console:
    """The console for this process's standard output. On a terminal: its width. Off a terminal (a pipe, a
    CI log): COLUMNS when it is set, else no width limit, so commands, paths and hints appear whole.
    Rich honours NO_COLOR (and prints no colour off a terminal anyway)."""
    import os
    import sys

    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS", "").strip().isdigit():
        width = UNLIMITED
    return _Console(highlight=False, width=width)


def names(servers: Sequence[str], few: int = 4) -> str:
    """`a, b, c`; past `few` + 1 servers, the rest counted: `62 servers: a, b, c, d and 58 more`."""
    if len(servers) <= few + 1:
        return ", ".join(servers)
    return f"{len(servers)} servers: {', '.join(servers[:few])} and {len(servers) - few} more"


def render_topology(inventory: Inventory) -> None:
    out = console()
    tree = Tree(f"[bold]{inventory.name}[/] ({inventory.database}, port {inventory.communication_port})")
    for group in inventory.groups:
        _add_group(tree, group)
    out.print(tree)
    servers = len(inventory.servers)
    tenants = sum(len(g.tenants) for g in inventory.groups)
    out.print(f"valid: {servers} servers in {len(inventory.groups)} groups, {tenants} tenants")


def _add_group(tree: Tree, group: Group) -> None:
    lb = f" behind {group.load_balancer}" if group.load_balancer else ""
    branch = tree.add(f"[bold]{group.label}[/]{lb}")
    for server in group.servers:
        role = f" {server.role.value}" if server.role.value != "single" else ""
        version = str(server.version) if server.version else "version unknown"
        branch.add(f"{server.name}{role}  {server.address}:{server.ssh_port}  {version}")
    if group.tenants:
        tenants = branch.add("tenants")
        for tenant in group.tenants:
            tenants.add(f"{tenant.name} ({tenant.account}, port {tenant.port})")


class EventPrinter:
    """Shows a run's events: JSON lines, plain timestamped lines, or Rich lines with a live status on a terminal."""

    def __init__(self, json_lines: bool) -> None:
        import sys

        from xsoar_mt.events import JsonLinesSink, PlainSink

        self.console = _Console(highlight=False, stderr=False)
        self._status: Any = None
        self._total, self._done, self._began = 0, 0, time.time()
        self._current: dict[str, str] = {}
        self._last_output = ""
        self._transfers: dict[str, tuple[int, int]] = {}  # server (or "download 6.12") -> (done, total)
        self._sink: Any
        if json_lines:
            self._sink = JsonLinesSink(sys.stdout)
        elif not self.console.is_terminal:
            self._sink = PlainSink(sys.stdout)
        else:
            self._sink = None

    def __enter__(self) -> EventPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()

    def emit(self, event: Event) -> None:
        if self._sink is not None:
            self._sink.emit(event)
            return
        from xsoar_mt.framed import printable
        from xsoar_mt.secrets import REDACTOR

        message = escape(printable(REDACTOR.redact(event.message)))
        stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
        if event.kind == "run-started":  # after any confirmation prompt, which a spinner would hide
            self._total, self._done, self._began = int(event.data.get("steps", 0)), 0, event.ts
            if self._status is None:
                self._status = self.console.status("starting")
                self._status.start()
        elif event.kind == "step-started" and event.step:
            self._current[event.step] = message
        elif event.kind == "step-finished" and event.step:
            self._current.pop(event.step, None)
            self._done += event.data.get("outcome") in ("ok", "failed")
        if event.kind == "installer-downloaded":  # done, even when its size was never announced
            self._transfers.pop(f"download {event.data.get('release', '')}", None)
        if event.kind == "step-output" and "total" in event.data:
            self._transfer(event)
        elif event.kind == "step-output":
            self._last_output = message
        elif event.kind != "ssh-stats":
            style = {
                "warning": "yellow",
                "would-run": "cyan",
                "step-finished": "green" if event.data.get("outcome") == "ok" else "red",
            }.get(event.kind, "")
            self.console.print(f"[dim]{stamp}[/] " + (f"[{style}]{message}[/]" if style else message))
        self._refresh(event.ts)

    def _transfer(self, event: Event) -> None:
        """An upload's (per server) or the local download's progress: a bar each while it moves."""
        done = int(event.data.get("sent", event.data.get("received", 0)))
        total = int(event.data["total"])
        key = event.servers[0] if event.servers else f"download {event.data.get('release', '')}".strip()
        if total and done >= total:
            self._transfers.pop(key, None)
        else:
            self._transfers[key] = (done, total)

    def _refresh(self, now: float) -> None:
        """The live line: step k of n, elapsed time, what runs now (its phase is in the step id), last output,
        and a bar for each transfer under way."""
        if self._status is None or not self._total:
            return
        elapsed = int(now - self._began)
        running = "; ".join(self._current.values()) or "between steps"
        last = f"\n  [dim]{self._last_output}[/]" if self._last_output else ""
        step = min(self._done + 1, self._total)  # the step under way; never past the run's total
        line = f"step {step} of {self._total}, {elapsed // 60}:{elapsed % 60:02d}: {running}{last}"
        if not self._transfers:
            self._status.update(line)
            return
        self._status.update(Stack(Text.from_markup(line), transfer_bars(self._transfers)))


def transfer_bars(transfers: dict[str, tuple[int, int]]) -> Table:
    """One row per transfer: who, a bar, and how much of how much (MiB)."""
    from rich.progress_bar import ProgressBar

    grid = Table.grid(padding=(0, 1))
    for key, (done, total) in sorted(transfers.items()):
        size = f"{done >> 20} of {total >> 20} MiB" if total else f"{done >> 20} MiB"
        grid.add_row(f"  {key}", ProgressBar(total=total or None, completed=done, width=30), size)
    return grid


_OUTCOME_STYLE = {
    "ok": "green",
    "failed": "bold red",
    "interrupted": "yellow",
    "not started": "yellow",
    "prepared": "yellow",
    "skipped": "dim",
}
_RUN_OUTCOME = {"window-closed": "window closed"}


def render_recap(outcome: RunOutcome) -> None:
    out = console()
    report = outcome.report
    if report is None:
        from xsoar_mt.plan import ROLLBACK_TARGETS

        if outcome.plan.target in ROLLBACK_TARGETS:  # a rollback's target names the way back, not a release
            out.print("Nothing to do: no server in scope runs a newer release than its backup.")
        else:
            out.print(f"Nothing to do: every server in scope already runs {outcome.plan.target}.")
        return
    if outcome.run_id is None:  # a dry run
        out.print(
            f"[bold]Dry run[/]: {len(outcome.recorded)} commands would run (above, in order); nothing was changed."
        )
        if report.window is not None:
            _window_recap(out, report.window)
        return
    out.print(_servers_table(outcome))
    from xsoar_mt.framed import printable
    from xsoar_mt.secrets import REDACTOR

    for failure in report.failures:  # a failure quotes the server's output, which may quote a secret
        out.print(f"[red]failed:[/] {escape(printable(REDACTOR.redact(failure)))}")
    stopped = [n for n, s in report.servers.items() if s.running is False]
    if stopped:
        out.print(f"[red]left stopped:[/] {', '.join(stopped)}")
    if report.outcome in ("failed", "interrupted"):
        down = outcome.tenants_down
        out.print(Text(f"tenants down now: {', '.join(down)}" if down else "tenants down now: none"))
        if outcome.lagging_functions:
            out.print("[yellow]until the hosts catch up with main (skew degraded), these do not work:[/]")
            for function in outcome.lagging_functions:
                out.print(Text(f"  - {function}"))
    if report.outcome == "interrupted":
        out.print(
            "[yellow]interrupted[/] by the operator (Ctrl-C or SIGTERM): nothing failed; the groups under "
            "way were finished or left as the table shows"
        )
    if report.window is not None:
        _window_recap(out, report.window)
    out.print(f"journal: {outcome.run_dir}/journal.jsonl")
    _resume_hint(out, outcome)


def _servers_table(outcome: RunOutcome) -> Table:
    """The run's title and outcome, then each server: its version, service, last step and own outcome."""
    report = outcome.report
    assert report is not None  # the recap of a real run, never of "nothing to do"
    table = Table(
        title=f"Run {outcome.run_id}: {_RUN_OUTCOME.get(report.outcome, report.outcome)}",
        title_justify="left",
    )
    for column in ("server", "version", "service", "last step", "outcome"):
        table.add_column(column)
    for name, state in report.servers.items():  # each server's own outcome, set by the executor
        service = {True: "running", False: "[red]STOPPED[/]", None: "unknown"}[state.running]
        own = state.outcome or "-"
        style = _OUTCOME_STYLE.get(own, "")
        table.add_row(
            name,
            Text(state.view.describe_version()),  # what it runs as last observed, or unknown and why
            service,
            state.last_step or "-",
            f"[{style}]{own}[/]" if style else own,
        )
    return table


def _resume_hint(out: Console, outcome: RunOutcome) -> None:
    """The command that takes the upgrade on: in the next window, after Ctrl-C, or once a failure is fixed."""
    report = outcome.report
    assert report is not None  # the recap of a real run, never of "nothing to do"
    if report.window is not None and outcome.resume_command:
        out.print(
            Text.assemble(
                "to finish in the next window: ",
                (f"{outcome.resume_command} --window-end HH:MM", "bold"),
                " (the waves are kept)",
            )
        )
    elif outcome.resume_command and report.outcome == "interrupted":
        out.print(f"to continue: [bold]{outcome.resume_command}[/]")
    elif outcome.resume_command:
        out.print(f"to continue once the cause is fixed: [bold]{outcome.resume_command}[/]")


def _window_recap(out: Console, window: WindowClosed) -> None:
    """What the night did and what it left, at the safe point where the window closed."""
    out.print(Text.assemble(("window closed", "bold yellow"), f" at a safe point: {window.refusal.message}"))
    out.print(Text(f"  done: {_phases(window.done) or 'no group upgrade'}"))
    out.print(Text(f"  left for the next window: {_phases(window.left)}"))
    if window.degraded_functions:
        out.print("  [yellow]until the hosts catch up with main (skew degraded), these do not work:[/]")
        for function in window.degraded_functions:
            out.print(Text(f"    - {function}"))


def _phases(phases: Sequence[Phase]) -> str:
    """`3 group upgrades: main@6.12, s01@6.12 (wave 1), ...`."""
    if not phases:
        return ""
    named = [p.id + (f" (wave {p.wave})" if p.wave is not None else "") for p in phases]
    shown = ", ".join(named[:6]) + (f" and {len(named) - 6} more" if len(named) > 6 else "")
    return f"{len(phases)} group upgrade{'' if len(phases) == 1 else 's'}: {shown}"
