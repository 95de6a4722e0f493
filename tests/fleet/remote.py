"""What runs on a simulated XSOAR server: the SSH session wrapper, the stand-in commands and the service.

This module is copied into every fleet (``<root>/lib/xsoar_fleet_remote.py``) and run by a bare Python
(``-I -S``: standard library only, no site packages), so it must not import anything from the test
package. Everything a stand-in needs comes from the server's ``config.json`` (written by the fleet),
found through ``XSOAR_FLEET_DIR`` (set by the session wrapper).

Per-server layout (``<root>/servers/<name>/``): ``config.json``, ``home/`` (the session's working
directory), ``state/`` (``version``, ``service.json``, ``install.pid``, ``sudo_password``, ...),
``tls/`` (certificate and key), ``sshd_config`` and the host key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
MARKER = "XSOAR_FLEET_ROOT"
VENDOR_HOST = "download.demisto.com"
OLD_VENDOR_HOST = "download.demisto.works"
INSTALLER_VERSION_LINE = "# XSOAR_FLEET_INSTALLER_VERSION="
INSTALLER_BUILD_LINE = "# XSOAR_FLEET_INSTALLER_BUILD="
LOW_DISK_FREE_KB = 100 * 1024  # what `df` reports under the low-disk fault: 100 MB
INSTALLER_NEEDS_KB = 2 * 1024 * 1024  # the stand-in installer refuses below 2 GB free

Config = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Files shared by the whole fleet: the event log and the command log


def append_json_line(log: Path, record: dict[str, Any], *, seq_file: Path | None = None) -> None:
    """Append one JSON line under an exclusive flock, so concurrent writers never interleave."""
    lock = log.with_suffix(log.suffix + ".lock")
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if seq_file is not None:
            try:
                seq = int(seq_file.read_text() or "0") + 1
            except FileNotFoundError:
                seq = 1
            seq_file.write_text(str(seq))
            record = {"seq": seq, **record}
        data = (json.dumps(record, sort_keys=False) + "\n").encode()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def record_event(cfg: Config, event: str, **fields: Any) -> None:
    """Append one event (stop, start, install_begin, ...) to the fleet-wide event log."""
    if os.environ.get("XSOAR_FLEET_QUIET_EVENTS") == "1":
        return
    root = Path(cfg["fleet_root"])
    version = read_version(cfg)
    record: dict[str, Any] = {
        "ts": time.time(),
        "server": cfg["name"],
        "deployment": cfg["deployment"],
        "event": event,
        "version_before": version,
        "version_after": version,
    }
    record.update(fields)
    append_json_line(root / "events.jsonl", record, seq_file=root / "events.seq")


# --------------------------------------------------------------------------------------------------
# Server state


def server_dir() -> Path:
    value = os.environ.get("XSOAR_FLEET_DIR")
    if not value:
        sys.stderr.write("xsoar-mt fleet: XSOAR_FLEET_DIR is not set (not inside a fleet session)\n")
        raise SystemExit(127)
    return Path(value)


def load_config(directory: Path | None = None) -> Config:
    directory = directory or server_dir()
    cfg: Config = json.loads((directory / "config.json").read_text())
    cfg["dir"] = str(directory)
    return cfg


def state_path(cfg: Config, name: str) -> Path:
    return Path(cfg["dir"]) / "state" / name


def read_version(cfg: Config) -> str:
    try:
        return state_path(cfg, "version").read_text().strip()
    except FileNotFoundError:
        return str(cfg["version"])


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie (PID 1 here may not reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def service_pid(cfg: Config) -> int | None:
    try:
        info = json.loads(state_path(cfg, "service.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    pid = int(info["pid"])
    return pid if pid_alive(pid) else None


def installing_pid(cfg: Config) -> int | None:
    pid = read_pid(state_path(cfg, "install.pid"))
    return pid if pid is not None and pid_alive(pid) and pid != os.getpid() else None


def faults(cfg: Config) -> dict[str, Any]:
    return dict(cfg.get("faults") or {})


def terminate(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process is still alive after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.01)


def say(text: str, stream: Any = None) -> None:
    """Print a line; survive a closed SSH channel (the installer must outlive a dropped session)."""
    stream = stream or sys.stdout
    try:
        stream.write(text + "\n")
        stream.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass


# --------------------------------------------------------------------------------------------------
# The SSH session wrapper (sshd ForceCommand)


def session(directory: Path) -> int:
    """Run one SSH session inside the server: stand-ins first on PATH, cwd = the server's home."""
    name = directory.name
    root = directory.parent.parent
    home = directory / "home"
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    env = dict(os.environ)
    env.update(
        {
            MARKER: str(root),
            "XSOAR_FLEET_DIR": str(directory),
            "XSOAR_FLEET_SERVER": name,
            "HOME": str(home),
            "PATH": f"{root / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": name,
        }
    )
    pid = os.getpid()
    with contextlib.suppress(OSError):
        (directory / "state" / "sessions" / str(pid)).touch()
    if command is None:
        logged = "<shell>"
    elif command == SFTP_SERVER:
        logged = "<sftp>"
    else:
        logged = command
    append_json_line(
        root / "commands.jsonl",
        {"ts": time.time(), "server": name, "command": logged, "pid": pid},
    )
    os.chdir(home)
    if command == SFTP_SERVER:
        os.execve(SFTP_SERVER, ["sftp-server"], env)
    if command is None:
        env["PS1"] = f"{name}:\\w# "
        os.execve("/bin/bash", ["bash", "--noprofile", "--norc"], env)
    os.execve("/bin/bash", ["bash", "-c", command], env)
    return 127  # not reached


# --------------------------------------------------------------------------------------------------
# service / systemctl


def service_start(
    cfg: Config, *, quiet: bool = False, record: bool = True, env: dict[str, str] | None = None
) -> int:
    """Start the simulated service (daemonised) and wait until it listens; 0 on success.

    ``record=False`` and ``env`` serve the fleet itself when it starts services outside a session.
    """
    if service_pid(cfg) is not None:
        return 0
    if not read_version(cfg):
        if not quiet:
            say(
                "Failed to start demisto.service: Unit demisto.service not found (not installed).", sys.stderr
            )
        if record:
            record_event(cfg, "start_failed", detail="not installed (purged)")
        return 1
    if installing_pid(cfg) is not None:
        if not quiet:
            say("demisto: an installation is in progress; not starting", sys.stderr)
        if record:
            record_event(cfg, "start_failed", detail="installation in progress")
        return 1
    if faults(cfg).get("start_fails"):
        if not quiet:
            say(
                "Job for demisto.service failed because the control process exited with error code.",
                sys.stderr,
            )
        if record:
            record_event(cfg, "start_failed", detail="fault: start_fails")
        return 1
    log = open(Path(cfg["dir"]) / "service.log", "ab")  # noqa: SIM115 - handed to the child
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", os.path.abspath(__file__), "serve", cfg["dir"]],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
        env=env,
    )
    log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if service_pid(cfg) == child.pid:
            if not quiet:
                say("Starting demisto (via systemctl): demisto.service.")
            if record:
                record_event(cfg, "start")
            return 0
        if child.poll() is not None:
            break
        time.sleep(0.005)
    tail = (Path(cfg["dir"]) / "service.log").read_text(errors="replace").splitlines()[-3:]
    with contextlib.suppress(ProcessLookupError):
        child.kill()
    if not quiet:
        say("Job for demisto.service failed: " + " / ".join(tail), sys.stderr)
    if record:
        record_event(cfg, "start_failed", detail="service did not come up: " + " / ".join(tail))
    return 1


def service_stop(cfg: Config, *, quiet: bool = False) -> int:
    pid = service_pid(cfg)
    if pid is None:
        return 0
    terminate(pid)
    with contextlib.suppress(FileNotFoundError):
        state_path(cfg, "service.json").unlink()
    if not quiet:
        say("Stopping demisto (via systemctl): demisto.service.")
    record_event(cfg, "stop")
    return 0


def service_status(cfg: Config, *, brief: bool = False) -> int:
    pid = service_pid(cfg)
    if brief:
        say("active" if pid else "inactive")
    elif pid:
        say(f"● demisto.service - Demisto Server\n     Active: active (running)\n   Main PID: {pid}")
    else:
        say("● demisto.service - Demisto Server\n     Active: inactive (dead)")
    return 0 if pid else 3


def service_action(action: str, unit: str) -> int:
    if unit.removesuffix(".service") != "demisto":
        say(f"{unit}: unrecognized service", sys.stderr)
        return 1 if action != "status" else 4
    cfg = load_config()
    if action == "start":
        return service_start(cfg)
    if action == "stop":
        return service_stop(cfg)
    if action == "restart":
        service_stop(cfg)
        return service_start(cfg)
    if action == "status":
        return service_status(cfg)
    if action == "is-active":
        return service_status(cfg, brief=True)
    say(f"Usage: service demisto {{start|stop|restart|status}} (got {action!r})", sys.stderr)
    return 2


def tool_service(args: Sequence[str]) -> int:
    if len(args) != 2:
        say("Usage: service demisto {start|stop|restart|status}", sys.stderr)
        return 2
    return service_action(args[1], args[0])


def tool_systemctl(args: Sequence[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if len(words) != 2:
        say("systemctl stand-in: usage: systemctl start|stop|restart|status|is-active demisto")
        return 2
    return service_action(words[0], words[1])


# --------------------------------------------------------------------------------------------------
# The simulated service: HTTPS on the communication port, one listener per tenant


def serve(directory: Path) -> int:
    import http.server
    import socket
    import ssl
    import threading

    cfg = load_config(directory)
    fault = faults(cfg)
    version = read_version(cfg)
    build = cfg.get("build", "")
    started = time.time()
    blocked = {int(p) for p in fault.get("blocked_ports") or []}
    api_key = cfg.get("api_key")
    address = cfg["address"]

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if fault.get("tls10"):
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    tls = Path(cfg["dir"]) / "tls"
    ctx.load_cert_chain(tls / "cert.pem", tls / "key.pem")

    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1
    with contextlib.suppress(ssl.SSLError):
        client_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")

    def tenant_reachable(account: dict[str, Any]) -> bool:
        for peer in account["addresses"]:
            with contextlib.suppress(OSError), socket.create_connection((peer, account["port"]), 1):
                return True
        return False

    def forward(account: dict[str, Any], path: str, auth: str | None) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        last = (502, b'{"error": "tenant unreachable"}')
        for peer in account["addresses"]:
            request = urllib.request.Request(f"https://{peer}:{account['port']}{path}")
            if auth:
                request.add_header("Authorization", auth)
            try:
                with urllib.request.urlopen(request, context=client_ctx, timeout=5) as answer:
                    return answer.status, answer.read()
            except urllib.error.HTTPError as error:
                return error.code, error.read()
            except OSError as error:
                last = (502, json.dumps({"error": f"tenant unreachable: {error}"}).encode())
        return last

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "demisto"
        sys_version = ""
        tenant: dict[str, Any] | None = None

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            window = float(fault.get("health_503_seconds") or 0)
            if path == "/health":
                status = 503 if time.time() < started + window else 200
                record_event(cfg, "health", status=status)  # the order checker's evidence of health
                self.reply(status, {"status": "starting" if status == 503 else "ok"})
                return
            auth = self.headers.get("Authorization")
            if api_key and auth != api_key:
                self.reply(401, {"error": "unauthorized"})
                return
            if self.tenant is not None and os.path.exists(state_path(cfg, "tenants_503")):
                self.reply(503, {"error": "tenant unavailable (fault tenants_503)"})
                return
            if path == "/about":
                about = {
                    "demistoVersion": version.split(" ")[0],
                    "buildNumber": build,
                    "server": cfg["name"],
                    "deployment": cfg["deployment"],
                    "role": cfg["role"],
                }
                if self.tenant is not None:
                    about["tenant"] = "acc_" + self.tenant["name"]
                self.reply(200, about)
                return
            accounts = cfg.get("accounts") or []
            if self.tenant is None and cfg["role"] == "main":
                if path == "/accounts":
                    listing = [
                        {
                            "name": "acc_" + a["name"],
                            "displayName": a["name"],
                            "host": a["host"],
                            "hostAddresses": a["addresses"],
                            "port": a["port"],
                            "status": "active" if tenant_reachable(a) else "unreachable",
                        }
                        for a in accounts
                    ]
                    self.reply(200, listing)
                    return
                match = re.match(r"^/acc_([^/]+)(/.*)?$", path)
                if match:
                    found = [a for a in accounts if a["name"] == match.group(1)]
                    if not found:
                        self.reply(404, {"error": f"no tenant acc_{match.group(1)}"})
                        return
                    status, body = forward(found[0], match.group(2) or "/", auth)
                    self.reply(status, body)
                    return
            self.reply(404, {"error": f"not found: {path}"})

    class TLSServer(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def finish_request(self, request: Any, client_address: Any) -> None:
            request.settimeout(10)
            wrapped = ctx.wrap_socket(request, server_side=True)
            self.RequestHandlerClass(wrapped, client_address, self)

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass

    servers: list[TLSServer] = []
    if int(cfg["comm_port"]) not in blocked:
        servers.append(TLSServer((address, int(cfg["comm_port"])), Handler))
    for tenant in cfg.get("tenants") or []:
        if int(tenant["port"]) in blocked:
            continue
        handler = type("TenantHandler", (Handler,), {"tenant": tenant})
        servers.append(TLSServer((address, int(tenant["port"])), handler))

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    write_atomic(
        state_path(cfg, "service.json"),
        json.dumps({"pid": os.getpid(), "started": started, "version": version}),
    )
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if servers:
        servers[0].serve_forever()
    else:
        while True:
            time.sleep(3600)
    return 0


# --------------------------------------------------------------------------------------------------
# The installer (``demisto-6.12.sh``: a small sh file that execs this with its own path)


def installer_identity(path: Path) -> tuple[str, str]:
    version = build = ""
    for line in path.read_text(errors="replace").splitlines()[:10]:
        if line.startswith(INSTALLER_VERSION_LINE):
            version = line[len(INSTALLER_VERSION_LINE) :].strip()
        elif line.startswith(INSTALLER_BUILD_LINE):
            build = line[len(INSTALLER_BUILD_LINE) :].strip()
    return version, build


def free_kb(cfg: Config) -> int:
    if faults(cfg).get("low_disk"):
        return LOW_DISK_FREE_KB
    return int(float(cfg.get("disk_free_gb", 1000)) * 1024 * 1024)


def install(installer: str, args: Sequence[str]) -> int:
    cfg = load_config()
    fault = faults(cfg)
    new_version, new_build = installer_identity(Path(installer))
    before, after = list(args), []
    if "--" in args:
        cut = list(args).index("--")
        before, after = list(args[:cut]), list(args[cut + 1 :])
    target: str | None = None
    while before:
        flag = before.pop(0)
        if flag in ("-target", "--target") and before:
            target = before.pop(0)
        elif flag in ("--quiet", "-q", "--nox11", "--nochown"):
            pass
        else:
            return refuse(cfg, new_version, f"unknown installer option {flag!r} (before --)")
    if os.geteuid() != 0 and os.environ.get("XSOAR_FLEET_SUDO") != "1":
        return refuse(cfg, new_version, "the installer must be run as root (use sudo)")
    if "-multi-tenant" not in after:
        return refuse(
            cfg, new_version, "this server is part of a multi-tenant deployment: pass -- -multi-tenant"
        )
    if service_pid(cfg) is not None:
        return refuse(
            cfg,
            new_version,
            "the Cortex XSOAR server is running; stop it first (sudo service demisto stop)",
            reason="running",
        )
    if installing_pid(cfg) is not None:
        return refuse(cfg, new_version, "another installation is in progress")
    if "-purge-mount" in after and "-purge" not in after:
        return refuse(cfg, new_version, "-purge-mount must come with -purge")
    installed = read_version(cfg)
    if "-purge" not in after and installed and version_key(installed) > version_key(new_version):
        return refuse(
            cfg,
            new_version,
            f"Cortex XSOAR {installed} is installed, newer than {new_version}: downgrade is not supported "
            "(remove the installed release first with -- -purge)",
            reason="downgrade",
        )

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # outlive a dropped SSH session
    write_atomic(state_path(cfg, "install.pid"), str(os.getpid()))
    try:
        if "-purge" in after:
            return run_purge(cfg, mount="-purge-mount" in after)
        return run_install(cfg, fault, new_version, new_build, target, after)
    finally:
        with contextlib.suppress(FileNotFoundError):
            state_path(cfg, "install.pid").unlink()


def version_key(version: str) -> tuple[int, ...]:
    """``6.12.0 (B493375)`` -> (6, 12, 0): what the installer compares to refuse a downgrade."""
    found = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", version)
    if found is None:
        return ()
    return tuple(int(part or 0) for part in found.groups())


def data_is_mounted(cfg: Config) -> bool:
    """An HA group's data directory is a shared mount (its servers share one file system, on Elasticsearch)."""
    return cfg.get("kind") == "ha"


def run_purge(cfg: Config, *, mount: bool) -> int:
    """``-- -purge``: remove the installed release, so an older one installs cleanly afterwards. The server's
    configuration and data directory go too, except a mounted data directory (HA), which only
    ``-purge-mount`` removes. Nothing is installed and the service is not started."""
    home = Path(cfg["dir"]) / "home"
    before = read_version(cfg)
    say(f"Removing Cortex XSOAR {before or '(nothing installed)'}...")
    write_atomic(state_path(cfg, "version"), "")
    kept = data_is_mounted(cfg) and not mount
    with contextlib.suppress(FileNotFoundError):
        (home / "etc" / "demisto.conf").unlink()
    if not kept:
        shutil.rmtree(home / "var" / "lib" / "demisto", ignore_errors=True)
    record_event(
        cfg, "purge", version_before=before, version_after="", detail="data kept" if kept else "data removed"
    )
    say(
        "Cortex XSOAR removed."
        + (" The mounted data directory is kept (add -purge-mount to remove it)." if kept else "")
    )
    return 0


def refuse(cfg: Config, version: str, message: str, *, reason: str = "usage") -> int:
    say(f"Error: {message}", sys.stderr)
    record_event(cfg, "install_refused", version_after=version, reason=reason, detail=message)
    return 1


def run_install(
    cfg: Config,
    fault: dict[str, Any],
    version: str,
    build: str,
    target: str | None,
    flags: list[str],
) -> int:
    before = read_version(cfg)
    record_event(cfg, "install_begin", version_after=version, flags=flags, target=target)
    label = f"{version} (B{build})" if build else version
    say("Verifying archive integrity...  100%   All good.")
    extract = Path(target) if target else Path("/tmp")
    say(f"Uncompressing Cortex XSOAR {label} into {extract}")

    def fail(message: str) -> int:
        say(f"Error: {message}", sys.stderr)
        record_event(cfg, "install_failed", version_after=before, detail=message)
        return 1

    # the simulated /tmp is the literal path, as findmnt sees it (the fleet itself lives under the real /tmp)
    in_tmp = str(extract) == "/tmp" or str(extract).startswith("/tmp/")
    if fault.get("tmp_noexec") and in_tmp:
        return fail(f"{extract}/selfgz{os.getpid()}/install.sh: Permission denied (noexec mount)")
    if target:
        try:
            Path(target).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return fail(f"cannot use -target {target}: {error}")
    if free_kb(cfg) < INSTALLER_NEEDS_KB:
        return fail("not enough free disk space to install (need 2 GB)")

    seconds = float(fault.get("install_seconds") or cfg.get("install_seconds", 0.5))
    steps = ["Backing up data", "Installing binaries", "Migrating data", "Updating tenants"]
    drop_after = len(steps) // 2
    for index, step in enumerate(steps):
        say(f"[{index + 1}/{len(steps)}] {step}...")
        if index == drop_after:
            drop = float(fault.get("ssh_drop_seconds") or 0)
            marker = state_path(cfg, "ssh_drop_done")
            if drop > 0 and not marker.exists():
                marker.touch()
                drop_ssh(cfg, drop)
            if fault.get("installer_fails"):
                return fail("installation failed: simulated fault (installer_fails)")
        time.sleep(seconds / len(steps))
    write_atomic(state_path(cfg, "version"), label)
    record_event(cfg, "install_end", version_before=before, version_after=label)
    say(f"Cortex XSOAR {label} installed successfully.")
    if "-do-not-start-server" in flags:
        return 0
    return service_start(cfg)


def sshd_pid(cfg: Config) -> int | None:
    pid = read_pid(Path(cfg["dir"]) / "sshd.pid")
    return pid if pid is not None and pid_alive(pid) else None


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def is_sshd(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == SSHD
    except OSError:
        return False


def drop_ssh(cfg: Config, seconds: float) -> None:
    """Make the server's sshd go away with its live sessions; a helper brings it back later."""
    listener = sshd_pid(cfg)
    if listener is None:
        return
    victims = [p for p in descendants(listener) if is_sshd(p)]
    record_event(cfg, "ssh_drop", detail=f"sshd gone for {seconds:g}s")
    for pid in [listener, *victims]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    helper = subprocess.Popen(
        [sys.executable, "-I", "-S", os.path.abspath(__file__), "restart-sshd", cfg["dir"], str(seconds)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    write_atomic(state_path(cfg, "restarter.pid"), str(helper.pid))


def start_sshd(directory: Path) -> subprocess.Popen[bytes]:
    """Launch the server's sshd (it daemonises itself and writes sshd.pid once it listens)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / "sshd.pid").unlink()
    return subprocess.Popen(
        [SSHD, "-f", str(directory / "sshd_config"), "-E", str(directory / "sshd.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        close_fds=True,
    )


def wait_sshd(directory: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_pid(directory / "sshd.pid")
        if pid is not None and pid_alive(pid):
            return pid
        time.sleep(0.005)
    log = (directory / "sshd.log").read_text(errors="replace") if (directory / "sshd.log").exists() else ""
    raise RuntimeError(f"sshd for {directory.name} did not start: {log.strip()[-500:]}")


def restart_sshd(directory: Path, seconds: float) -> int:
    time.sleep(seconds)
    cfg = load_config(directory)
    start_sshd(directory).wait()
    wait_sshd(directory)
    record_event(cfg, "ssh_back")
    with contextlib.suppress(FileNotFoundError):
        state_path(cfg, "restarter.pid").unlink()
    return 0


# --------------------------------------------------------------------------------------------------
# Download stand-ins: wget and curl


def parse_download(url: str, cfg: Config) -> tuple[int, str, Path | None]:
    """(HTTP status, message, installer file) for a vendor download link."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    if parts.hostname == OLD_VENDOR_HOST:
        return 0, f"refused: {OLD_VENDOR_HOST} is not the vendor's download host", None
    if parts.scheme != "https" or parts.hostname != VENDOR_HOST:
        return 0, f"the fleet serves only https://{VENDOR_HOST} links", None
    if not parts.path.startswith("/download-params"):
        return 404, "Not Found", None
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    token = cfg.get("download_token")
    if token and query.get("token") != token:
        return 403, "Forbidden (missing or invalid token)", None
    if query.get("eula") != "accept":
        return 403, "Forbidden (eula not accepted)", None
    match = re.fullmatch(r"(\d+)_(\d+)_(latest|\d+)", query.get("downloadName", ""))
    if not match:
        return 404, f"Not Found (downloadName {query.get('downloadName')!r})", None
    major, minor, which = match.groups()
    name = f"demisto-{major}.{minor}.sh" if which == "latest" else f"demisto-{major}.{minor}-{which}.sh"
    path = Path(cfg["downloads"]) / name
    if not path.exists():
        return 404, f"Not Found (no installer {name})", None
    return 200, "OK", path


def deliver(cfg: Config, url: str, output: str | None) -> tuple[int, str]:
    """Serve a download link into ``output`` ('-' or None: stdout). Returns (status, message)."""
    from urllib.parse import parse_qs, urlsplit

    status, message, path = parse_download(url, cfg)
    name = parse_qs(urlsplit(url).query).get("downloadName", [""])[0]
    if path is None:
        record_event(cfg, "download", ok=False, download_name=name, detail=message)
        return status, message
    version, _build = installer_identity(path)
    data = path.read_bytes()
    if output in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(output).write_bytes(data)
    record_event(cfg, "download", ok=True, download_name=name, file=output, installer_version=version)
    return 200, "OK"


def tool_wget(args: Sequence[str]) -> int:
    cfg = load_config()
    output: str | None = None
    quiet = False
    urls: list[str] = []
    input_file: str | None = None
    todo = list(args)
    while todo:
        arg = todo.pop(0)
        if arg in ("-O", "--output-document") and todo:
            output = todo.pop(0)
        elif arg.startswith("--output-document="):
            output = arg.split("=", 1)[1]
        elif arg.startswith("-O") and len(arg) > 2:
            output = arg[2:]
        elif arg in ("-i", "--input-file") and todo:
            input_file = todo.pop(0)
        elif arg.startswith("--input-file="):
            input_file = arg.split("=", 1)[1]
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("-T", "-t", "--timeout", "--tries") and todo:
            todo.pop(0)
        elif arg.startswith("-"):
            pass  # -nv, --no-check-certificate, --timeout=N, ...: accepted, no effect here
        else:
            urls.append(arg)
    if input_file is not None:
        text = sys.stdin.read() if input_file == "-" else Path(input_file).read_text()
        urls += [line.strip() for line in text.splitlines() if line.strip()]
    if not urls:
        say("wget: missing URL", sys.stderr)
        return 1
    for url in urls:
        status, message = deliver(cfg, url, output)
        if status != 200:
            if not quiet or status == 0:
                say(f"wget: {message}" if status == 0 else f"ERROR {status}: {message}.", sys.stderr)
            return 4 if status == 0 else 8
        if not quiet:
            say(f"'{output or 'demisto.sh'}' saved", sys.stderr)
    return 0


def curl_config_urls(text: str) -> list[str]:
    urls = []
    for line in text.splitlines():
        match = re.match(r"""^\s*-{0,2}url\s*[=:\s]\s*"?([^"\s]+)"?""", line)
        if match:
            urls.append(match.group(1))
    return urls


def curl_config_output(text: str) -> str | None:
    for line in text.splitlines():
        match = re.match(r"""^\s*-{0,2}output\s*[=:\s]\s*"?([^"]+)"?""", line)
        if match:
            return match.group(1).strip()
    return None


def tool_curl(args: Sequence[str]) -> int:
    """Serve vendor download links; pass loopback requests to the real curl (127.0.0.1 = this server)."""
    from urllib.parse import urlsplit

    cfg = load_config()
    takes_value = {
        "-o", "--output", "-K", "--config", "-H", "--header", "-m", "--max-time", "-d", "--data",
        "-X", "--request", "-u", "--user", "--url", "-w", "--write-out", "--connect-timeout",
        "-A", "--user-agent", "--cacert", "-E", "--cert", "--key", "--retry", "-e", "--referer",
    }  # fmt: skip
    stdin_data: bytes | None = None
    output: str | None = None
    fail = False
    urls: list[str] = []
    todo = list(args)
    while todo:
        arg = todo.pop(0)
        value = None
        if arg in takes_value and todo:
            value = todo.pop(0)
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            letters = arg[1:]
            if "f" in letters:
                fail = True
            if letters[-1] in "oKHmdXuwAe" and todo:
                arg, value = "-" + letters[-1], todo.pop(0)
        if arg == "--fail":
            fail = True
        if value is None:
            if not arg.startswith("-"):
                urls.append(arg)
            continue
        if arg in ("-o", "--output"):
            output = value
        elif arg == "--url":
            urls.append(value)
        if value in ("-", "@-") and arg not in ("-o", "--output"):
            stdin_data = sys.stdin.buffer.read() if stdin_data is None else stdin_data
            if arg in ("-K", "--config"):
                text = stdin_data.decode(errors="replace")
                urls += curl_config_urls(text)
                output = curl_config_output(text) or output
                fail = fail or bool(re.search(r"^\s*-{0,2}fail\b", text, re.M))
        elif arg in ("-K", "--config"):
            text = Path(value).read_text()
            urls += curl_config_urls(text)
            output = curl_config_output(text) or output
    if not urls:
        say("curl: no URL specified", sys.stderr)
        return 2
    hosts = {urlsplit(u).hostname or "" for u in urls}
    if hosts & {VENDOR_HOST, OLD_VENDOR_HOST}:
        for url in urls:
            status, message = deliver(cfg, url, output)
            if status == 0:
                say(f"curl: (6) Could not resolve host: {urlsplit(url).hostname} ({message})", sys.stderr)
                return 6
            if status != 200:
                if fail:
                    say(f"curl: (22) The requested URL returned error: {status}", sys.stderr)
                    return 22
                sys.stdout.write(message + "\n")
        return 0
    for host in hosts:
        if not (host == "localhost" or host.startswith("127.")):
            say(f"curl: (6) Could not resolve host: {host} (the fleet allows loopback only)", sys.stderr)
            return 6
    real = [
        "/usr/bin/curl", "--noproxy", "*",
        "--connect-to", f"127.0.0.1::{cfg['address']}:", "--connect-to", f"localhost::{cfg['address']}:",
        *args,
    ]  # fmt: skip
    return subprocess.run(real, input=stdin_data, check=False).returncode


# --------------------------------------------------------------------------------------------------
# System stand-ins: df, findmnt, nproc, free


def tool_df(args: Sequence[str]) -> int:
    cfg = load_config()
    paths = [a for a in args if not a.startswith("-")] or ["/"]
    human = any(a in ("-h", "--human-readable") for a in args)
    free = free_kb(cfg)
    total = max(free * 2, 1024 * 1024 * 1024)
    used = total - free

    def size(kb: int) -> str:
        return f"{kb // (1024 * 1024)}G" if human else str(kb)

    say(f"{'Filesystem':<20} {'1024-blocks':>12} {'Used':>12} {'Available':>12} Capacity Mounted on")
    for path in paths:
        mount = "/tmp" if path == "/tmp" or path.startswith("/tmp/") else "/"
        line = f"{'/dev/xsoar' + cfg['name'][:8]:<20} {size(total):>12} {size(used):>12}"
        say(f"{line} {size(free):>12} {100 * used // total:>7}% {mount}")
    return 0


def tool_findmnt(args: Sequence[str]) -> int:
    cfg = load_config()
    columns = ["TARGET", "SOURCE", "FSTYPE", "OPTIONS"]
    headings = True
    target = "/"
    todo = list(args)
    while todo:
        arg = todo.pop(0)
        if arg in ("-o", "--output", "-no", "-on") and todo:
            columns = todo.pop(0).upper().split(",")
            headings = headings and arg not in ("-no", "-on")
        elif arg.startswith("--output="):
            columns = arg.split("=", 1)[1].upper().split(",")
        elif arg in ("-n", "--noheadings"):
            headings = False
        elif arg in ("-T", "--target") and todo:
            target = todo.pop(0)
        elif not arg.startswith("-"):
            target = arg
    mount = "/tmp" if target == "/tmp" or target.startswith("/tmp/") else "/"
    options = "rw,relatime"
    if mount == "/tmp" and faults(cfg).get("tmp_noexec"):
        options = "rw,nosuid,nodev,noexec,relatime"
    row = {"TARGET": mount, "SOURCE": "/dev/xsoar", "FSTYPE": "ext4", "OPTIONS": options}
    if headings:
        say(" ".join(columns))
    say(" ".join(row.get(c, "") for c in columns))
    return 0


def tool_nproc(args: Sequence[str]) -> int:
    say(str(int(load_config().get("cores", 16))))
    return 0


def tool_free(args: Sequence[str]) -> int:
    total = int(float(load_config().get("memory_gb", 32)) * 1024**3)
    divisor = {"-b": 1, "--bytes": 1, "-m": 1024**2, "--mebi": 1024**2, "-g": 1024**3}
    unit = next((divisor[a] for a in args if a in divisor), 1024)
    used, free = total // 4, total // 2
    cols = ("total", "used", "free", "shared", "buff/cache", "available")
    say(" " * 10 + "".join(f"{c:>12}" for c in cols))
    values = (total, used, free, 0, total - used - free, total - used)
    say(f"{'Mem:':<10}" + "".join(f"{v // unit:>12}" for v in values))
    say(f"{'Swap:':<10}" + "".join(f"{0:>12}" for _ in range(3)))
    return 0


# --------------------------------------------------------------------------------------------------
# Entry points


TOOLS = {
    "service": tool_service,
    "systemctl": tool_systemctl,
    "wget": tool_wget,
    "curl": tool_curl,
    "df": tool_df,
    "findmnt": tool_findmnt,
    "nproc": tool_nproc,
    "free": tool_free,
}


def main(tool: str, args: Sequence[str]) -> int:
    return TOOLS[tool](args)


def command_fault(directory: Path) -> int:
    """Fault `commands`: print what the session must do with SSH_ORIGINAL_COMMAND (run, fail, hang, slow N,
    drop), counting down the rule that matched. A drop takes sshd away here, before answering."""
    cfg = load_config(directory)
    command = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    rules_file = directory / "state" / "command_faults.json"
    lock = directory / "state" / "command_faults.lock"
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            rules = json.loads(rules_file.read_text() or "[]")
        except (FileNotFoundError, json.JSONDecodeError):
            rules = []
        hit = None
        for rule in rules:
            if rule["left"] > 0 and re.search(rule["match"], command):
                rule["left"] -= 1
                hit = rule
                break
        if hit is not None:
            write_atomic(rules_file, json.dumps(rules))
    if hit is None:
        print("run")
        return 0
    record_event(cfg, "fault", detail=f"{hit['action']} on a command matching {hit['match']!r}")
    if hit["action"] == "slow":
        print(f"slow {hit['seconds']:g}")
    elif hit["action"] == "drop":
        print("drop", flush=True)
        drop_ssh(cfg, float(hit["seconds"] or 2))
    else:
        print(hit["action"])
    return 0


def entry(argv: Sequence[str]) -> int:
    command, rest = argv[0], list(argv[1:])
    if command == "command-fault":
        return command_fault(Path(rest[0]))
    if command == "session":
        return session(Path(rest[0]))
    if command == "serve":
        return serve(Path(rest[0]))
    if command == "install":
        return install(rest[0], rest[1:])
    if command == "restart-sshd":
        return restart_sshd(Path(rest[0]), float(rest[1]))
    if command == "service-start":  # used by the fleet itself (no events, no output)
        return service_start(load_config(Path(rest[0])), quiet=True)
    return main(command, rest)


def iter_lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
