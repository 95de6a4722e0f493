"""The fleet spec: deployments, their main and host groups, servers, tenants, versions and faults.

A spec is plain frozen dataclasses; ``FleetSpec.from_dict`` reads the YAML/JSON form::

    download_token: t0ken            # optional: wget/curl refuse links without it
    deployments:
      - name: single
        database: bolt                # bolt | elasticsearch
        api_key: k3y                  # optional: the services demand `Authorization: k3y`
        version: 6.11.0               # default for every server of the deployment
        main:
          server: {name: single-main}            # or ha: {servers: [...]} or dr: {primary:, secondary:}
          tenants: [ops]
        hosts:
          - name: h1
            server: {name: single-h1, version: 6.10.0, sudo_password: pw,
                     faults: {tmp_noexec: true}, install_seconds: 0.5}
            tenants: [acme, beta]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

Kind = Literal["single", "ha", "dr"]
Role = Literal["main", "host"]

RELEASES: tuple[str, ...] = (
    "6.0", "6.1", "6.2", "6.5", "6.6", "6.8", "6.9", "6.10", "6.11", "6.12", "6.13", "6.14",
)  # fmt: skip


@dataclass(frozen=True)
class Faults:
    """Faults of one server. All off by default; see docs/fleet.md for what each one does."""

    installer_fails: bool = False
    start_fails: bool = False
    health_503_seconds: float = 0.0
    low_disk: bool = False
    tmp_noexec: bool = False
    ssh_drop_seconds: float = 0.0  # sshd goes away mid-install and returns after this many seconds
    host_key_changed: bool = False
    wrong_sudo_password: bool = False
    blocked_ports: tuple[int, ...] = ()
    tls10: bool = False
    expired_cert: bool = False
    own_cert: bool = False  # a certificate of its own instead of the one its HA group shares
    corrupt_uploads: bool = False  # every installer that arrives over SFTP has one byte changed
    install_seconds: float = 0.0  # when set, installs take this long instead of the server's usual time
    tenants_503: bool = False  # the host's tenants answer 503 (read per request: no service restart)
    # Commands that misbehave: each rule {match: regex searched in the SSH command line, action: fail |
    # drop | slow | hang, seconds: for drop (sshd away that long) and slow (a pause before it runs),
    # times: how many matching commands it hits (default 1)}. See docs/fleet.md.
    commands: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Faults | None) -> Faults:
        if data is None:
            return cls()
        if isinstance(data, Faults):
            return data
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        if "blocked_ports" in values:
            values["blocked_ports"] = tuple(int(p) for p in values["blocked_ports"])
        if "commands" in values:
            values["commands"] = tuple(command_fault(rule) for rule in values["commands"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["blocked_ports"] = list(self.blocked_ports)
        data["commands"] = [dict(rule) for rule in self.commands]
        return data

    def changed(self, **values: Any) -> Faults:
        return Faults.from_dict({**self.to_dict(), **values})


COMMAND_FAULT_ACTIONS = ("fail", "drop", "slow", "hang")


def command_fault(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A checked command-fault rule (see Faults.commands)."""
    import re

    unknown = set(rule) - {"match", "action", "seconds", "times"}
    if unknown or "match" not in rule or rule.get("action") not in COMMAND_FAULT_ACTIONS:
        raise ValueError(
            f"a command fault needs match and action ({', '.join(COMMAND_FAULT_ACTIONS)}): {rule}"
        )
    re.compile(str(rule["match"]))
    return {
        "match": str(rule["match"]),
        "action": str(rule["action"]),
        "seconds": float(rule.get("seconds", 0)),
        "times": int(rule.get("times", 1)),
    }


@dataclass(frozen=True)
class ServerSpec:
    name: str
    version: str = ""  # empty: the deployment's version
    sudo_password: str | None = None
    install_seconds: float = 0.5
    faults: Faults = field(default_factory=Faults)
    cores: int = 16
    memory_gb: float = 32
    disk_free_gb: float = 1000

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> ServerSpec:
        if isinstance(data, str):
            return cls(name=data)
        values = dict(data)
        values["faults"] = Faults.from_dict(values.get("faults"))
        if "version" in values:
            values["version"] = normalise_version(str(values["version"]))
        return cls(**values)


@dataclass(frozen=True)
class GroupSpec:
    """The main account or one host group: one server, an HA group or a DR pair (primary first)."""

    name: str
    kind: Kind
    servers: tuple[ServerSpec, ...]
    tenants: tuple[str, ...] = ()
    load_balancer: str | None = None

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> GroupSpec:
        forms = [k for k in ("server", "ha", "dr") if k in data]
        if len(forms) != 1:
            raise ValueError(f"group {name!r}: exactly one of server, ha, dr (found {forms})")
        kind: Kind = forms[0]  # type: ignore[assignment]  # narrowed by the list above
        body = data[kind]
        if kind == "server":
            servers = (ServerSpec.from_dict(body),)
            kind = "single"
        elif kind == "ha":
            servers = tuple(ServerSpec.from_dict(s) for s in body["servers"])
            if len(servers) < 2:
                raise ValueError(f"group {name!r}: an HA group needs at least two servers")
        else:
            servers = (ServerSpec.from_dict(body["primary"]), ServerSpec.from_dict(body["secondary"]))
        lb = body.get("load_balancer") if isinstance(body, Mapping) and kind == "ha" else None
        return cls(name, kind, servers, tuple(data.get("tenants") or ()), lb)

    @property
    def primary(self) -> ServerSpec:
        return self.servers[0]

    @property
    def secondary(self) -> ServerSpec:
        if self.kind != "dr":
            raise ValueError(f"group {self.name!r} is not a DR pair")
        return self.servers[1]


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    main: GroupSpec
    hosts: tuple[GroupSpec, ...] = ()
    database: Literal["bolt", "elasticsearch"] = "bolt"
    version: str = "6.11.0"
    api_key: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        name = str(data["name"])
        version = normalise_version(str(data.get("version", "6.11.0")))
        main = GroupSpec.from_dict("main", data["main"])
        hosts = tuple(GroupSpec.from_dict(str(h["name"]), h) for h in data.get("hosts") or ())
        database = data.get("database")
        if database is None:
            uses_ha = main.kind == "ha" or any(h.kind == "ha" for h in hosts)
            database = "elasticsearch" if uses_ha else "bolt"
        deployment = cls(name, main, hosts, database, version, data.get("api_key"))
        return deployment.with_default_versions()

    def with_default_versions(self) -> DeploymentSpec:
        def fill(group: GroupSpec) -> GroupSpec:
            servers = tuple(s if s.version else replace(s, version=self.version) for s in group.servers)
            return replace(group, servers=servers)

        return replace(self, main=fill(self.main), hosts=tuple(fill(h) for h in self.hosts))

    @property
    def groups(self) -> tuple[GroupSpec, ...]:
        return (self.main, *self.hosts)

    def servers(self) -> list[tuple[Role, GroupSpec, ServerSpec]]:
        found: list[tuple[Role, GroupSpec, ServerSpec]] = [("main", self.main, s) for s in self.main.servers]
        for group in self.hosts:
            found += [("host", group, s) for s in group.servers]
        return found


@dataclass(frozen=True)
class FleetSpec:
    deployments: tuple[DeploymentSpec, ...]
    download_token: str | None = "fleet-token"
    releases: tuple[str, ...] = RELEASES
    trace_exec: bool = False  # record the argv of every process a command starts (strace; slower)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FleetSpec:
        deployments = tuple(DeploymentSpec.from_dict(d) for d in data["deployments"])
        spec = cls(deployments, data.get("download_token", "fleet-token"))
        if "releases" in data:
            spec = replace(spec, releases=tuple(str(r) for r in data["releases"]))
        if data.get("trace_exec"):
            spec = replace(spec, trace_exec=True)
        spec.check()
        return spec

    @classmethod
    def from_yaml(cls, text: str) -> FleetSpec:
        import yaml

        return cls.from_dict(yaml.safe_load(text))

    def check(self) -> None:
        names = [s.name for d in self.deployments for _, _, s in d.servers()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"server names must be unique across the fleet: {duplicates}")
        deployment_names = [d.name for d in self.deployments]
        if len(set(deployment_names)) != len(deployment_names):
            raise ValueError(f"deployment names must be unique: {deployment_names}")

    def deployment(self, name: str) -> DeploymentSpec:
        for deployment in self.deployments:
            if deployment.name == name:
                return deployment
        raise KeyError(f"no deployment {name!r}; have {[d.name for d in self.deployments]}")

    def server(self, name: str) -> tuple[DeploymentSpec, Role, GroupSpec, ServerSpec]:
        for deployment in self.deployments:
            for role, group, server in deployment.servers():
                if server.name == name:
                    return deployment, role, group, server
        raise KeyError(f"no server {name!r} in the fleet")

    def server_names(self) -> list[str]:
        return [s.name for d in self.deployments for _, _, s in d.servers()]


def normalise_version(version: str) -> str:
    """``6.11`` -> ``6.11.0``; ``6.10.0 (B187344)`` is kept as it is."""
    head, _, rest = version.partition(" ")
    if head.count(".") == 1:
        head += ".0"
    return f"{head} {rest}".strip()


def release_of(version: str) -> str:
    """``6.11.0 (B1)`` -> ``6.11``."""
    return ".".join(version.split(" ")[0].split(".")[:2])


def topology_spec() -> FleetSpec:
    """One fleet holding a deployment per topology the tests need."""
    return FleetSpec.from_dict(
        {
            "deployments": [
                {
                    "name": "single",
                    "main": {"server": {"name": "single-main"}, "tenants": ["ops"]},
                    "hosts": [
                        {"name": "h1", "server": {"name": "single-h1"}, "tenants": ["acme", "beta"]},
                        {"name": "h2", "server": {"name": "single-h2"}, "tenants": ["gamma"]},
                    ],
                },
                {
                    "name": "hamain",
                    "main": {"ha": {"servers": [{"name": "hamain-m1"}, {"name": "hamain-m2"}]}},
                    "hosts": [{"name": "h1", "server": {"name": "hamain-h1"}, "tenants": ["acme"]}],
                },
                {
                    "name": "drmain",
                    "main": {"dr": {"primary": {"name": "drmain-p"}, "secondary": {"name": "drmain-s"}}},
                    "hosts": [{"name": "h1", "server": {"name": "drmain-h1"}, "tenants": ["acme"]}],
                },
                {
                    "name": "hahosts",
                    "main": {"server": {"name": "hahosts-main"}},
                    "hosts": [
                        {
                            "name": "g1",
                            "ha": {"servers": [{"name": "hahosts-g1a"}, {"name": "hahosts-g1b"}]},
                            "tenants": ["acme", "beta"],
                        }
                    ],
                },
                {
                    "name": "drhosts",
                    "main": {"server": {"name": "drhosts-main"}},
                    "hosts": [
                        {
                            "name": "d1",
                            "dr": {"primary": {"name": "drhosts-d1p"}, "secondary": {"name": "drhosts-d1s"}},
                            "tenants": ["acme"],
                        }
                    ],
                },
                {
                    "name": "mixed",
                    "api_key": "fleet-api-key",
                    "main": {"server": {"name": "mixed-main", "sudo_password": "s3cret"}},
                    "hosts": [
                        {"name": "solo", "server": {"name": "mixed-solo"}, "tenants": ["acme"]},
                        {
                            "name": "grp",
                            "ha": {"servers": [{"name": "mixed-ga"}, {"name": "mixed-gb"}]},
                            "tenants": ["beta", "gamma"],
                        },
                    ],
                },
            ]
        }
    )


def demo_spec() -> FleetSpec:
    """What `make fleet-up` starts: one deployment a newcomer can plan an upgrade against."""
    return FleetSpec.from_dict(
        {
            "deployments": [
                {
                    "name": "demo",
                    "version": "6.11.0",
                    "main": {"server": {"name": "demo-main", "install_seconds": 3}, "tenants": ["ops"]},
                    "hosts": [
                        {
                            "name": "h1",
                            "server": {"name": "demo-h1", "install_seconds": 3},
                            "tenants": ["acme", "beta"],
                        },
                        {
                            "name": "h2",
                            "dr": {
                                "primary": {"name": "demo-h2p", "install_seconds": 3},
                                "secondary": {"name": "demo-h2s", "install_seconds": 3},
                            },
                            "tenants": ["gamma"],
                        },
                    ],
                }
            ]
        }
    )


def sized_spec(count: int) -> FleetSpec:
    """A deployment of ``count`` servers (one main, the rest single hosts): for the benchmark."""
    hosts = [
        {"name": f"h{i}", "server": {"name": f"bench-h{i}"}, "tenants": [f"t{i}"]} for i in range(1, count)
    ]
    return FleetSpec.from_dict(
        {"deployments": [{"name": "bench", "main": {"server": {"name": "bench-main"}}, "hosts": hosts}]}
    )
