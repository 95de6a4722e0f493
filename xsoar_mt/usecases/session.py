"""One command's hold on a deployment: its inventory, its local record, the secrets and the shells to its
servers, opened once and closed once."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from types import TracebackType

from xsoar_mt.errors import InvalidInput
from xsoar_mt.inventory import Inventory, load_inventory
from xsoar_mt.known import KnownState
from xsoar_mt.observed import Observed, Reading, resolve
from xsoar_mt.remote import RemoteShell, ShellPool
from xsoar_mt.secrets import RunSecrets, SecretRef, read_secret
from xsoar_mt.state_dir import StateDir
from xsoar_mt.state_home import default_state_dir

ShellFactory = Callable[[str], RemoteShell]  # a server's name -> a shell on it
Prompt = Callable[[str], str]  # a label -> what the operator typed (hidden)


class LinkNeed(Enum):
    """Whether a command reads the installer's download link."""

    NONE = "none"
    REQUIRED = "required"  # a run: refused when server-download delivery has no link
    IF_SET = "if-set"  # preflight: read when the inventory names one; its check reports a missing one


class Session:
    """The inventory, the known state, the secrets and the SSH pool that one command shares.

    Use it as a context manager: entering loads the inventory and the local record; leaving closes every
    shell opened. Shells are SSH shells made from the inventory, unless `shells` is given (tests pass a
    scripted or recording factory here). Nothing connects until a shell is first used.
    """

    def __init__(
        self,
        inventory_path: Path,
        state_dir: StateDir | Path | None = None,  # None: the default (state_home.py)
        *,
        accept_new_host_keys: bool = False,
        prompt: Prompt | None = None,
        shells: ShellFactory | None = None,
    ) -> None:
        self.inventory_path = inventory_path
        self.state = StateDir.of(state_dir if state_dir is not None else default_state_dir())
        self.accept_new_host_keys = accept_new_host_keys
        self.prompt = prompt
        self._make = shells
        self._sudo: dict[str, str] = {}
        self.secrets = RunSecrets()  # what read_secrets read
        self._pool: ShellPool | None = None
        self._inventory: Inventory | None = None
        self._known: KnownState | None = None

    def __enter__(self) -> Session:
        self._inventory = load_inventory(self.inventory_path)
        self._known = KnownState(self.state, self._inventory)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    @property
    def inventory(self) -> Inventory:
        assert self._inventory is not None, "use the session in a `with` block"
        return self._inventory

    @property
    def known(self) -> KnownState:
        assert self._known is not None, "use the session in a `with` block"
        return self._known

    def read_secrets(
        self, *, servers: Sequence[str] | None = None, sudo: bool = True, link: LinkNeed = LinkNeed.NONE
    ) -> RunSecrets:
        """Every secret the command needs, before any server is contacted (each source read once; a
        prompt happens here). The sudo passwords of `servers` (all by default) are kept for the shells."""
        inventory = self.inventory
        names = list(servers) if servers is not None else [s.name for s in inventory.servers]
        if sudo:
            self._sudo = self._sudo_passwords(names)
        read_link = None
        if link is LinkNeed.REQUIRED:
            read_link = _required_link(inventory)
        api_key = read_secret(inventory.api_key, "API key", prompt=self.prompt) if inventory.api_key else None
        if link is LinkNeed.IF_SET and inventory.installer.link is not None:
            with contextlib.suppress(InvalidInput):  # the installer check reports a missing link
                read_link = read_secret(inventory.installer.link, "download link")
        self.secrets = RunSecrets(link=read_link, api_key=api_key)
        return self.secrets

    def _sudo_passwords(self, names: Sequence[str]) -> dict[str, str]:
        """The sudo password of each server that has one (servers may override `ssh.sudo_password`)."""
        sudo: dict[str, str] = {}
        by_source: dict[SecretRef, str] = {}
        for name in names:
            ref = self.inventory.server(name).ssh.sudo_password
            if ref is None:
                continue
            if ref not in by_source:
                shared = ref == self.inventory.ssh.sudo_password
                label = "sudo password" if shared else f"sudo password for {name}"
                by_source[ref] = read_secret(ref, label, prompt=self.prompt)
            sudo[name] = by_source[ref]
        return sudo

    @property
    def shells(self) -> ShellPool:
        """One shell per server for the whole command, made on first use."""
        if self._pool is None:
            self._pool = ShellPool(self._make or self._ssh_shell)
        return self._pool

    def _ssh_shell(self, name: str) -> RemoteShell:
        from xsoar_mt.ssh import SshShell  # fabric and paramiko load only when a command needs SSH

        return SshShell(
            self.inventory.server(name),
            sudo_password=self._sudo.get(name),
            accept_new_host_keys=self.accept_new_host_keys,
        )

    def shell_stats(self) -> dict[str, dict[str, int]] | None:
        """Connections opened and commands run per server; None when no shell was asked for."""
        return None if self._pool is None else self._pool.stats()

    def observe(self) -> tuple[Observed, Mapping[str, Reading]]:
        """Every server read at once (read only), resolved with the local record, which is then updated."""
        from xsoar_mt.probe import observe_all

        readings = observe_all(self.inventory, self.shells, self.secrets.api_key)
        observed = resolve(self.inventory, readings, self.known.servers())
        self.known.record(observed.views.values())
        return observed, readings

    def record(self, observed: Observed) -> str | None:
        """Keep what was just observed in the local record; one that cannot be written is only a warning,
        returned as its text."""
        try:
            self.known.record(observed.views.values())
        except OSError as exc:
            return f"warning: cannot update the local record {self.known.path}: {exc}"
        return None


def _required_link(inventory: Inventory) -> str | None:
    installer = inventory.installer
    if installer.delivery != "server-download" and installer.link is None:
        return None
    if installer.link is None:
        raise InvalidInput(
            "installer.link is not set: the servers need the download link",
            hint="set installer.link: {env: NAME} or {file: PATH}, or use delivery: upload",
        )
    return read_secret(installer.link, "download link", prompt=None)
