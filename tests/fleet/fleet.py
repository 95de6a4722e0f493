"""The fleet: starts, resets and stops one real sshd and one simulated XSOAR service per spec server.

Everything lives under one root directory::

    <root>/fleet.json            what was started (addresses, ports) - read by `down`
    <root>/bin/                  stand-ins first on every session's PATH (sudo, service, wget, ...)
    <root>/lib/                  the on-server runtime (a copy of tests/fleet/remote.py)
    <root>/keys/                 client key, a second unauthorised key, authorized_keys
    <root>/known_hosts, ssh_config
    <root>/downloads/            generated installers (demisto-6.12.sh, ...)
    <root>/secrets/              download link, sudo passwords, API keys (0600) for inventories
    <root>/events.jsonl          the fleet-wide event log; commands.jsonl: every SSH command line
    <root>/servers/<name>/       one simulated server (see remote.py)

Processes are ended only by the pids the fleet recorded (and their descendants), never by name.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.fleet import remote
from tests.fleet.spec import DeploymentSpec, Faults, FleetSpec, GroupSpec, Role, ServerSpec

SSHD = remote.SSHD
PYTHON = os.path.realpath(sys.executable)
REPO = Path(__file__).resolve().parents[2]
ELASTICSEARCH_PORT = 9200
SERVICE_FAULTS = ("health_503_seconds", "blocked_ports", "tls10", "expired_cert", "own_cert")
PYTHON_TOOLS = ("service", "systemctl", "wget", "curl", "df", "findmnt", "nproc", "free")


class FleetError(RuntimeError):
    """The fleet could not be started or driven; the message says what to do."""


def require_sshd() -> None:
    if not os.access(SSHD, os.X_OK):
        raise FleetError(
            f"{SSHD} is missing: the fleet tests need a real OpenSSH server. "
            "Run `make sshd` (apt-get install openssh-server) and try again."
        )
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)


@dataclass(frozen=True)
class Ports:
    ssh: int
    communication: int
    tenant_base: int = 18501

    @classmethod
    def default(cls) -> Ports:
        if os.geteuid() == 0:
            return cls(ssh=22, communication=443)
        return cls(ssh=2222, communication=8443)


@dataclass(frozen=True)
class Placement:
    """Where one spec server lives: its address, ports and place in its deployment."""

    name: str
    deployment: str
    role: Role
    group: str
    kind: str
    index_in_group: int
    address: str
    ssh_port: int
    comm_port: int
    tenants: tuple[tuple[str, int], ...]


class Fleet:
    """A running (or startable) fleet. Use as a context manager or call start()/stop()."""

    def __init__(self, spec: FleetSpec, root: Path, *, subnet: int | None = None, ports: Ports | None = None):
        self.spec = spec
        self.root = Path(root).resolve()
        self.ports = ports or Ports.default()
        self.subnet = subnet
        self.user = os.environ.get("USER") or _login_name()
        self.placements: dict[str, Placement] = {}
        self._faults: dict[str, Faults] = {}
        self._versions: dict[str, str] = {}
        self.started = False

    # ---------------------------------------------------------------------------------------------
    # paths

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def identity_file(self) -> Path:
        return self.root / "keys" / "client_ed25519"

    @property
    def wrong_identity_file(self) -> Path:
        return self.root / "keys" / "wrong_ed25519"

    @property
    def event_log(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def command_log(self) -> Path:
        return self.root / "commands.jsonl"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def lib(self) -> Path:
        return self.root / "lib" / "xsoar_fleet_remote.py"

    def server_dir(self, name: str) -> Path:
        return self.root / "servers" / name

    # ---------------------------------------------------------------------------------------------
    # lifecycle

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Fleet:
        """Write everything, start every sshd and service concurrently, wait until all listen."""
        require_sshd()
        if self.started:
            return self
        if (self.root / "fleet.json").exists():
            stop_root(self.root)  # a previous run left processes: end them by their recorded pids
        for sub in ("servers", "bin", "lib", "keys", "downloads", "secrets"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        for sub in ("bin", "lib", "keys", "downloads", "secrets"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "secrets", 0o700)
        self._place()
        self._write_runtime()
        self._write_keys()
        self._write_certificates()
        for name in self.placements:
            self._write_server(name)
        self._write_client_files()
        (self.root / "fleet.json").write_text(json.dumps(self._description(), indent=2))
        self._clear_logs()
        self.started = True
        try:
            self._start_sshds(list(self.placements))
            self._run_parallel(self._start_service_quietly, list(self.placements))
            if any(d.database == "elasticsearch" for d in self.spec.deployments):
                self._start_elasticsearch()
            self._write_baseline()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End every process the fleet started (by recorded pid and their descendants)."""
        stop_root(self.root)
        self.started = False

    def reset(
        self,
        versions: Mapping[str, str] | None = None,
        faults: Mapping[str, Faults | Mapping[str, Any]] | None = None,
    ) -> None:
        """Back to the spec (or the given versions/faults): services running, logs empty, homes clean.

        Only what differs is restarted, so a reset between tests is cheap.
        """
        versions = dict(versions or {})
        wanted_faults = {n: Faults.from_dict(f) for n, f in (faults or {}).items()}
        unknown = (set(versions) | set(wanted_faults)) - set(self.placements)
        if unknown:
            raise KeyError(f"no such server(s): {sorted(unknown)}")
        self._run_parallel(self._settle, list(self.placements))
        self.clear_elasticsearch_faults()
        to_start = []
        for name in self.placements:
            _, _, _, server = self.spec.server(name)
            version = remote_version(versions.get(name, server.version))
            fault = wanted_faults.get(name, server.faults)
            current = self.server(name)
            restart = version != current.version or any(
                getattr(fault, f) != getattr(self._faults[name], f) for f in SERVICE_FAULTS
            )
            if restart or fault.start_fails:
                current.stop_service()
            self._apply_faults(name, fault)
            self._versions[name] = version
            (self.server_dir(name) / "state" / "version").write_text(version)
            self._write_config(name)
            self._clean_home(name)
            if not current.running and not fault.start_fails:
                to_start.append(name)
        self._run_parallel(self._start_service_quietly, to_start)
        self._clear_logs()
        self._write_baseline()

    # ---------------------------------------------------------------------------------------------
    # access

    def server(self, name: str) -> Server:
        if name not in self.placements:
            raise KeyError(f"no server {name!r}; have {sorted(self.placements)}")
        return Server(self, self.placements[name])

    def servers(self, deployment: str | None = None) -> list[Server]:
        return [
            Server(self, p)
            for p in self.placements.values()
            if deployment is None or p.deployment == deployment
        ]

    def events(self) -> list[dict[str, Any]]:
        """The event log, in order (baseline events first, one per server, after each reset)."""
        return list(remote.iter_lines(self.event_log))

    def commands(self, server: str | None = None) -> list[dict[str, Any]]:
        """Every command line run over SSH since the last reset: {ts, server, command, pid}."""
        found = list(remote.iter_lines(self.command_log))
        for record in found:  # the session script logs the command base64-encoded (no JSON quoting in sh)
            if "command_b64" in record:
                record["command"] = base64.b64decode(record.pop("command_b64")).decode(errors="replace")
        return [c for c in found if server is None or c["server"] == server]

    def process_argvs(self, server: str | None = None) -> list[tuple[str, str, list[str]]]:
        """With `trace_exec`: (server, session, argv) of every process any SSH command started, as strace
        saw its execve (failed tries on other PATH entries too); `session` names the SSH session (the pid
        of its shell). Each tracer writes as the process starts, not when the SSH command returns: a
        process started in the background may show up a moment later."""
        if not self.spec.trace_exec:
            raise FleetError("this fleet does not trace processes: set trace_exec in its spec")
        found = []
        for directory in sorted((self.root / "servers").glob("*")):
            if server is not None and directory.name != server:
                continue
            for trace in sorted((directory / "state" / "exec").glob("*.trace")):
                for line in trace.read_text(errors="replace").splitlines():
                    argv = _execve_argv(line)
                    if argv is not None:
                        found.append((directory.name, trace.stem, argv))
        return found

    def inventory(
        self, deployment: str, path: Path | None = None, *, versions: bool = False, **overrides: Any
    ) -> Path:
        """Write an xsoar-mt inventory for one deployment of this fleet (see inventory.py): without
        `version:` keys unless `versions` is true."""
        from tests.fleet.inventory import write_inventory

        return write_inventory(self, self.spec.deployment(deployment), path, versions=versions, **overrides)

    def ssh(
        self,
        name: str,
        command: str,
        *,
        input: str | None = None,
        identity: Path | None = None,
        timeout: float = 30,
        extra: Iterable[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on a server with the real OpenSSH client and the fleet's ssh_config."""
        argv = [*self.ssh_argv(name, identity=identity), *extra, name, command]
        return subprocess.run(
            argv,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ssh_argv(self, name: str, *, identity: Path | None = None) -> list[str]:
        """``ssh`` options for a server: the fleet's ssh_config, or only ``identity`` as the key."""
        if identity is None:
            return ["ssh", "-F", str(self.ssh_config)]
        place = self.placements[name]
        return [
            "ssh", "-F", "/dev/null", "-o", f"HostName={place.address}",
            "-p", str(place.ssh_port), "-l", self.user, "-i", str(identity),
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
        ]  # fmt: skip

    def download_link(self, download_name: str = "6_12_latest", token: str | None = None) -> str:
        token = self.spec.download_token if token is None else token
        query = f"token={token}&" if token else ""
        return (
            f"https://{remote.VENDOR_HOST}/download-params/?{query}"
            f"email=fleet%40example.invalid&downloadName={download_name}&eula=accept"
        )

    def add_installer(self, release: str, *, installs: str | None = None, build: str = "") -> Path:
        """Put an installer in the download folder; ``installs`` makes a wrong one (other version)."""
        name = f"demisto-{release}.sh" if not build else f"demisto-{release}-{build}.sh"
        version = installs or f"{release}.0"
        path = self.downloads / name
        path.write_text(
            "#!/bin/sh\n"
            "# Cortex XSOAR installer stand-in (xsoar-mt test fleet)\n"
            f"{remote.INSTALLER_VERSION_LINE}{version}\n"
            f"{remote.INSTALLER_BUILD_LINE}{build}\n"
            f'exec {PYTHON} -I -S {self.lib} install "$0" "$@"\n'
        )
        path.chmod(0o644)
        return path

    def installer_sha256(self, release: str) -> str:
        return hashlib.sha256((self.downloads / f"demisto-{release}.sh").read_bytes()).hexdigest()

    def pids(self) -> set[int]:
        """Every live process of this fleet: recorded pids and their descendants."""
        return fleet_pids(self.root)

    # ---------------------------------------------------------------------------------------------
    # building

    def _place(self) -> None:
        subnet = self.subnet if self.subnet is not None else self._free_subnet()
        self.subnet = subnet
        index = 0
        self.placements = {}
        for deployment in self.spec.deployments:
            for group in deployment.groups:
                role: Role = "main" if group is deployment.main else "host"
                tenants = tuple((t, self.ports.tenant_base + i) for i, t in enumerate(group.tenants))
                for position, server in enumerate(group.servers):
                    index += 1
                    if index > 250:
                        raise FleetError("a fleet holds at most 250 servers")
                    self.placements[server.name] = Placement(
                        name=server.name,
                        deployment=deployment.name,
                        role=role,
                        group=group.name,
                        kind=group.kind,
                        index_in_group=position,
                        address=f"127.77.{subnet}.{index}",
                        ssh_port=self.ports.ssh,
                        comm_port=self.ports.communication,
                        tenants=tenants,
                    )
                    self._faults[server.name] = server.faults
                    self._versions[server.name] = server.version

    def _free_subnet(self) -> int:
        """127.77.<n>.0/24 derived from the root path; the next one if something listens there."""
        start = int(hashlib.sha256(str(self.root).encode()).hexdigest(), 16) % 200 + 10
        # Under pytest-xdist each worker keeps to its own share of the subnets, so two fleets started
        # at the same moment by two workers can never pick the same one.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        for offset in range(240):
            subnet = (start + offset - 10) % 240 + 10
            if workers > 1 and subnet % workers != int(worker) % workers:
                continue
            if _port_free(f"127.77.{subnet}.1", self.ports.ssh):
                return subnet
        raise FleetError("no free 127.77.x.0/24 subnet for the fleet")

    def _write_runtime(self) -> None:
        shutil.copyfile(Path(remote.__file__), self.lib)
        bin_dir = self.root / "bin"
        for tool in PYTHON_TOOLS:
            shim = bin_dir / tool
            shim.write_text(
                f"#!{PYTHON} -IS\n"
                f"# {tool} stand-in (xsoar-mt test fleet)\n"
                f"import sys\nsys.path.insert(0, {str(self.lib.parent)!r})\n"
                "import xsoar_fleet_remote\n"
                f"sys.exit(xsoar_fleet_remote.main({tool!r}, sys.argv[1:]))\n"
            )
            shim.chmod(0o755)
        sudo = bin_dir / "sudo"
        sudo.write_text(SUDO_SCRIPT)
        sudo.chmod(0o755)
        (self.root / "session.sh").write_text(
            SESSION_SCRIPT.replace("@MARKER@", remote.MARKER).replace("@PYTHON@", PYTHON)
        )
        for release in self.spec.releases:
            self.add_installer(release)

    def _write_keys(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        keys = self.root / "keys"
        for name in ("client_ed25519", "wrong_ed25519"):
            private, public = _ed25519_pair(ed25519.Ed25519PrivateKey.generate(), f"{name}@fleet")
            (keys / name).write_bytes(private)
            (keys / name).chmod(0o600)
            (keys / f"{name}.pub").write_text(public)
        (keys / "authorized_keys").write_text((keys / "client_ed25519.pub").read_text())
        for name in self.placements:
            directory = self.server_dir(name)
            (directory / "state" / "sessions").mkdir(parents=True)
            (directory / "home").mkdir()
            (directory / "tls").mkdir()
            private, public = _ed25519_pair(ed25519.Ed25519PrivateKey.generate(), f"root@{name}")
            (directory / "host_key.original").write_bytes(private)
            (directory / "host_key.original").chmod(0o600)
            (directory / "host_key.original.pub").write_text(public)
            shutil.copyfile(directory / "host_key.original", directory / "ssh_host_ed25519_key")
            (directory / "ssh_host_ed25519_key").chmod(0o600)

    def _write_certificates(self) -> None:
        """One certificate per group (HA peers share it); per-server ones for cert faults."""
        for deployment in self.spec.deployments:
            for group in deployment.groups:
                names = [s.name for s in group.servers]
                cert, key = make_certificate(
                    [self.placements[n].address for n in names], group_cn(deployment, group)
                )
                for name in names:
                    tls = self.server_dir(name) / "tls"
                    (tls / "group-cert.pem").write_bytes(cert)
                    (tls / "group-key.pem").write_bytes(key)
                    self._install_certificate(name)

    def _install_certificate(self, name: str) -> None:
        tls = self.server_dir(name) / "tls"
        fault = self._faults[name]
        if fault.own_cert or fault.expired_cert:
            cert, key = make_certificate([self.placements[name].address], name, expired=fault.expired_cert)
            (tls / "cert.pem").write_bytes(cert)
            (tls / "key.pem").write_bytes(key)
        else:
            shutil.copyfile(tls / "group-cert.pem", tls / "cert.pem")
            shutil.copyfile(tls / "group-key.pem", tls / "key.pem")
        (tls / "key.pem").chmod(0o600)

    def _write_server(self, name: str) -> None:
        place = self.placements[name]
        directory = self.server_dir(name)
        permit = " ".join(
            f"{p.address}:{port}"
            for p in self.placements.values()
            for port in (p.ssh_port, p.comm_port, *(t[1] for t in p.tenants))
        )
        (directory / "sshd_config").write_text(
            SSHD_CONFIG.format(
                address=place.address,
                port=place.ssh_port,
                dir=directory,
                root=self.root,
                user=self.user,
                python=PYTHON,
                lib=self.lib,
                permit=permit,
                root_login="prohibit-password" if self.user == "root" else "no",
            )
        )
        (directory / "state" / "version").write_text(self._versions[name])
        if self.spec.trace_exec:
            if not shutil.which("strace"):
                raise FleetError("trace_exec needs strace: run `make sshd` (apt-get install strace)")
            (directory / "state" / "trace_exec").touch()
            (directory / "state" / "exec").mkdir(exist_ok=True)
        self._apply_faults(name, self._faults[name], initial=True)
        self._write_config(name)
        self._clean_home(name)

    def _write_config(self, name: str) -> None:
        place = self.placements[name]
        deployment, _, _, server = self.spec.server(name)
        accounts = []
        if place.role == "main":
            for group in deployment.groups:
                addresses = [self.placements[s.name].address for s in group.servers]
                host = "main" if group is deployment.main else group.name
                accounts += [
                    {"name": t, "host": host, "addresses": addresses, "port": port}
                    for t, port in self.placements[group.servers[0].name].tenants
                ]
        config = {
            "name": name,
            "deployment": place.deployment,
            "role": place.role,
            "group": place.group,
            "kind": place.kind,
            "address": place.address,
            "ssh_port": place.ssh_port,
            "comm_port": place.comm_port,
            "tenants": [{"name": t, "port": p} for t, p in place.tenants],
            "accounts": accounts,
            "api_key": deployment.api_key,
            "version": self._versions[name],
            "install_seconds": server.install_seconds,
            "cores": server.cores,
            "memory_gb": server.memory_gb,
            "disk_free_gb": server.disk_free_gb,
            "faults": self._faults[name].to_dict(),
            "fleet_root": str(self.root),
            "downloads": str(self.downloads),
            "download_token": self.spec.download_token,
        }
        remote.write_atomic(self.server_dir(name) / "config.json", json.dumps(config, indent=1))

    def _clean_home(self, name: str) -> None:
        """An empty home with the vendor's layout under it (etc/demisto.conf, var/lib/demisto)."""
        home = self.server_dir(name) / "home"
        for entry in home.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        (home / "etc").mkdir()
        (home / "etc" / "demisto.conf").write_text(json.dumps({"server": name}) + "\n")
        tenants = home / "var" / "lib" / "demisto" / "tenants"
        tenants.mkdir(parents=True)
        for tenant, _ in self.placements[name].tenants:
            (tenants / f"acc_{tenant}").mkdir()

    def _write_client_files(self) -> None:
        hosts, config = [], []
        for place in self.placements.values():
            public = (self.server_dir(place.name) / "host_key.original.pub").read_text().split()
            pattern = place.address if place.ssh_port == 22 else f"[{place.address}]:{place.ssh_port}"
            hosts.append(f"{pattern},{place.name} {public[0]} {public[1]}")
            config.append(
                f"Host {place.name}\n"
                f"    HostName {place.address}\n"
                f"    Port {place.ssh_port}\n"
                f"    User {self.user}\n"
                f"    IdentityFile {self.identity_file}\n"
                "    IdentitiesOnly yes\n"
                f"    UserKnownHostsFile {self.known_hosts}\n"
                "    GlobalKnownHostsFile /dev/null\n"
                "    StrictHostKeyChecking yes\n"
                "    CheckHostIP no\n"
                "    BatchMode yes\n"
                "    ConnectTimeout 5\n"
                "    LogLevel ERROR\n"
            )
        self.known_hosts.write_text("\n".join(hosts) + "\n")
        self.ssh_config.write_text("\n".join(config))

    def _description(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "subnet": self.subnet,
            "user": self.user,
            "deployments": [d.name for d in self.spec.deployments],
            "servers": {
                p.name: {
                    "deployment": p.deployment,
                    "role": p.role,
                    "group": p.group,
                    "address": p.address,
                    "ssh_port": p.ssh_port,
                    "comm_port": p.comm_port,
                    "tenants": dict(p.tenants),
                }
                for p in self.placements.values()
            },
        }

    # ---------------------------------------------------------------------------------------------
    # processes

    def _env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                remote.MARKER: str(self.root),
                "XSOAR_FLEET_DIR": str(self.server_dir(name)),
                "XSOAR_FLEET_SERVER": name,
            }
        )
        return env

    def _start_sshds(self, names: list[str]) -> None:
        launched = []
        for name in names:
            directory = self.server_dir(name)
            with contextlib.suppress(FileNotFoundError):
                (directory / "sshd.pid").unlink()
            launched.append(
                subprocess.Popen(
                    [SSHD, "-f", str(directory / "sshd_config"), "-E", str(directory / "sshd.log")],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=self._env(name),
                )
            )
        for name, process in zip(names, launched, strict=True):
            _, err = process.communicate()
            if process.returncode != 0:
                raise FleetError(f"sshd for {name} failed: {err.decode(errors='replace').strip()}")
        for name in names:
            remote.wait_sshd(self.server_dir(name))

    @property
    def elasticsearch_url(self) -> str:
        """The fleet's Elasticsearch stand-in (tests/elasticsearch_stub.py): a healthy cluster, no credentials."""
        return f"http://127.77.{self.subnet}.254:{ELASTICSEARCH_PORT}"

    @property
    def elasticsearch_faults(self) -> Path:
        """The stand-in's fault rules (tests/elasticsearch_stub.py), read at every request; none after a reset."""
        return self.root / "elasticsearch_faults.json"

    def set_elasticsearch_faults(self, rules: list[dict[str, Any]]) -> None:
        """Arm the stand-in: each rule `{"match", "action": fail | drop | slow, "times", "seconds"}`."""
        remote.write_atomic(self.elasticsearch_faults, json.dumps([{**r, "left": r["times"]} for r in rules]))

    def clear_elasticsearch_faults(self) -> None:
        self.elasticsearch_faults.unlink(missing_ok=True)

    def _start_elasticsearch(self) -> None:
        """One cluster for every Elasticsearch deployment, a process of the fleet's (pid recorded)."""
        address = f"127.77.{self.subnet}.254"
        log = open(self.root / "elasticsearch.log", "wb")  # noqa: SIM115  (the child keeps it)
        with log:
            process = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "tests.elasticsearch_stub",
                    address,
                    str(ELASTICSEARCH_PORT),
                    str(self.elasticsearch_faults),
                    str(self.event_log),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=REPO,
                env={**os.environ, remote.MARKER: str(self.root), "PYTHONPATH": str(REPO)},
                start_new_session=True,
            )
        (self.root / "elasticsearch.pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((address, ELASTICSEARCH_PORT), 0.2):
                return
            if process.poll() is not None:
                break
            time.sleep(0.02)
        log_text = (self.root / "elasticsearch.log").read_text(errors="replace")
        raise FleetError(f"the Elasticsearch stand-in did not listen on {address}: {log_text.strip()[-300:]}")

    def _restart_sshd(self, name: str) -> None:
        directory = self.server_dir(name)
        pid = remote.read_pid(directory / "sshd.pid")
        if pid is not None and remote.pid_alive(pid) and _started_by(pid, directory / "sshd.pid"):
            remote.terminate(pid)
        self._start_sshds([name])

    def _start_service_quietly(self, name: str) -> None:
        """Start a server's service from the fleet itself: no event, the fleet's marker set."""
        config = remote.load_config(self.server_dir(name))
        code = remote.service_start(config, quiet=True, record=False, env=self._env(name))
        if code != 0 and not self._faults[name].start_fails:
            log = (self.server_dir(name) / "service.log").read_text(errors="replace")
            raise FleetError(f"service of {name} did not start: {log.strip()[-500:]}")

    def _settle(self, name: str) -> None:
        """End an install or an sshd restart still in flight; make sure sshd runs."""
        directory = self.server_dir(name)
        for record in ("restarter.pid", "install.pid"):
            pid = remote.read_pid(directory / "state" / record)
            if pid is not None and remote.pid_alive(pid) and _started_by(pid, directory / "state" / record):
                remote.terminate(pid, timeout=2)
            with contextlib.suppress(FileNotFoundError):
                (directory / "state" / record).unlink()
        for marker in ("ssh_drop_done",):
            with contextlib.suppress(FileNotFoundError):
                (directory / "state" / marker).unlink()
        for session in (directory / "state" / "sessions").iterdir():
            # A command the last test left running (its client dropped or interrupted, the command went
            # on) would otherwise write into the next test's logs: a download seen after the reset.
            pid = int(session.name)
            if remote.pid_alive(pid) and _started_by(pid, session):
                for process in [*reversed(remote.descendants(pid)), pid]:
                    remote.terminate(process, timeout=2)
            session.unlink()
        pid = remote.read_pid(directory / "sshd.pid")
        if pid is None or not remote.pid_alive(pid):
            self._start_sshds([name])

    def _apply_faults(self, name: str, new: Faults, *, initial: bool = False) -> None:
        old = self._faults[name]
        self._faults[name] = new
        directory = self.server_dir(name)
        _, _, _, server = self.spec.server(name)
        password_file = directory / "state" / "sudo_password"
        if new.wrong_sudo_password:
            password_file.write_text((server.sudo_password or "") + "-not-the-operators")
        elif server.sudo_password:
            password_file.write_text(server.sudo_password)
        else:
            with contextlib.suppress(FileNotFoundError):
                password_file.unlink()
        (directory / "state" / "tenants_503").unlink(missing_ok=True)
        if new.tenants_503:
            (directory / "state" / "tenants_503").touch()
        rules = directory / "state" / "command_faults.json"
        if new.commands != old.commands or initial:
            if new.commands:  # each rule counts down the commands it may still hit
                remote.write_atomic(rules, json.dumps([{**r, "left": r["times"]} for r in new.commands]))
            else:
                rules.unlink(missing_ok=True)
        marker = directory / "state" / "corrupt_uploads"
        if new.corrupt_uploads and not marker.exists():
            marker.touch()
        elif not new.corrupt_uploads:
            marker.unlink(missing_ok=True)
            (directory / "state" / "corrupted").unlink(missing_ok=True)
        if new.ssh_drop_seconds != old.ssh_drop_seconds or initial:
            with contextlib.suppress(FileNotFoundError):
                (directory / "state" / "ssh_drop_done").unlink()
        if not initial and (new.own_cert, new.expired_cert) != (old.own_cert, old.expired_cert):
            self._install_certificate(name)
        key = directory / "ssh_host_ed25519_key"
        if new.host_key_changed and (initial or not old.host_key_changed):
            from cryptography.hazmat.primitives.asymmetric import ed25519

            private, _ = _ed25519_pair(ed25519.Ed25519PrivateKey.generate(), f"root@{name}-new")
            key.write_bytes(private)
            key.chmod(0o600)
            if not initial:
                self._restart_sshd(name)
        elif not new.host_key_changed and old.host_key_changed and not initial:
            shutil.copyfile(directory / "host_key.original", key)
            key.chmod(0o600)
            self._restart_sshd(name)

    def _set_faults(self, name: str, new: Faults) -> None:
        old = self._faults[name]
        server = self.server(name)
        restart = server.running and any(getattr(new, f) != getattr(old, f) for f in SERVICE_FAULTS)
        if restart:
            server.stop_service()
        self._apply_faults(name, new)
        self._write_config(name)
        if restart:
            server.start_service()

    def _clear_logs(self) -> None:
        for path in (self.event_log, self.command_log):
            path.write_text("")
        (self.root / "events.seq").write_text("0")

    def _write_baseline(self) -> None:
        for place in self.placements.values():
            server = Server(self, place)
            remote.append_json_line(
                self.event_log,
                {
                    "ts": time.time(),
                    "server": place.name,
                    "deployment": place.deployment,
                    "event": "baseline",
                    "version_before": server.version,
                    "version_after": server.version,
                    "running": server.running,
                },
                seq_file=self.root / "events.seq",
            )

    @staticmethod
    def _run_parallel(function: Any, names: list[str]) -> None:
        if not names:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
            list(pool.map(function, names))


class Server:
    """One simulated server of a running fleet."""

    def __init__(self, fleet: Fleet, placement: Placement):
        self.fleet = fleet
        self.placement = placement

    def __repr__(self) -> str:
        return f"Server({self.name!r}, {self.address}, version={self.version!r})"

    name = property(lambda self: self.placement.name)
    address = property(lambda self: self.placement.address)
    ssh_port = property(lambda self: self.placement.ssh_port)
    comm_port = property(lambda self: self.placement.comm_port)
    role = property(lambda self: self.placement.role)
    deployment = property(lambda self: self.placement.deployment)

    @property
    def tenant_ports(self) -> dict[str, int]:
        return dict(self.placement.tenants)

    @property
    def dir(self) -> Path:
        return self.fleet.server_dir(self.name)

    @property
    def home(self) -> Path:
        return self.dir / "home"

    @property
    def _cfg(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "version": self.fleet._versions[self.name]}

    @property
    def version(self) -> str:
        return remote.read_version(self._cfg)

    @property
    def running(self) -> bool:
        return remote.service_pid(self._cfg) is not None

    @property
    def service_pid(self) -> int | None:
        return remote.service_pid(self._cfg)

    @property
    def sshd_pid(self) -> int | None:
        return remote.sshd_pid(self._cfg)

    @property
    def faults(self) -> Faults:
        return self.fleet._faults[self.name]

    def set_fault(self, **values: Any) -> None:
        """Change faults now, e.g. ``set_fault(installer_fails=True)``; the rest stay as they are."""
        self.fleet._set_faults(self.name, self.faults.changed(**values))

    def clear_faults(self) -> None:
        self.fleet._set_faults(self.name, Faults())

    def set_version(self, version: str) -> None:
        """Change the installed version (restarts the service if it runs)."""
        was_running = self.running
        self.stop_service()
        (self.dir / "state" / "version").write_text(remote_version(version))
        if was_running:
            self.start_service()

    def start_service(self) -> None:
        """Start the service without recording an event (test set-up, not an action under test)."""
        self.fleet._start_service_quietly(self.name)

    def stop_service(self) -> None:
        pid = self.service_pid
        if pid is not None:
            remote.terminate(pid)
            with contextlib.suppress(FileNotFoundError):
                (self.dir / "state" / "service.json").unlink()

    def url(self, path: str = "/about", port: int | None = None) -> str:
        return f"https://{self.address}:{port or self.comm_port}{path}"

    def wait_ssh(self, timeout: float = 20) -> None:
        """Wait until the server's sshd listens again (after an ssh_drop fault)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sshd_pid is not None and not _port_free(self.address, self.ssh_port):
                return
            time.sleep(0.02)
        raise TimeoutError(f"sshd of {self.name} did not come back within {timeout}s")


# -------------------------------------------------------------------------------------------------
# stopping by recorded pid


def recorded_pids(root: Path) -> list[tuple[int, Path]]:
    """(pid, the file that records it): restarters and installers first, sshd and services last."""
    found: list[tuple[int, Path]] = []

    def add(record: Path, pid: int | None) -> None:
        if pid is not None:
            found.append((pid, record))

    add(root / "elasticsearch.pid", remote.read_pid(root / "elasticsearch.pid"))
    for directory in sorted((root / "servers").glob("*")):
        state = directory / "state"
        for record in (state / "restarter.pid", state / "install.pid"):
            add(record, remote.read_pid(record))
        if (state / "sessions").is_dir():
            for session in (state / "sessions").iterdir():
                add(session, int(session.name) if session.name.isdigit() else None)
        add(directory / "sshd.pid", remote.read_pid(directory / "sshd.pid"))
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            add(state / "service.json", int(json.loads((state / "service.json").read_text())["pid"]))
    return found


def _started_by(pid: int, record: Path) -> bool:
    """Guard against pid reuse: the process began no later than its record was written. (A process can
    only write its pid, or have it written, once it exists; one that reused the pid began afterwards.)"""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        written = record.stat().st_mtime
    except (OSError, ValueError, IndexError):
        return False
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return boot + ticks / os.sysconf("SC_CLK_TCK") <= written + 0.05  # one clock tick of rounding, and some


def fleet_pids(root: Path) -> set[int]:
    """The live processes the fleet recorded (each checked to be the recorded one) and their descendants."""
    root = Path(root).resolve()
    found: set[int] = set()
    for pid, record in recorded_pids(root):
        if remote.pid_alive(pid) and (_started_by(pid, record) or _owned(pid, root)):
            found.add(pid)
            found.update(p for p in remote.descendants(pid) if remote.pid_alive(p))
    return found


def stop_root(root: Path, timeout: float = 5.0) -> None:
    """End every live process of the fleet under ``root`` (recorded pids, their descendants, and any
    process carrying the fleet's marker) and return only once all have exited: SIGTERM, up to `timeout`
    seconds for them to go, SIGKILL for the rest and up to `timeout` more. Raises FleetError naming any
    that still did not exit."""
    root = Path(root).resolve()
    left: set[int] = set()
    for _ in range(3):  # a restarter may bring an sshd back while we stop: go round again
        # Recorded pids and their descendants, plus whatever a command run over SSH double-forked out
        # of its session: those carry this fleet's own marker (XSOAR_FLEET_ROOT=<root>).
        pids = fleet_pids(root) | set(processes_marked(root))
        if not pids:
            break
        _signal(pids, signal.SIGTERM)
        left = _wait_gone(pids, timeout)
        if left:
            _signal(left, signal.SIGKILL)
            left = _wait_gone(left, timeout)
    if left:
        raise FleetError(
            f"processes of the fleet under {root} did not exit even after SIGKILL: {sorted(left)}"
        )
    with contextlib.suppress(FileNotFoundError):
        (root / "elasticsearch.pid").unlink()
    for directory in (root / "servers").glob("*"):
        for name in ("sshd.pid", "state/service.json", "state/install.pid", "state/restarter.pid"):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        sessions = directory / "state" / "sessions"
        if sessions.is_dir():
            for session in sessions.iterdir():
                session.unlink()


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait up to `timeout` seconds until none of `pids` lives (a zombie has exited); those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {p for p in pids if remote.pid_alive(p)}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.01)


def _owned(pid: int, root: Path) -> bool:
    """The process carries this fleet's marker in its environment (XSOAR_FLEET_ROOT=<root>): the fleet,
    or a command run in one of its sessions, started it. A path in a command line proves nothing: any
    process of the user's may name the fleet's directory."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{remote.MARKER}={root}".encode() in environ.split(b"\0")


def processes_marked(root: Path) -> list[int]:
    """Live processes that carry this fleet's marker (used to stop them, and to prove a clean stop)."""
    root = Path(root).resolve()
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit()
        and int(entry) != os.getpid()
        and remote.pid_alive(int(entry))
        and _owned(int(entry), root)
    ]


# -------------------------------------------------------------------------------------------------
# keys, certificates, small pieces


def _ed25519_pair(key: Any, comment: str) -> tuple[bytes, str]:
    from cryptography.hazmat.primitives import serialization

    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}\n"


_EXECVE = re.compile(r'^\d+\s+execve\("(?:[^"\\]|\\.)*", (\[.*?\]), 0x')


def _execve_argv(line: str) -> list[str] | None:
    """The argv of one strace execve line (strace prints it as a C string array, JSON-compatible
    except for octal escapes of bytes that are not printable)."""
    found = _EXECVE.match(line)
    if found is None:
        return None
    text = re.sub(  # octal escapes become JSON's \\u escapes; an escaped backslash stays as it is
        r"\\(\\|[0-7]{1,3})",
        lambda m: "\\\\" if m.group(1) == "\\" else f"\\u{int(m.group(1), 8):04x}",
        found.group(1),
    )
    try:
        return [str(a) for a in json.loads(text)]
    except ValueError:
        return [found.group(1)]


def make_certificate(addresses: list[str], common_name: str, *, expired: bool = False) -> tuple[bytes, bytes]:
    """A self-signed EC certificate for the given addresses (plus 127.0.0.1 and localhost)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        not_before, not_after = now - datetime.timedelta(days=400), now - datetime.timedelta(days=1)
    else:
        not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=365)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for address in [*addresses, "127.0.0.1"]:
        sans.append(x509.IPAddress(ipaddress.ip_address(address)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def group_cn(deployment: DeploymentSpec, group: GroupSpec) -> str:
    return f"{deployment.name}-{group.name}.xsoar.fleet"


def remote_version(version: str) -> str:
    from tests.fleet.spec import normalise_version

    return normalise_version(version)


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _login_name() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def server_spec(fleet: Fleet, name: str) -> ServerSpec:
    return fleet.spec.server(name)[3]


def with_versions(spec: FleetSpec, versions: Mapping[str, str]) -> FleetSpec:
    """A copy of ``spec`` with some servers' versions changed."""

    def fix(group: GroupSpec) -> GroupSpec:
        servers = tuple(
            replace(s, version=remote_version(versions[s.name])) if s.name in versions else s
            for s in group.servers
        )
        return replace(group, servers=servers)

    deployments = tuple(
        replace(d, main=fix(d.main), hosts=tuple(fix(h) for h in d.hosts)) for d in spec.deployments
    )
    return replace(spec, deployments=deployments)


SSHD_CONFIG = """\
# sshd of simulated XSOAR server {dir} (xsoar-mt test fleet)
ListenAddress {address}:{port}
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {root}/keys/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin {root_login}
StrictModes no
AllowUsers {user}
# The login shell (bash) would source the operator's ~/.bashrc first (pyenv set-up costs ~0.1 s a
# command on some machines); a HOME without one skips that. session.sh sets the server's own HOME.
SetEnv HOME={dir}/state
ForceCommand /bin/sh {root}/session.sh {dir}
Subsystem sftp /usr/lib/openssh/sftp-server
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 200
MaxSessions 64
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding yes
PermitOpen {permit}
LogLevel VERBOSE
"""

# Every SSH session of a simulated server runs through this (sshd's ForceCommand). It is sh, not
# Python: it runs once per command, and a Python start-up there cost more than the command itself.
SESSION_SCRIPT = r"""#!/bin/sh
# One SSH session inside a simulated server: stand-ins first on PATH, cwd and HOME the server's home,
# every command line recorded in commands.jsonl.
dir="$1"
root="${dir%/*}"; root="${root%/*}"
name="${dir##*/}"
export @MARKER@="$root" XSOAR_FLEET_DIR="$dir" XSOAR_FLEET_SERVER="$name" HOME="$dir/home" HOSTNAME="$name"
export PATH="$root/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
: > "$dir/state/sessions/$$" 2>/dev/null
if [ -z "${SSH_ORIGINAL_COMMAND+set}" ]; then logged='<shell>'
elif [ "$SSH_ORIGINAL_COMMAND" = /usr/lib/openssh/sftp-server ]; then logged='<sftp>'
else logged="$SSH_ORIGINAL_COMMAND"; fi
encoded=$(printf '%s' "$logged" | base64 -w0)
{
  flock 9
  printf '{"ts": %s, "server": "%s", "command_b64": "%s", "pid": %s}\n' "$(date +%s.%N)" "$name" "$encoded" "$$" \
    >> "$root/commands.jsonl"
} 9>>"$root/commands.jsonl.lock"
cd "$HOME" || exit 1
if [ -s "$dir/state/command_faults.json" ] && [ -n "${SSH_ORIGINAL_COMMAND+set}" ]; then
  # fault commands: a rule matching this command line fails it, drops SSH, or delays it
  verdict=$("@PYTHON@" -IS "$root/lib/xsoar_fleet_remote.py" command-fault "$dir")
  case "$verdict" in
    fail) echo "xsoar-fleet: simulated failure of this command (fault commands)" >&2; exit 1 ;;
    hang) exec sleep 3600 ;;
    "slow "*) sleep "${verdict#slow }" ;;
    drop) exit 255 ;;  # sshd is gone already, and this session with it
  esac
fi
if [ -e "$dir/state/corrupt_uploads" ]; then
  # fault corrupt_uploads: an installer that arrived since the fault was set gets one byte changed, unless
  # its content is one this fault already left (a session that began mid-upload may see it half-written)
  find "$HOME" -name 'demisto-*.sh' -newer "$dir/state/corrupt_uploads" | while IFS= read -r f; do
    if ! grep -qx "$(sha256sum "$f" | cut -d' ' -f1)" "$dir/state/corrupted" 2>/dev/null; then
      printf X | dd of="$f" bs=1 seek=24 conv=notrunc 2>/dev/null
      sha256sum "$f" | cut -d' ' -f1 >> "$dir/state/corrupted"
    fi
  done
fi
if [ -z "${SSH_ORIGINAL_COMMAND+set}" ]; then PS1="$name:\w# " exec /bin/bash --noprofile --norc; fi
if [ "$SSH_ORIGINAL_COMMAND" = /usr/lib/openssh/sftp-server ]; then exec /usr/lib/openssh/sftp-server; fi
if [ -e "$dir/state/trace_exec" ]; then
  # the argv of every process this command starts, detached ones included (-D: the tracer is not the
  # session's process, so the session ends when the command does)
  exec strace -D -f -qq -e trace=execve -e signal=none -s 65535 -o "$dir/state/exec/$$.trace" \
    /bin/bash -c "$SSH_ORIGINAL_COMMAND"
fi
exec /bin/bash -c "$SSH_ORIGINAL_COMMAND"
"""

SUDO_SCRIPT = r"""#!/bin/sh
# sudo stand-in (xsoar-mt test fleet): passes through; demands the server's password when it has one
pwfile="$XSOAR_FLEET_DIR/state/sudo_password"
stdin_pw= ; nonint= ; validate= ; forget= ; prompt="[sudo] password for $(id -un): "
while [ $# -gt 0 ]; do
  case "$1" in
    -S|--stdin) stdin_pw=1 ;;
    -n|--non-interactive) nonint=1 ;;
    -v|--validate) validate=1 ;;
    -k|-K|--reset-timestamp|--remove-timestamp) forget=1 ;;
    -E|-H|--preserve-env|--preserve-env=*|--set-home) ;;
    -p|--prompt) shift; prompt="$1" ;;
    --prompt=*) prompt="${1#--prompt=}" ;;
    -u|--user|-g|--group) shift ;;
    --user=*|--group=*) ;;
    --) shift; break ;;
    -[SnvkKEH]*)
      case "$1" in *S*) stdin_pw=1 ;; esac
      case "$1" in *n*) nonint=1 ;; esac
      case "$1" in *v*) validate=1 ;; esac
      case "$1" in *[kK]*) forget=1 ;; esac ;;
    -*) echo "sudo: unknown option -- ${1#-}" >&2; exit 1 ;;
    *) break ;;
  esac
  shift
done
if [ -n "$forget" ] && [ -z "$validate" ] && [ $# -eq 0 ]; then exit 0; fi
if [ -f "$pwfile" ]; then
  if [ -n "$nonint" ]; then echo "sudo: a password is required" >&2; exit 1; fi
  if [ -z "$stdin_pw" ]; then
    echo "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper" >&2
    echo "sudo: a password is required" >&2
    exit 1
  fi
  [ -n "$prompt" ] && printf '%s' "$prompt" >&2
  IFS= read -r given || [ -n "$given" ] || { echo "sudo: no password was provided" >&2; exit 1; }
  expected=$(cat "$pwfile")
  if [ "$given" != "$expected" ]; then
    echo "Sorry, try again." >&2
    echo "sudo: 1 incorrect password attempt" >&2
    exit 1
  fi
fi
if [ $# -eq 0 ]; then
  [ -n "$validate" ] && exit 0
  echo "usage: sudo [-nSkv] [-p prompt] [-u user] command [arg ...]" >&2
  exit 1
fi
XSOAR_FLEET_SUDO=1
export XSOAR_FLEET_SUDO
exec "$@"
"""
