"""SSH to servers with Fabric and Paramiko: the only module that imports either.

Fabric opens the connection (the operator's ssh config, agent and bastion are honoured); commands run on a
Paramiko channel of that connection so that stdin, sudo's prompt and a dropped connection are handled
exactly. Host keys are checked against known_hosts: unknown keys are refused unless the operator opts in
for first contact, and a changed key is always refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
from fabric import Config, Connection

from xsoar_mt.inventory import Bastion, Server, SshSettings
from xsoar_mt.remote import (
    SUDO_PROMPT,
    Cancel,
    Cancelled,
    ConnectionLost,
    HostKeyRefused,
    RemoteError,
    Result,
    SudoRejected,
    elevate,
    uses_sudo,
)
from xsoar_mt.secrets import REDACTOR

# Paramiko logs a connection's failures itself (with tracebacks, e.g. a server closing before the SSH
# banner); xsoar-mt reports them as one error line. Without this handler Python's last-resort handler
# prints the library's warnings on the terminal; `--debug` adds a handler of its own that shows them.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_READ = 32768
# What sudo prints when the password was wrong (it then asks again; we never answer twice).
_SUDO_REJECTIONS = (b"Sorry, try again", b"incorrect password attempt")
_PROMPT = SUDO_PROMPT.encode()


def _whose(hostname: str, role: str) -> str:
    """`the bastion 10.0.0.5`, `the jump host [10.0.0.6]:2222`, or `` for the server itself."""
    return f" of the {role} {hostname}" if role else ""


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko is untyped
    def __init__(self, role: str) -> None:
        self.role = role  # "" for the server itself, "bastion" or "jump host" for a hop on the way

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        owner = f"the {self.role}'s owner" if self.role else "the server's owner"
        raise HostKeyRefused(
            hostname,
            f"unknown host key{_whose(hostname, self.role)} ({key.get_name()} {key.fingerprint})",
            hint=f"verify the fingerprint with {owner}, then add it to known_hosts "
            "(or pass --accept-new-host-keys once for first contact)",
        )


class _AcceptNew(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko is untyped
    """First contact only: record an unknown key in known_hosts (like StrictHostKeyChecking=accept-new).

    Every server reached through one bastion meets the bastion's key: the file is read again under a
    lock shared by all connections, so the key is written once, and a different key that another
    connection recorded meanwhile is refused as changed.
    """

    _lock = threading.Lock()

    def __init__(self, known_hosts: Path, role: str) -> None:
        self.known_hosts = known_hosts
        self.role = role

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        with self._lock:
            recorded = paramiko.HostKeys()
            if self.known_hosts.exists():
                recorded.load(str(self.known_hosts))
            known = (recorded.lookup(hostname) or {}).get(key.get_name())
            if known is not None and known != key:
                raise HostKeyRefused(
                    hostname,
                    f"host key{_whose(hostname, self.role)} changed while connecting: known_hosts now has "
                    f"{known.get_name()} {known.fingerprint}, this connection was offered {key.fingerprint}",
                    hint="this may be an attack; confirm with the owner and fix known_hosts yourself",
                )
            if known is None:
                self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
                with self.known_hosts.open("a", encoding="utf-8") as handle:
                    handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def _secure(client: paramiko.SSHClient, known_hosts: Path, accept_new: bool, role: str = "") -> None:
    if known_hosts.exists():
        client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(_AcceptNew(known_hosts, role) if accept_new else _RefuseUnknown(role))


def _bastion_connection(bastion: Bastion, ssh: SshSettings, accept_new: bool) -> Connection:
    kwargs: dict[str, Any] = {}
    identity = bastion.identity_file or ssh.identity_file
    if identity:
        kwargs["key_filename"] = os.path.expanduser(identity)
    conn = Connection(
        bastion.host,
        user=bastion.user or ssh.user,
        port=bastion.port,
        connect_kwargs=kwargs,
        connect_timeout=int(ssh.connect_timeout),
    )
    _secure(conn.client, Path(os.path.expanduser(ssh.known_hosts)), accept_new, "bastion")
    return conn


class SshShell:
    """A shell on one server over one SSH connection, reconnected on demand after a drop."""

    def __init__(
        self, server: Server, *, sudo_password: str | None, accept_new_host_keys: bool = False
    ) -> None:
        self.server = server.name
        self._target = server
        self._sudo_password = sudo_password
        self._accept_new = accept_new_host_keys
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.connections_opened = 0
        self.commands_run = 0

    # -- connecting ---------------------------------------------------------------------------------

    def _connection(self) -> Connection:
        ssh = self._target.ssh
        config = Config(runtime_ssh_path=os.path.expanduser(ssh.config_file)) if ssh.config_file else Config()
        kwargs: dict[str, Any] = {
            "banner_timeout": ssh.connect_timeout,
            "auth_timeout": ssh.connect_timeout,
        }
        if ssh.identity_file:
            kwargs["key_filename"] = os.path.expanduser(ssh.identity_file)
        gateway = _bastion_connection(ssh.bastion, ssh, self._accept_new) if ssh.bastion else None
        conn = Connection(
            self._target.address,
            user=ssh.user,
            port=ssh.port,
            config=config,
            connect_kwargs=kwargs,
            connect_timeout=int(ssh.connect_timeout),
            **({"gateway": gateway} if gateway else {}),
        )
        known_hosts = Path(os.path.expanduser(ssh.known_hosts))
        _secure(conn.client, known_hosts, self._accept_new)
        hop: Any = conn.gateway
        while isinstance(hop, Connection):  # the bastion, or each ProxyJump hop fabric made from ssh config
            _secure(hop.client, known_hosts, self._accept_new, "bastion" if hop is gateway else "jump host")
            hop = hop.gateway
        return conn

    def connect(self) -> None:
        with self._lock:
            if self._conn is not None and self._alive(self._conn):
                return
            self._close_quietly()
            conn = self._connection()
            try:
                conn.open()
            except HostKeyRefused as exc:
                raise HostKeyRefused(self.server, exc.detail, hint=exc.hint) from None
            except paramiko.BadHostKeyException as exc:
                role = (
                    ""
                    if exc.hostname in self._own_names()
                    else "bastion"
                    if self._target.ssh.bastion
                    else "jump host"
                )
                raise HostKeyRefused(
                    self.server,
                    f"host key{_whose(exc.hostname, role)} changed: known_hosts has {exc.expected_key.get_name()} "
                    f"{exc.expected_key.fingerprint}, {'it' if role else 'the server'} offered {exc.key.fingerprint}",
                    hint="this may be an attack or a reinstalled server; confirm with its owner and fix "
                    "known_hosts yourself: xsoar-mt never accepts a changed key",
                ) from None
            except paramiko.AuthenticationException as exc:
                raise RemoteError(self.server, f"SSH authentication failed ({exc})") from None
            except paramiko.SSHException as exc:
                if "no authentication methods" not in str(exc).lower():
                    raise ConnectionLost(self.server, f"cannot connect over SSH: {exc}") from None
                raise RemoteError(
                    self.server,
                    "SSH authentication failed: no key to offer",
                    hint="set ssh.identity_file, or load the key into ssh-agent (SSH_AUTH_SOCK)",
                ) from None
            except (OSError, EOFError) as exc:
                raise ConnectionLost(self.server, f"cannot connect over SSH: {exc}") from None
            transport = conn.client.get_transport()
            if transport is not None and self._target.ssh.keepalive:
                transport.set_keepalive(int(self._target.ssh.keepalive))
            self._conn = conn
            self.connections_opened += 1

    def _own_names(self) -> tuple[str, str]:
        """The names known_hosts holds this server's own key under."""
        return self._target.address, f"[{self._target.address}]:{self._target.ssh.port}"

    @staticmethod
    def _alive(conn: Connection) -> bool:
        transport = conn.client.get_transport()
        return bool(transport is not None and transport.is_active())

    def _close_quietly(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a dead connection may fail to close; it is gone anyway
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    # -- running ------------------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> Result:
        """Run `command`; feed `stdin`, or answer sudo's prompt with the password. Never both.

        `cancel`, when it turns true, cuts the command off (its channel is closed) and raises Cancelled.
        """
        self.connect()
        assert self._conn is not None
        sudo = uses_sudo(command)
        if sudo and stdin is not None and self._sudo_password is not None:
            raise ValueError("a command cannot both take data on stdin and a sudo password")
        wire = elevate(command) if sudo else command
        transport = self._conn.client.get_transport()
        if transport is None:
            raise ConnectionLost(self.server, "the SSH connection is closed")
        self.commands_run += 1
        try:
            channel = transport.open_session(timeout=self._target.ssh.connect_timeout)
            channel.exec_command(wire)
            if stdin is not None:
                channel.sendall(stdin.encode())
            if not (sudo and self._sudo_password is not None):
                channel.shutdown_write()
            return self._collect(channel, command, timeout, cancel, sudo)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise ConnectionLost(
                self.server, f"SSH connection lost while running a command ({exc})"
            ) from None

    def _collect(
        self,
        channel: paramiko.Channel,
        command: str,
        timeout: float | None,
        cancel: Cancel | None,
        sudo: bool = True,
    ) -> Result:
        deadline = time.monotonic() + timeout if timeout else None
        out, err = bytearray(), bytearray()
        answered = 0
        channel.settimeout(0.05)
        while True:
            progressed = False
            if channel.recv_ready():
                out += channel.recv(_READ)
                progressed = True
            if channel.recv_stderr_ready():
                err += channel.recv_stderr(_READ)
                progressed = True
            if progressed and sudo and self._sudo_prompted(channel, err, answered):
                prompts = err.count(_PROMPT)
                assert self._sudo_password is not None
                channel.sendall(((self._sudo_password + "\n") * (prompts - answered)).encode())
                answered = prompts
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            if channel.closed and not progressed:
                break
            if cancel is not None and not progressed and cancel():
                channel.close()
                raise Cancelled(self.server, "stopped waiting for the command (second interrupt)")
            if deadline and time.monotonic() > deadline:
                channel.close()
                return Result(self.server, command, 124, _clean(out), _clean(err) + "\n(timed out)")
            if not progressed:
                time.sleep(0.005)
        code = channel.recv_exit_status() if channel.exit_status_ready() else -1
        if code == -1:
            raise ConnectionLost(self.server, "the command ended without an exit status")
        return Result(self.server, command, code, _clean(out), _clean(err))

    def _sudo_prompted(self, channel: paramiko.Channel, err: bytearray, answered: int) -> bool:
        """True when sudo asks for the password again; raises when it cannot or must not be answered.

        Asked only for a command that uses sudo, and only of its standard error, where `sudo -S` writes
        its prompt and its "Sorry, try again": a command's own output (an install log) may hold either."""
        rejected = any(m in err for m in _SUDO_REJECTIONS)
        prompts = err.count(_PROMPT)
        if not rejected and prompts <= answered:
            return False
        if self._sudo_password is None or rejected:
            channel.close()
            raise SudoRejected(
                self.server,
                "sudo asked for a password and none is configured"
                if self._sudo_password is None
                else "sudo rejected the password",
                hint="set ssh.sudo_password in the inventory (env, file or prompt) to the right one",
            )
        return True

    def put(self, local: Path, remote: str, progress: Callable[[int, int], None] | None = None) -> None:
        self.connect()
        assert self._conn is not None
        try:
            sftp = self._conn.client.open_sftp()
            try:
                sftp.put(str(local), remote, callback=progress)
                sftp.chmod(remote, 0o600)  # private, and not executable until the server checked its sha256
            finally:
                sftp.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            # The connection dropped, or the server refused the file (an SFTP status: no such directory,
            # permission denied) on a connection that still works: only the first is worth a reconnect.
            transport = self._conn.client.get_transport() if self._conn is not None else None
            lost = isinstance(exc, (EOFError, paramiko.SSHException)) or not (
                transport is not None and transport.is_active()
            )
            if lost:
                self.close()
                raise ConnectionLost(self.server, f"upload failed ({exc})") from None
            raise RemoteError(
                self.server, f"upload to {remote} failed ({exc or type(exc).__name__})"
            ) from None


def _clean(data: bytes | bytearray) -> str:
    """Output as text, without the sudo prompts xsoar-mt asked for, and with every secret masked: here,
    where output enters xsoar-mt, before anything cuts it (a secret cut short is no longer found) or
    quotes it with `repr`."""
    return REDACTOR.redact(bytes(data).decode("utf-8", errors="replace").replace(SUDO_PROMPT, ""))
