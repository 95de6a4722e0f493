"""Every command a run sends carries its kind, and a dry run's shells answer by it, never by its text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.engine_setup import FAST, INVENTORY, LINK
from tests.unit.scripted_servers import ScriptedFleet, ScriptedShell
from xsoar_mt.engine import Executor, RunSecrets
from xsoar_mt.engine.dry_run import recorded_responder
from xsoar_mt.events import Fanout
from xsoar_mt.inventory import parse_inventory
from xsoar_mt.observed import resolve
from xsoar_mt.planner import plan_upgrade
from xsoar_mt.releases import Version
from xsoar_mt.remote import CommandKind, RemoteCommand, Result, command_kind


def test_an_installer_poll_moves_the_server_to_its_release_whatever_the_command_says() -> None:
    versions = {"m1": Version.parse("6.10.0")}
    respond = recorded_responder(parse_inventory(INVENTORY, "inv.yaml"), versions)
    answer = respond("m1", RemoteCommand("true", CommandKind.INSTALL_POLL, "6.11"))
    assert answer.ok and answer.stdout.split()[:2] == ["0", "0"]  # exit 0, no longer running
    about = respond("m1", RemoteCommand("true", CommandKind.VERSION))
    assert json.loads(about.stdout) == {"demistoVersion": "6.11.0"}


def test_text_that_looks_like_an_installer_launch_is_not_answered_as_one_without_its_kind() -> None:
    respond = recorded_responder(parse_inventory(INVENTORY, "inv.yaml"), {})
    looks_like = "nohup setsid sh -c 'installer' & echo STARTED"
    assert respond("m1", looks_like).stdout == ""
    assert respond("m1", RemoteCommand("true", CommandKind.INSTALL_LAUNCH)).stdout == "STARTED\n"


def test_the_tenants_check_hears_every_tenant_on_the_server_s_version() -> None:
    versions = {"m1": Version.parse("6.11.0")}
    respond = recorded_responder(parse_inventory(INVENTORY, "inv.yaml"), versions)
    answer = respond("m1", RemoteCommand("true", CommandKind.TENANTS))
    assert answer.stdout.splitlines()[0].startswith("== tenant ")
    assert '"demistoVersion": "6.11.0"' in answer.stdout


class KindsSeen:
    """A scripted server's shell that notes the kind of every command it is sent."""

    def __init__(self, shell: ScriptedShell, seen: list[tuple[CommandKind, str]]) -> None:
        self.shell, self.server, self.seen = shell, shell.server, seen

    def connect(self) -> None:
        self.shell.connect()

    def run(self, command: str, **options: Any) -> Result:
        self.seen.append((command_kind(command), command))
        return self.shell.run(command, **options)

    def put(self, local: Path, remote: str, progress: object = None) -> None:
        self.shell.put(local, remote, progress)

    def close(self) -> None:
        pass


def test_every_command_a_run_sends_carries_its_kind() -> None:
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    fleet = ScriptedFleet({s.name: "6.10.0" for s in inventory.servers})
    seen: list[tuple[CommandKind, str]] = []
    shells = {s.name: KindsSeen(fleet.shell(s.name), seen) for s in inventory.servers}
    plan = plan_upgrade(inventory, inventory.versions(), "6.11")
    executor = Executor(inventory, plan, shells.__getitem__, Fanout(), resolve(inventory, {}, {}),  # type: ignore[arg-type]  # a scripted shell
                        RunSecrets(link=LINK), FAST)  # fmt: skip
    assert executor.execute().outcome == "succeeded"
    assert [command for kind, command in seen if kind is CommandKind.OTHER] == []
    kinds = {kind for kind, _ in seen}
    assert {CommandKind.BACKUP, CommandKind.FETCH, CommandKind.STOP, CommandKind.INSTALL_LAUNCH,
            CommandKind.INSTALL_POLL, CommandKind.START, CommandKind.HEALTH, CommandKind.VERSION,
            CommandKind.MARKER, CommandKind.HEALTH_URL, CommandKind.TENANTS} <= kinds  # fmt: skip
