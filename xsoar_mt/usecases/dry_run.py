"""What a dry run stands in for: the download link, and the answers its recording shells give."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from xsoar_mt.inventory import Inventory
from xsoar_mt.releases import Version
from xsoar_mt.remote import Result

# A dry run never reads the real link; this stands in for it (the fetch step shows it masked anyway).
DRY_RUN_LINK = "https://download.demisto.com/download-params/?token=dry-run&eula=accept"


def recorded_responder(inventory: Inventory, versions: dict[str, Version]) -> Callable[[str, str], Result]:
    """Answers for a dry run: every command succeeds and servers reach the release their installer names."""
    installed = re.compile(r"install-(\d+\.\d+)\.rc")

    def respond(server: str, command: str) -> Result:
        if "__xsoar_mt_sudo" in command:
            return Result(server, command, 0, "__xsoar_mt_sudo=0\n__xsoar_mt_status=0\n")
        if "nohup setsid" in command:
            return Result(server, command, 0, "STARTED\n")
        if "xm_c=$(cat" in command and (found := installed.search(command)):
            versions[server] = Version.parse(found.group(1))
            return Result(server, command, 0, "0 0 - -\n")
        if "/about" in command and "/acc_" not in command and "for t in" not in command:
            return Result(server, command, 0, json.dumps({"demistoVersion": str(versions[server])}))
        if "for t in" in command:
            out = "".join(f"== tenant {t.account}\n{{\"demistoVersion\": \"{versions[server]}\"}}\n"
                          for g in inventory.groups for t in g.tenants)  # fmt: skip
            return Result(server, command, 0, out)
        if "sha256sum" in command:
            return Result(server, command, 0, "0" * 64 + "  installer\n")
        if "http_code" in command:
            return Result(server, command, 0, "200")
        return Result(server, command, 0, "")

    return respond
