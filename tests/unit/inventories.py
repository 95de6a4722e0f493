"""Generated inventories, shared by the property tests and the benchmark (bench/run.py).

A deployment is described by `GroupSpec`s (plain data), written out as inventory YAML and read back with
`parse_inventory`, so every generated inventory has passed the same validation an operator's file does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import yaml

from xsoar_mt.inventory import Inventory, parse_inventory

_SHAPES = {"single": "server", "ha": "ha", "dr": "dr"}


@dataclass(frozen=True)
class GroupSpec:
    """Main or one host group: its shape, each server's release, and how many tenants it runs."""

    name: str
    shape: str  # "single" | "ha" | "dr"
    releases: tuple[str, ...]  # one per server; a DR pair lists (primary, secondary)
    tenants: int = 0

    def server_names(self) -> tuple[str, ...]:
        if self.shape == "dr":
            return (f"{self.name}-p", f"{self.name}-s")
        return tuple(f"{self.name}-{i}" for i in range(len(self.releases)))


def inventory_dict(database: str, main: GroupSpec, hosts: list[GroupSpec]) -> dict[str, Any]:
    """The inventory as the YAML document's data; addresses are unique 10.x.y.z."""
    counter = iter(range(1, 10**7))

    def server(name: str, release: str) -> dict[str, Any]:
        n = next(counter)
        return {"name": name, "address": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "version": release}

    def group(spec: GroupSpec) -> dict[str, Any]:
        servers = [server(n, r) for n, r in zip(spec.server_names(), spec.releases, strict=True)]
        out: dict[str, Any] = {} if spec.name == "main" else {"name": spec.name}
        if spec.shape == "single":
            out["server"] = servers[0]
        elif spec.shape == "ha":
            out["ha"] = {"load_balancer": f"https://{spec.name}.example", "servers": servers}
        else:
            out["dr"] = {"primary": servers[0], "secondary": servers[1]}
        if spec.tenants:
            out["tenants"] = [{"name": f"{spec.name}-t{i}"} for i in range(spec.tenants)]
        return out

    deployment: dict[str, Any] = {"name": "generated", "database": database}
    if database == "elasticsearch":
        deployment["elasticsearch_url"] = "https://es.example:9200"
    return {
        "inventory_version": 1,
        "deployment": deployment,
        "durations": {"install": 15, "start": 5},
        "main": group(main),
        "hosts": [group(h) for h in hosts],
    }


def build(database: str, main: GroupSpec, hosts: list[GroupSpec]) -> Inventory:
    text = yaml.safe_dump(inventory_dict(database, main, hosts), sort_keys=False)
    return parse_inventory(text, "generated.yaml")


def fleet_specs(
    servers: int, *, database: str = "elasticsearch", release: str = "6.10", seed: int = 0
) -> tuple[GroupSpec, list[GroupSpec]]:
    """About `servers` servers, every one on `release`: main (HA of 3, or a DR pair on BoltDB) and a
    deterministic mix of host groups: single hosts, and HA groups of 2 to 4 (or DR pairs on BoltDB)."""
    rng = random.Random(seed)
    grouped = "ha" if database == "elasticsearch" else "dr"
    main = GroupSpec("main", grouped, (release,) * (3 if grouped == "ha" else 2), tenants=1)
    hosts: list[GroupSpec] = []
    left = servers - len(main.releases)
    while left > 0:
        shape = "single" if left == 1 or rng.random() < 0.5 else grouped
        size = 1 if shape == "single" else (2 if shape == "dr" else min(left, rng.randint(2, 4)))
        hosts.append(GroupSpec(f"g{len(hosts)}", shape, (release,) * size, tenants=rng.randint(0, 3)))
        left -= size
    return main, hosts


def fleet(
    servers: int, *, database: str = "elasticsearch", release: str = "6.10", seed: int = 0
) -> Inventory:
    """The inventory of `fleet_specs`, written as YAML and read back."""
    main, hosts = fleet_specs(servers, database=database, release=release, seed=seed)
    return build(database, main, hosts)


def forty_groups_specs(release: str = "6.10") -> tuple[GroupSpec, list[GroupSpec]]:
    """The readability benchmark's deployment (issue 14): a DR main pair, 20 single hosts and 20 DR host
    pairs, two tenants on each host group (80 in all), every server on `release`."""
    main = GroupSpec("main", "dr", (release, release))
    singles = [GroupSpec(f"s{i:02d}", "single", (release,), tenants=2) for i in range(1, 21)]
    pairs = [GroupSpec(f"d{i:02d}", "dr", (release, release), tenants=2) for i in range(1, 21)]
    return main, singles + pairs


def forty_groups_yaml(release: str = "6.10") -> str:
    """`forty_groups_specs` as an inventory file's text, for the CLI and the benchmark."""
    main, hosts = forty_groups_specs(release)
    return yaml.safe_dump(inventory_dict("bolt", main, hosts), sort_keys=False)


def forty_groups(release: str = "6.10") -> Inventory:
    return parse_inventory(forty_groups_yaml(release), "forty-groups.yaml")
