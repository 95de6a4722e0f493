"""`python -m tests.fleet up|down|status`: a demo fleet for trying xsoar-mt by hand (make fleet-up)."""

from __future__ import annotations

import argparse
import json
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
    print(
        "\ntry:\n"
        f"  ssh -F {fleet.ssh_config} {first.main.primary.name} 'service demisto status'\n"
        f"  .venv/bin/xsoar-mt inventory validate {inventories[0]}\n"
        f"  .venv/bin/xsoar-mt upgrade plan -i {inventories[0]} --to 6.12\n"
        f"  tail -f {fleet.event_log}      # what the servers did\n"
        f"  tail -f {fleet.command_log}    # every command run over SSH\n"
        "stop it with `make fleet-down`."
    )
    return 0


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
