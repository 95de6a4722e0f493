"""What rollback reads back besides the plan: the backup record a server keeps beside its marker, and, for
`rollback run --resume`, which servers' way back began and did not finish. Pure: text and records in."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from xsoar_mt.framed import SHELL_FUNCTIONS, Unreadable, file_text, lines
from xsoar_mt.inventory import Inventory
from xsoar_mt.plan import Plan
from xsoar_mt.rollback.backups import NoBackup, ServerBackup, read_backup
from xsoar_mt.shellwords import word

RECORD_MARK = "xsoar-mt-backup-record:"


def record_command(path: str) -> str:
    """The command that reads the record at `path` beside the marker: its bytes in base64 on the answer's
    one line, so that nothing in the file can forge a line of the answer."""
    return f'{SHELL_FUNCTIONS}echo "{RECORD_MARK} $(xm_encf {word(path)})"'


def read_server_record(server: str, answer: str, inventory: Inventory) -> ServerBackup | None:
    """The record the server keeps beside its marker, framed: exactly one answer line, one JSON object read
    as strictly as the local record. None: there is none on the server."""
    found = [ln for ln in lines(answer) if ln.startswith(RECORD_MARK)]
    if len(found) != 1:
        return NoBackup(server, "the server's answer about its backup record could not be read")
    try:
        text = file_text(found[0][len(RECORD_MARK) :].strip(), "the backup record on the server")
    except Unreadable as exc:
        return NoBackup(server, exc.reason)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return NoBackup(server, "the backup record on the server is not JSON")
    return read_backup(server, data, inventory.releases)


def unfinished_servers(records: Sequence[Mapping[str, Any]], plans: Sequence[Plan]) -> frozenset[str]:
    """The servers of each group phase (of the resumed run's plans) where a step began and the phase's last
    step did not finish: they go back again whole (purge, install, restore), never from the middle."""
    groups = [p for plan in plans for p in plan.phases if p.group is not None and p.steps]
    last = {p.id: p.steps[-1].id for p in groups}
    phase_of = {s.id: p.id for p in groups for s in p.steps}  # from the plans, not read out of the step ids
    begun: dict[str, set[str]] = {}
    done: set[str] = set()
    for record in records:
        step = str(record.get("step") or "")
        data = record.get("data") or {}
        phase = phase_of.get(step)
        if record.get("kind") == "step-started" and phase is not None:
            begun.setdefault(phase, set()).update(str(s) for s in record.get("servers") or ())
        elif record.get("kind") == "step-finished" and isinstance(data, dict) and data.get("outcome") == "ok":
            done.add(step)
    return frozenset(s for phase, servers in begun.items() if last[phase] not in done for s in servers)
