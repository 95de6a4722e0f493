"""`python -m tests.fleet up|down|status`: a demo fleet for trying xsoar-mt by hand (make fleet-up)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from tests.fleet.fleet import Fleet, FleetError, fleet_pids, stop_root
from tests.fleet.spec import FleetSpec, demo_spec

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".fleet"


def up(root: Path, spec_file: Path | None) -> int:
    spec = FleetSpec.from_yaml(spec_file.read_text()) if spec_file else demo_spec()
    if fleet_pids(root):
        print(f"a fleet is already running under {root}; run `make fleet-down` first", file=sys.stderr)
        return 1
    began = time.monotonic()
    fleet = Fleet(spec, root).start()
    took = time.monotonic() - began
    inventories = [fleet.inventory(d.name) for d in spec.deployments]
    first = spec.deployments[0]
    print(f"fleet up: {len(fleet.placements)} servers in {took:.1f}s under {root}")
    for server in fleet.servers():
        print(f"  {server.name:<14} {server.address}:{server.ssh_port}  https :{server.comm_port}"
              f"  {server.version}")  # fmt: skip
    print("inventory:")
    for path in inventories:
        print(f"  {path}")
    print("\ntry (from any directory):")
    for command in try_commands(fleet, inventories[0], first.main.primary.name, root):
        print(f"  {command}")
    print("stop it with `make fleet-down`.")
    return 0


def try_commands(fleet: Fleet, inventory: Path, server: str, root: Path) -> list[str]:
    """Commands to try on the fleet just started, each working as printed from any directory: absolute
    paths, `--probe` (the demo inventory gives no versions: the servers say), and the fleet's own state
    directory (so trying it leaves nothing in the operator's)."""
    xsoar_mt = Path(sys.executable).parent / "xsoar-mt"
    tool = str(xsoar_mt) if xsoar_mt.exists() else f"{sys.executable} -m xsoar_mt"
    state = shlex.quote(str(root.absolute() / "xsoar-mt-state"))
    inv = shlex.quote(str(inventory.absolute()))
    return [
        f"ssh -F {shlex.quote(str(fleet.ssh_config))} {server} 'service demisto status'",
        f"{tool} inventory validate {inv}",
        f"{tool} status -i {inv} --state-dir {state}",
        f"{tool} upgrade plan -i {inv} --to 6.12 --probe --state-dir {state}",
        f"tail -f {shlex.quote(str(fleet.event_log))}      # what the servers did",
        f"tail -f {shlex.quote(str(fleet.command_log))}    # every command run over SSH",
    ]


def down(root: Path) -> int:
    if not (root / "fleet.json").exists():
        print(f"no fleet under {root}")
        return 0
    count = len(fleet_pids(root))
    stop_root(root)
    print(f"fleet down: ended {count} processes under {root}")
    return 0


def status(root: Path) -> int:
    description = root / "fleet.json"
    if not description.exists():
        print(f"no fleet under {root}")
        return 3
    servers = json.loads(description.read_text())["servers"]
    print(f"{len(servers)} servers, {len(fleet_pids(root))} live processes under {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fleet", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="state directory")
    parser.add_argument("--spec", type=Path, help="a fleet spec (YAML); default: the demo")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.command == "up":
            return up(root, args.spec)
        if args.command == "down":
            return down(root)
        return status(root)
    except FleetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
