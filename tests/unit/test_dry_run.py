"""A dry run's shells answer each command by its kind, never by recognising its text."""

from __future__ import annotations

import json

from tests.unit.test_executor_flow import INVENTORY
from xsoar_mt.engine.dry_run import recorded_responder
from xsoar_mt.inventory import parse_inventory
from xsoar_mt.releases import Version
from xsoar_mt.remote import CommandKind, RemoteCommand


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
