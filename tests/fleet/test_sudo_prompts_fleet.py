"""sudo's prompt and its "Sorry, try again" are looked for only in a command that uses sudo, and only on
its standard error, on real OpenSSH servers whose sudo wants a password (`mixed-main`, password s3cret)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet
from xsoar_mt.inventory import Inventory, load_inventory
from xsoar_mt.remote import ShellPool, SudoRejected

pytestmark = pytest.mark.fleet


def ssh_pool(inventory: Inventory, sudo: dict[str, str], accept_new: bool) -> ShellPool:
    """One real SSH shell per server, the sudo password of each given (as a session makes them)."""
    from xsoar_mt.ssh import SshShell

    return ShellPool(
        lambda name: SshShell(
            inventory.server(name), sudo_password=sudo.get(name), accept_new_host_keys=accept_new
        )
    )


@pytest.fixture()
def shells(fleet: Fleet, tmp_path: Path) -> Iterator[ShellPool]:
    inventory = load_inventory(fleet.inventory("mixed", tmp_path / "inventory.yaml"))
    pool = ssh_pool(inventory, {"mixed-main": "s3cret"}, False)
    yield pool
    pool.close()


def test_the_phrase_in_a_commands_own_output_fails_nothing(shells: ShellPool) -> None:
    shell = shells("mixed-main")
    plain = shell.run("echo 'Sorry, try again.'; echo 'Sorry, try again.' >&2", timeout=30)
    assert plain.ok and "Sorry, try again." in plain.stdout
    logged = shell.run("sudo true && printf 'installing\\nSorry, try again.\\ndone\\n'", timeout=30)
    assert logged.ok and "Sorry, try again." in logged.stdout  # an install log's line, not sudo's


def test_a_wrong_sudo_password_is_still_refused(fleet: Fleet, tmp_path: Path) -> None:
    data = fleet.inventory("mixed", tmp_path / "inventory.yaml")
    inventory = load_inventory(data)
    pool = ssh_pool(inventory, {"mixed-main": "not-s3cret"}, False)
    try:
        with pytest.raises(SudoRejected, match="sudo rejected the password"):
            pool("mixed-main").run("sudo true", timeout=30)
    finally:
        pool.close()
