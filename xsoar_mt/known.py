"""The deployment's local record under the state directory: the last view of every server, the backups
taken, and how long each server's steps took, across runs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from xsoar_mt.errors import InvalidInput
from xsoar_mt.inventory import Inventory
from xsoar_mt.localfiles import check_state_dir
from xsoar_mt.observed import Known, Prepared, ServerView
from xsoar_mt.state_dir import StateDir, write_private
from xsoar_mt.step_minutes import MEASURED_KEYS

_KEPT = ("servers", "backups", "durations", "backup_records", "prepared")  # what a record may hold


def deployment_key(inventory: Inventory) -> str:
    """A name for the deployment that copies of its inventory share: its name and its main servers' addresses."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", inventory.name)[:60] or "deployment"
    addresses = ",".join(sorted(s.address for s in inventory.main.servers))
    return f"{name}-{hashlib.sha256(addresses.encode()).hexdigest()[:8]}"


class KnownState:
    """`<state-dir>/deployments/<key>/servers.json`: each server's last view, the backups taken, and the
    minutes its stop, install, start and health gate took when a run last measured them.

    Updated on every probe and step, by every command that reads servers; read by `upgrade plan` without
    `--probe` and as the third source of a version when a server cannot tell its own. The durations are
    written after each run and read by `upgrade plan` and `upgrade run` for their estimates.
    """

    def __init__(self, state_dir: StateDir | Path, inventory: Inventory) -> None:
        check_state_dir(StateDir.of(state_dir).root)
        self.key = deployment_key(inventory)
        self.path = StateDir.of(state_dir).record(self.key)
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {"deployment": inventory.name, "servers": {}, "backups": {}}
        self.problem: str | None = None
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.problem = f"{self.path}: the local record cannot be read ({exc}); starting from nothing"
            return
        if isinstance(loaded, dict):
            self._data.update({k: v for k, v in loaded.items() if k in _KEPT})

    def servers(self) -> dict[str, Known]:
        out: dict[str, Known] = {}
        for name, entry in dict(self._data.get("servers") or {}).items():
            with contextlib.suppress(Exception):  # an entry this version cannot read is as good as none
                out[str(name)] = Known.from_dict(entry)
        return out

    def backups(self) -> dict[str, list[str]]:
        """Server -> the releases it has a completed pre-upgrade backup for."""
        raw = self._data.get("backups") or {}
        return {str(k): [str(r) for r in v] for k, v in raw.items() if isinstance(v, list)}

    def backup_records(self) -> dict[str, Any]:
        """Server -> the backup records taken before its upgrades, as stored (read strictly by rollback)."""
        raw = self._data.get("backup_records")
        return {str(k): v for k, v in raw.items()} if isinstance(raw, dict) else {}

    def record_backup_details(self, server: str, record: Mapping[str, Any]) -> None:
        """Keep one backup's record (rollback/backups.py `BackupRecord.to_dict`), newest last."""
        with self._lock:
            records = self._data.setdefault("backup_records", {})
            kept = records.get(server)
            records[server] = [*(kept if isinstance(kept, list) else []), dict(record)]

    def prepared(self) -> dict[str, list[Prepared]]:
        """Server -> the installers `upgrade prepare` fetched and verified there (an entry this version
        cannot read is left out: that installer counts as not prepared)."""
        out: dict[str, list[Prepared]] = {}
        for server, entry in dict(self._data.get("prepared") or {}).items():
            if not isinstance(entry, dict):
                continue
            for raw in entry.values():
                with contextlib.suppress(InvalidInput):
                    record = Prepared.parse(json.dumps(raw))
                    if record.server == server:
                        out.setdefault(str(server), []).append(record)
        return out

    def record_prepared(self, record: Prepared) -> None:
        """Keep what a prepare run verified on a server, one entry per release (the latest wins)."""
        with self._lock:
            prepared = self._data.setdefault("prepared", {})
            prepared.setdefault(record.server, {})[record.release] = record.to_dict()
            self._save()

    def durations(self) -> dict[str, dict[str, float]]:
        """Server -> action -> the minutes it took when last measured (`stop`, `install`, `start`, `healthy`)."""
        out: dict[str, dict[str, float]] = {}
        for server, entry in dict(self._data.get("durations") or {}).items():
            if not isinstance(entry, dict):
                continue
            minutes = {
                key: float(value)
                for key, value in entry.items()
                if key in MEASURED_KEYS
                and isinstance(value, int | float)
                and not isinstance(value, bool)  # JSON's true is no number of minutes
                and 0 <= value < float("inf")
            }
            if minutes:
                out[str(server)] = minutes
        return out

    def record_durations(self, measured: Mapping[str, Mapping[str, float]], run_id: str | None) -> None:
        """Keep what a run measured: each action's latest minutes per server, with the run and the time."""
        with self._lock:
            durations = self._data.setdefault("durations", {})
            for server, minutes in measured.items():
                entry = durations.setdefault(server, {})
                entry.update({key: round(value, 4) for key, value in minutes.items() if key in MEASURED_KEYS})
                entry.update({"run": run_id, "at": round(time.time())})
            self._save()

    def record(self, views: Iterable[ServerView], run_id: str | None = None) -> None:
        with self._lock:
            servers = self._data.setdefault("servers", {})
            for view in views:
                servers[view.server] = view.known(run_id).to_dict()
            self._save()

    def record_backup(self, servers: Iterable[str], release: str) -> None:
        with self._lock:
            backups = self._data.setdefault("backups", {})
            for server in servers:
                taken = backups.setdefault(server, [])
                if release not in taken:
                    taken.append(release)
            self._save()

    def _save(self) -> None:
        write_private(self.path, json.dumps(self._data, indent=1, sort_keys=True) + "\n")
