"""What a run reports as it goes, and the plain-text and JSON-lines writers of those reports."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from xsoar_mt.framed import printable
from xsoar_mt.secrets import REDACTOR


@dataclass(frozen=True)
class Event:
    """kind: run-started | probe | step-started | step-output | step-finished | warning | would-run |
    run-finished."""

    kind: str
    message: str
    step: str | None = None
    servers: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ts": round(self.ts, 3), "kind": self.kind, "message": self.message}
        if self.step:
            out["step"] = self.step
        if self.servers:
            out["servers"] = list(self.servers)
        if self.data:
            out["data"] = dict(self.data)
        return out


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class Fanout:
    """Sends each event to every sink, one event at a time."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = list(sinks)
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            for sink in self.sinks:
                sink.emit(event)


class JsonLinesSink:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, event: Event) -> None:
        self.stream.write(REDACTOR.redact(json.dumps(event.to_dict())) + "\n")
        self.stream.flush()


class PlainSink:
    """Timestamped lines for logs and pipes (no terminal)."""

    QUIET = frozenset({"step-output", "ssh-stats"})

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, event: Event) -> None:
        if event.kind in self.QUIET:
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
        self.stream.write(REDACTOR.redact(f"{stamp} {printable(event.message)}") + "\n")
        self.stream.flush()
