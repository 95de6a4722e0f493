"""What the rollback fleet tests share: an upgrade with data written after it, `rollback run` as an
operator runs it, and the checks that a deployment is back (release, data, tenants, order)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.fleet import runs
from tests.fleet.fleet import Fleet


def rollback(inv: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return runs.xsoar_mt("rollback", "run", "-i", str(inv), "--yes", "--state-dir", str(inv.parent / "state"),
                         *args, cwd=inv.parent, timeout=timeout)  # fmt: skip


def rollback_json(inv: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    result = rollback(inv, *args, "-o", "json")
    return result, runs.events_of(result.stdout)


def tenant_dir(fleet: Fleet, server: str) -> Path:
    return fleet.server(server).home / "var" / "lib" / "demisto" / "tenants"


def upgrade_then_write(fleet: Fleet, deployment: str, tmp_path: Path, overrides: dict[str, Any] | None = None
                       ) -> Path:  # fmt: skip
    """The deployment upgraded 6.11 -> 6.12 by `upgrade run`, then a file written on every upgraded server
    (what rollback must take away)."""
    inv = fleet.inventory(deployment, tmp_path / "inventory.yaml")
    if overrides:
        import yaml

        from tests.fleet.inventory import merge

        inv.write_text(yaml.safe_dump(merge(yaml.safe_load(inv.read_text()), overrides), sort_keys=False))
    upgraded = runs.run(inv, "--to", "6.12")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    for server in fleet.servers(deployment):
        assert server.version.startswith("6.12"), server.name
        written = server.home / "var" / "lib" / "demisto" / "written-after-the-upgrade"
        written.write_text("lost on the way back\n")
    return inv


def assert_back(fleet: Fleet, deployment: str, events: list[dict[str, Any]]) -> None:
    for server in fleet.servers(deployment):
        assert server.version.startswith("6.11"), (server.name, server.version)
        assert server.running, server.name
        assert not (server.home / "var" / "lib" / "demisto" / "written-after-the-upgrade").exists(), (
            server.name
        )
    validated = {
        e["step"].split("/")[1]: e["data"]["outcome"]
        for e in events
        if e["kind"] == "step-finished" and e.get("step", "").startswith("validate/")
    }
    assert validated.get("tenants") == "ok"  # every tenant answered through main
    assert (validated.get("load-balancer") or validated.get("main")) == "ok"  # main's own health
    assert runs.order_violations(fleet) == []


ES_REPOSITORY = {"deployment": {"elasticsearch_snapshot_repository": "backups"}}


def es(fleet: Fleet, method: str, path: str, body: Any = None) -> Any:
    from xsoar_mt.snapshots import request

    return request(fleet.elasticsearch_url, method, path, None, body)


def stops(fleet: Fleet) -> int:
    return sum(1 for e in fleet.events() if e["event"] in ("stop", "purge", "install_begin"))


def phase_spans(state_dir: Path) -> dict[str, tuple[int, int]]:
    """Each phase of the latest run: the positions in its journal of its first step-started and its last
    step-finished record (the journal is appended in the order things happen)."""
    from tests.recap_check import latest_run_dir

    run_dir = latest_run_dir(state_dir)
    assert run_dir is not None
    records = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    spans: dict[str, tuple[int, int]] = {}
    for at, record in enumerate(records):
        if record.get("kind") not in ("step-started", "step-finished"):
            continue
        phase = str(record["step"]).split("/")[0]
        first, _ = spans.get(phase, (at, at))
        spans[phase] = (first, at)
    return spans


def local_installers(fleet: Fleet, tmp_path: Path, *releases: str) -> Path:
    """The operator's installer files for upload delivery, `installers/demisto-<release>.sh` beside the
    inventory, copied from the vendor's."""
    folder = tmp_path / "installers"
    folder.mkdir(exist_ok=True)
    for release in releases:
        shutil.copy(fleet.downloads / f"demisto-{release}.sh", folder / f"demisto-{release}.sh")
    return folder


UPLOAD_FILES = {"installer": {"delivery": "upload", "file": "installers/demisto-{release}.sh", "link": None}}
