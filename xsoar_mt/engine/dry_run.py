"""What a dry run's recording shells answer: every command succeeds, by its kind, and each server reaches
the release its installer names. Commands are told apart by their kind, never by their text."""

from __future__ import annotations

import json
from collections.abc import Callable

from xsoar_mt.inventory import Inventory
from xsoar_mt.releases import Version
from xsoar_mt.remote import CommandKind, Result, command_kind

# The digest a dry run says a server's installer has: never the local one, so it is always "sent".
_NO_DIGEST = "0" * 64


def recorded_responder(inventory: Inventory, versions: dict[str, Version]) -> Callable[[str, str], Result]:
    """Answers for a dry run; `versions` (server -> version) moves as installers "finish"."""

    def respond(server: str, command: str) -> Result:
        kind = command_kind(command)
        if kind in (CommandKind.INSTALL_LAUNCH, CommandKind.PURGE_LAUNCH):
            return Result(server, command, 0, "STARTED\n")
        if kind is CommandKind.INSTALL_POLL:
            release = getattr(command, "release", None)
            if release is not None:
                versions[server] = Version.parse(release)
            return Result(server, command, 0, "0 0 - -\n")
        if kind is CommandKind.PURGE_POLL:
            return Result(server, command, 0, "0 0 - -\n")
        if kind is CommandKind.VERSION:
            return Result(server, command, 0, json.dumps({"demistoVersion": str(versions[server])}))
        if kind is CommandKind.TENANTS:
            out = "".join(
                f'== tenant {t.account}\n{{"demistoVersion": "{versions[server]}"}}\n'
                for g in inventory.groups
                for t in g.tenants
            )
            return Result(server, command, 0, out)
        if kind is CommandKind.PREPARED_CHECK:  # what a fetch left: the pinned sha256, when there is one
            release = getattr(command, "release", None)
            digest = inventory.installer.sha256.get(release or "", _NO_DIGEST)
            return Result(server, command, 0, f"{digest}  installer\n")
        if kind is CommandKind.INSTALLER_DIGEST:
            return Result(server, command, 0, f"{_NO_DIGEST}  installer\n")
        if kind in (CommandKind.HEALTH, CommandKind.HEALTH_URL):
            return Result(server, command, 0, "200")
        return Result(server, command, 0, "")

    return respond
