"""The live display of `upgrade run` on a terminal: the status line and a bar per transfer under way."""

from __future__ import annotations

import io

from rich.console import Console

from xsoar_mt.cli.render import EventPrinter
from xsoar_mt.events import Event

MIB = 1 << 20


def on_a_terminal() -> tuple[EventPrinter, io.StringIO]:
    printer = EventPrinter(json_lines=False)
    screen = io.StringIO()
    printer.console = Console(file=screen, force_terminal=True, width=120, highlight=False)
    printer._sink = None  # as on a terminal: Rich lines and a live status, not plain lines
    return printer, screen


def live(printer: EventPrinter) -> str:
    """What the live status shows now, as text."""
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(printer._status.renderable)
    return out.getvalue()


def upload(server: str, sent: int, total: int) -> Event:
    return Event(
        "step-output", f"{server}: uploaded", "prepare/fetch", (server,), {"sent": sent, "total": total}
    )


def test_each_upload_under_way_has_its_own_bar_and_a_finished_one_goes() -> None:
    printer, _ = on_a_terminal()
    with printer:
        printer.emit(Event("run-started", "run: 9 steps", data={"steps": 9}))
        printer.emit(upload("h1", 60 * MIB, 100 * MIB))
        printer.emit(upload("h2", 100 * MIB, 100 * MIB))
        printer.emit(upload("h3", 5 * MIB, 100 * MIB))
        shown = live(printer)
        assert "step 1 of 9" in shown
        assert "h1" in shown and "60 of 100 MiB" in shown
        assert "h3" in shown and "5 of 100 MiB" in shown
        assert "h2" not in shown  # done: its bar is gone
        printer.emit(upload("h1", 100 * MIB, 100 * MIB))
        printer.emit(upload("h3", 100 * MIB, 100 * MIB))
        assert "MiB" not in live(printer)


def test_the_local_download_has_a_bar_named_after_its_release() -> None:
    printer, _ = on_a_terminal()
    with printer:
        printer.emit(Event("run-started", "run: 9 steps", data={"steps": 9}))
        printer.emit(Event("step-output", "downloading", "prepare/fetch", (),
                           {"received": 30 * MIB, "total": 120 * MIB, "release": "6.12"}))  # fmt: skip
        assert "download 6.12" in live(printer) and "30 of 120 MiB" in live(printer)


def test_progress_never_reaches_the_scrolling_lines() -> None:
    printer, screen = on_a_terminal()
    with printer:
        printer.emit(Event("run-started", "run: 9 steps", data={"steps": 9}))
        printer.emit(upload("h1", 60 * MIB, 100 * MIB))
        printer.emit(Event("warning", "a warning line"))
    assert "a warning line" in screen.getvalue()
    assert "uploaded" not in screen.getvalue()


def test_a_download_of_unknown_size_loses_its_bar_once_downloaded() -> None:
    printer, _ = on_a_terminal()
    with printer:
        printer.emit(Event("run-started", "run: 9 steps", data={"steps": 9}))
        printer.emit(Event("step-output", "downloading", "prepare/fetch", (),
                           {"received": 64 * MIB, "total": 0, "release": "6.12"}))  # fmt: skip
        assert "download 6.12" in live(printer) and "64 MiB" in live(printer)
        printer.emit(Event("installer-downloaded", "installer for 6.12 downloaded", "prepare/fetch", (),
                           {"release": "6.12", "sha256": "0" * 64}))  # fmt: skip
        assert "download 6.12" not in live(printer)


def finished(step: str, outcome: str) -> Event:
    return Event("step-finished", f"{outcome}: {step}", step, ("h1",), {"outcome": outcome})


def test_the_step_counter_counts_failed_steps_and_never_passes_the_total() -> None:
    printer, _ = on_a_terminal()
    with printer:
        printer.emit(Event("run-started", "run: 2 steps", data={"steps": 2}))
        assert "step 1 of 2" in live(printer)
        printer.emit(finished("a", "failed"))
        assert "step 2 of 2" in live(printer)
        printer.emit(finished("b", "ok"))
        printer.emit(finished("c", "ok"))  # a step the total did not count
        assert "step 2 of 2" in live(printer)
