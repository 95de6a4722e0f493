"""The inventory's model: the deployment, its groups, servers and tenants, and its settings, as plain
frozen data. Reading it from YAML is loader.py's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from xsoar_mt.releases import ReleaseLine, Version
from xsoar_mt.secrets import SecretRef


class Topology(StrEnum):
    SINGLE = "server"
    HA = "ha"
    DR = "dr"


class Role(StrEnum):
    """A server's place in its group."""

    SINGLE = "single"
    APP = "app"  # one of an HA group's servers
    PRIMARY = "primary"
    SECONDARY = "secondary"


@dataclass(frozen=True)
class Bastion:
    host: str
    user: str | None = None
    port: int = 22
    identity_file: str | None = None


@dataclass(frozen=True)
class SshSettings:
    user: str | None = None
    port: int = 22
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    config_file: str | None = None
    bastion: Bastion | None = None
    connect_timeout: float = 10.0
    keepalive: float = 15.0
    sudo_password: SecretRef | None = None


@dataclass(frozen=True)
class Server:
    name: str
    address: str
    group: str
    role: Role
    ssh: SshSettings
    version: Version | None = None
    line: int = 0

    @property
    def ssh_port(self) -> int:
        return self.ssh.port


@dataclass(frozen=True)
class Tenant:
    name: str
    port: int
    group: str

    @property
    def account(self) -> str:
        return f"acc_{self.name}"


@dataclass(frozen=True)
class Group:
    """Main, or a host group: one server, an HA group, or a DR pair, with its tenants."""

    name: str
    is_main: bool
    topology: Topology
    servers: tuple[Server, ...]
    tenants: tuple[Tenant, ...] = ()
    load_balancer: str | None = None
    wave: int | None = None  # a host group's place in `--waves` (lower first); None: inventory order

    @property
    def primary(self) -> Server:
        return next(s for s in self.servers if s.role is Role.PRIMARY)

    @property
    def secondary(self) -> Server:
        return next(s for s in self.servers if s.role is Role.SECONDARY)

    @property
    def label(self) -> str:
        kind = {Topology.SINGLE: "single", Topology.HA: "HA group", Topology.DR: "DR pair"}[self.topology]
        return f"main ({kind})" if self.is_main else f"host group {self.name} ({kind})"


@dataclass(frozen=True)
class InstallerSettings:
    link: SecretRef | None = None
    file: str | None = None
    delivery: str = "server-download"
    directory: str = "/var/lib/xsoar-mt"  # private: root's (or the SSH user's), 0700; see workdir.py
    target_dir: str | None = None
    extra_flags: tuple[str, ...] = ()
    build: str | None = None
    sha256: Mapping[str, str] = field(default_factory=dict)
    max_minutes: float = 120.0  # an installer still running after this long fails its step (left running)


@dataclass(frozen=True)
class Commands:
    stop: str = "sudo service demisto stop"
    start: str = "sudo service demisto start"
    status: str = "sudo service demisto status"
    # The installer does not start the service itself: the plan's own start step does, so an installer's
    # exit code says only whether it installed, and a failed start is a step of its own.
    install: str = "sudo {installer} {target} -- -multi-tenant -do-not-start-server {flags}"
    # The backup holds the database: made 0700 in one step, the archive written under umask 077 (0600).
    backup: str = (
        "sudo install -d -m 0700 {backup_dir} && sudo sh -c 'umask 077 && exec tar \"$@\"' tar "
        "-czf {backup_dir}/demisto-before-{version}-{stamp}.tar.gz -C / etc/demisto.conf var/lib/demisto"
    )
    backup_dir: str = "/var/lib/xsoar-mt/backup"
    # Rollback puts a backup's files back with this (after checking the archive's sha256): it must mirror
    # `backup`. The data directory a fresh install made is moved aside first and removed once restored.
    restore: str = (
        "sudo rm -rf /var/lib/demisto.before-restore && "
        "{{ ! sudo test -e /var/lib/demisto || sudo mv /var/lib/demisto /var/lib/demisto.before-restore; }} && "
        "sudo tar -xzf {archive} -C / && sudo rm -rf /var/lib/demisto.before-restore"
    )
    version: str = "curl -sk --max-time 10 -H @- https://127.0.0.1:{port}/about"
    health: str = "curl -sk -o /dev/null -w '%{{http_code}}' --max-time 5 https://127.0.0.1:{port}/health"


@dataclass(frozen=True)
class Health:
    timeout: float = 600.0
    interval: float = 5.0
    max_interval: float = 30.0


@dataclass(frozen=True)
class Inventory:
    path: str
    name: str
    database: str
    main: Group
    hosts: tuple[Group, ...]
    ssh: SshSettings = SshSettings()
    installer: InstallerSettings = InstallerSettings()
    commands: Commands = Commands()
    health: Health = Health()
    durations: Mapping[str, float] = field(default_factory=dict)
    releases: ReleaseLine = field(default_factory=ReleaseLine)
    communication_port: int = 443
    tenant_port_base: int = 18501
    profile: str = "production"
    elasticsearch_url: str | None = None
    elasticsearch_credentials: SecretRef | None = None
    # The Elasticsearch snapshot repository the upgrade snapshots into and rollback restores from.
    elasticsearch_snapshot_repository: str | None = None
    api_key: SecretRef | None = None
    digest: str = ""  # sha256 of the file's text, for a saved plan's fingerprint

    @property
    def groups(self) -> tuple[Group, ...]:
        return (self.main, *self.hosts)

    @cached_property
    def servers(self) -> tuple[Server, ...]:
        return tuple(s for g in self.groups for s in g.servers)

    def server(self, name: str) -> Server:
        return self._by_name[0][name]

    def group(self, name: str) -> Group:
        return self._by_name[1][name]

    @cached_property
    def _by_name(self) -> tuple[dict[str, Server], dict[str, Group]]:
        """Servers and groups by name, the first of a name where two share one (the loader refuses that):
        looked up once per server by planning and rendering, so a dict rather than a scan."""
        servers: dict[str, Server] = {}
        for server in self.servers:
            servers.setdefault(server.name, server)
        groups: dict[str, Group] = {}
        for group in self.groups:
            groups.setdefault(group.name, group)
        return servers, groups

    def group_of(self, server: str) -> Group:
        return self.group(self.server(server).group)

    def versions(self) -> dict[str, Version]:
        """The versions the inventory records (servers without one are left out)."""
        return {s.name: s.version for s in self.servers if s.version is not None}


def url_address(address: str) -> str:
    """An address as a URL writes it: an IPv6 address in brackets."""
    return f"[{address}]" if ":" in address else address
