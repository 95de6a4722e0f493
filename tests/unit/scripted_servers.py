"""A scripted stand-in for servers, for testing the executor's control flow (never its SSH path)."""

from __future__ import annotations

import base64
import json
import re
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xsoar_mt.releases import Version
from xsoar_mt.remote import ConnectionLost, Result


@dataclass
class ScriptedServer:
    name: str
    version: str
    running: bool = True
    install_fails: bool = False
    unhealthy_polls: int = 0  # health answers 503 this many times after a start
    drop_on_poll: int = 0  # the connection drops on this many polls during an install
    says: str = ""  # a line the installer prints as it goes (and that its log's tail shows)
    survey: str = ""  # what the preflight survey script prints (its sections)
    pending_install: str | None = None
    polls_left: int = 0
    log: list[str] = field(default_factory=list)


def private_directories(command: str) -> str:
    """What workdir.walk_script prints for each path it walks when every directory is root's and 0700."""
    lines = ["XM_UID 0"]
    for path, index in re.findall(r"xm_walk ('[^']*'|\S+) ([0-9]+)", command):
        full = shlex.split(path)[0]
        parts = [p for p in full.split("/") if p]
        walked = ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
        for i, step in enumerate(walked):
            mode = "755" if i < len(walked) - 1 else "700"
            lines.append(f"XM_DIR {index} d 0 {mode} {base64.b64encode(step.encode()).decode()}")
    return "\n".join(lines) + "\n"


class ScriptedFleet:
    """Answers the commands the executor sends, keeping each server's service state and version."""

    def __init__(self, servers: dict[str, str]) -> None:
        self.servers = {n: ScriptedServer(n, v) for n, v in servers.items()}
        self.calls: list[tuple[str, str, str | None]] = []
        self.events: list[tuple[str, str, str]] = []  # (server, event, version)
        self.hooks: list[Callable[[str, str], None]] = []
        self.lock = threading.Lock()

    def shell(self, name: str) -> ScriptedShell:
        return ScriptedShell(self, name)

    def answer(self, name: str, command: str, stdin: str | None) -> Result:
        with self.lock:
            self.calls.append((name, command, stdin))
        for hook in self.hooks:
            hook(name, command)
        server = self.servers[name]

        def ok(out: str = "") -> Result:
            return Result(name, command, 0, out)

        if "run.lock" in command:  # the deployment's run lock (lock.py): always free here
            verb = "acquired" if "mkdir" in command else "ours" if "touch" in command else "released"
            return ok(f"XM_LOCK={verb}\n")
        if "XM_UID" in command and "==xsoar-mt== " not in command:  # workdir.py: every directory private
            return ok(private_directories(command))
        if "__xsoar_mt_sudo" in command:
            return ok(f"__xsoar_mt_sudo=0\n__xsoar_mt_status={0 if server.running else 3}\n")
        if "nohup setsid" in command:
            if server.running:
                return Result(name, command, 1, "", "refusing: the service is running")
            release = re.search(r"demisto-(\d+\.\d+)\.sh", command)
            assert release, command
            server.pending_install = release.group(1)
            server.polls_left = 2
            self.events.append((name, "install-begin", server.version))
            return ok("STARTED\n")
        if (
            "xm_c=$(cat" in command
        ):  # a poll: `<exit code|-> <alive> <boot now> <boot at launch>`, then the log
            if server.drop_on_poll:
                server.drop_on_poll -= 1
                raise ConnectionLost(name, "connection reset by peer")
            server.polls_left -= 1
            if server.polls_left > 0:
                return ok(f"- 1 b1 b1\ninstalling...\n{server.says}")
            if server.install_fails:
                return ok("1 0 b1 b1\ninstaller: error: disk full\n")
            assert server.pending_install is not None
            server.version = f"{server.pending_install}.0"
            self.events.append((name, "install-end", server.version))
            return ok("0 0 b1 b1\ndone\n")
        if command.startswith("tail -n"):
            return ok(f"{server.says}installer: error: disk full\n")
        if "==xsoar-mt== " in command:  # the preflight survey; its directories private unless it says
            extra = (
                ""
                if "working-directory" in server.survey
                else (
                    "==xsoar-mt== working-directory\n"
                    f"==body== {base64.b64encode(private_directories(command).encode()).decode()}\n==rc== 0\n"
                )
            )
            return ok(
                server.survey + ("\n" if server.survey and not server.survey.endswith("\n") else "") + extra
            )
        if "/about" in command and "for t in" not in command:
            if not server.running:
                return Result(name, command, 7, "", "connection refused")
            return ok(json.dumps({"demistoVersion": server.version}))
        if "http_code" in command:
            if server.unhealthy_polls:
                server.unhealthy_polls -= 1
                return ok("503")
            return ok("200" if server.running else "000")
        if command.endswith("service demisto status"):
            return Result(
                name, command, 0 if server.running else 3, "active" if server.running else "inactive"
            )
        if command.endswith("service demisto stop"):
            server.running = False
            self.events.append((name, "stop", server.version))
            return ok()
        if command.endswith("service demisto start"):
            server.running = True
            self.events.append((name, "start", server.version))
            return ok()
        if "for t in" in command:
            tenants = re.findall(r"acc_[A-Za-z0-9_.-]+", command.split("for t in", 1)[1].split(";", 1)[0])
            return ok("".join(f'== tenant {t}\n{{"demistoVersion": "{server.version}"}}\n' for t in tenants))
        return ok()

    def installs(self) -> list[str]:
        return [n for n, e, _ in self.events if e == "install-begin"]

    def version(self, name: str) -> Version:
        return Version.parse(self.servers[name].version)


class ScriptedShell:
    def __init__(self, fleet: ScriptedFleet, server: str) -> None:
        self.fleet = fleet
        self.server = server
        self.connects = 0

    def connect(self) -> None:
        self.connects += 1

    def run(
        self, command: str, *, stdin: str | None = None, timeout: float | None = None, cancel: object = None
    ) -> Result:
        return self.fleet.answer(self.server, command, stdin)

    def put(self, local: Path, remote: str, progress: object = None) -> None:
        self.fleet.calls.append((self.server, f"put {remote}", None))

    def close(self) -> None:
        pass
