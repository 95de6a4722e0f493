"""The one inventory builder of the tests: inventories as data, shaped as an operator writes the YAML.

Defaults mirror an operator's first inventory: no `version:`, no database (BoltDB), every other section
left out; a test adds what it is about. `inventory()` gives the document's data, `as_yaml()` its text,
`parsed()` the model read through the same validation as an operator's file, `write()` a file.

Also the generated deployments shared by the property tests and the benchmark (bench/run.py): a
deployment described by `GroupSpec`s, written out with the same pieces.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from xsoar_mt.inventory import Inventory, parse_inventory

Data = dict[str, Any]


def server(name: str, address: str, version: str | None = None, **fields: Any) -> Data:
    """One server: name and address; a version or other keys (ssh_port, ssh) only when given."""
    return {"name": name, "address": address, **({"version": version} if version else {}), **fields}


def single(server_data: Data) -> Data:
    return {"server": server_data}


def ha(*servers: Data, load_balancer: str | None = None) -> Data:
    return {"ha": {**({"load_balancer": load_balancer} if load_balancer else {}), "servers": list(servers)}}


def dr(primary: Data, secondary: Data) -> Data:
    return {"dr": {"primary": primary, "secondary": secondary}}


def tenant_list(tenants: Iterable[str | Data]) -> list[Data]:
    """Tenants by name (`acme`) or as written (`{"name": "acme", "port": 18600}`)."""
    return [{"name": t} if isinstance(t, str) else t for t in tenants]


def main(shape: Data, tenants: Iterable[str | Data] = ()) -> Data:
    """Main: a shape (`single`, `ha`, `dr`) and its tenants, if any."""
    listed = tenant_list(tenants)
    return {**shape, **({"tenants": listed} if listed else {})}


def host(name: str, shape: Data, tenants: Iterable[str | Data] = (), **fields: Any) -> Data:
    """A host group: its name, a shape, its tenants if any, and other keys (wave) when given."""
    listed = tenant_list(tenants)
    return {"name": name, **shape, **({"tenants": listed} if listed else {}), **fields}


def inventory(main_group: Data, hosts: Iterable[Data] = (), *, name: str = "acme", **sections: Any) -> Data:
    """The document: `deployment` (name, and any of its other keys given as `deployment={...}`), the
    sections given (ssh, installer, commands, health, durations, releases), main and the hosts."""
    deployment = {"name": name, **sections.pop("deployment", {})}
    return {
        "inventory_version": 1,
        "deployment": deployment,
        **sections,
        "main": main_group,
        "hosts": list(hosts),
    }


def as_yaml(data: Mapping[str, Any], dumper: type[yaml.SafeDumper] = yaml.SafeDumper, **dump: Any) -> str:
    """The document's text, keys in the order given (`dumper`: libyaml's CSafeDumper where speed counts)."""
    return yaml.dump(data, Dumper=dumper, sort_keys=False, **dump)


def parsed(data: Mapping[str, Any], filename: str = "inv.yaml", **dump: Any) -> Inventory:
    """The inventory as xsoar-mt reads it from that text."""
    return parse_inventory(as_yaml(data, **dump), filename)


def write(path: Path, data: Mapping[str, Any], header: str = "") -> Path:
    path.write_text(header + as_yaml(data))
    return path


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> Data:
    """Deep-merge `overrides` into a copy of `base`; a value of None deletes the key."""
    result = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


# -- generated deployments ---------------------------------------------------------------------------

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


def inventory_dict(database: str, main_spec: GroupSpec, hosts: list[GroupSpec]) -> Data:
    """The generated deployment's document; addresses are unique 10.x.y.z."""
    counter = iter(range(1, 10**7))

    def member(name: str, release: str) -> Data:
        n = next(counter)
        return server(name, f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", release)

    def shape(spec: GroupSpec) -> Data:
        servers = [member(n, r) for n, r in zip(spec.server_names(), spec.releases, strict=True)]
        if spec.shape == "single":
            return single(servers[0])
        if spec.shape == "ha":
            return ha(*servers, load_balancer=f"https://{spec.name}.example")
        return dr(servers[0], servers[1])

    def tenants(spec: GroupSpec) -> list[str]:
        return [f"{spec.name}-t{i}" for i in range(spec.tenants)]

    deployment: Data = {"database": database}
    if database == "elasticsearch":
        deployment["elasticsearch_url"] = "https://es.example:9200"
    main_group = main(shape(main_spec), tenants(main_spec))
    hosts_data = [host(h.name, shape(h), tenants(h)) for h in hosts]
    return inventory(
        main_group, hosts_data, name="generated", deployment=deployment, durations={"install": 15, "start": 5}
    )


def build(database: str, main_spec: GroupSpec, hosts: list[GroupSpec]) -> Inventory:
    return parse_inventory(as_yaml(inventory_dict(database, main_spec, hosts)), "generated.yaml")


def fleet_specs(
    servers: int, *, database: str = "elasticsearch", release: str = "6.10", seed: int = 0
) -> tuple[GroupSpec, list[GroupSpec]]:
    """About `servers` servers, every one on `release`: main (HA of 3, or a DR pair on BoltDB) and a
    deterministic mix of host groups: single hosts, and HA groups of 2 to 4 (or DR pairs on BoltDB)."""
    rng = random.Random(seed)
    grouped = "ha" if database == "elasticsearch" else "dr"
    main_spec = GroupSpec("main", grouped, (release,) * (3 if grouped == "ha" else 2), tenants=1)
    hosts: list[GroupSpec] = []
    left = servers - len(main_spec.releases)
    while left > 0:
        shape = "single" if left == 1 or rng.random() < 0.5 else grouped
        size = 1 if shape == "single" else (2 if shape == "dr" else min(left, rng.randint(2, 4)))
        hosts.append(GroupSpec(f"g{len(hosts)}", shape, (release,) * size, tenants=rng.randint(0, 3)))
        left -= size
    return main_spec, hosts


def fleet(
    servers: int, *, database: str = "elasticsearch", release: str = "6.10", seed: int = 0
) -> Inventory:
    """The inventory of `fleet_specs`, written as YAML and read back."""
    main_spec, hosts = fleet_specs(servers, database=database, release=release, seed=seed)
    return build(database, main_spec, hosts)


def forty_groups_specs(release: str = "6.10") -> tuple[GroupSpec, list[GroupSpec]]:
    """The readability benchmark's deployment (issue 14): a DR main pair, 20 single hosts and 20 DR host
    pairs, two tenants on each host group (80 in all), every server on `release`."""
    main_spec = GroupSpec("main", "dr", (release, release))
    singles = [GroupSpec(f"s{i:02d}", "single", (release,), tenants=2) for i in range(1, 21)]
    pairs = [GroupSpec(f"d{i:02d}", "dr", (release, release), tenants=2) for i in range(1, 21)]
    return main_spec, singles + pairs


def forty_groups_yaml(release: str = "6.10") -> str:
    """`forty_groups_specs` as an inventory file's text, for the CLI and the benchmark."""
    main_spec, hosts = forty_groups_specs(release)
    return as_yaml(inventory_dict("bolt", main_spec, hosts))


def forty_groups(release: str = "6.10") -> Inventory:
    return parse_inventory(forty_groups_yaml(release), "forty-groups.yaml")


# Shorthands for the groups of a generated deployment, by shape; each server on `release` (6.11).


def single_group(name: str, release: str = "6.11", tenants: int = 0) -> GroupSpec:
    return GroupSpec(name, "single", (release,), tenants)


def ha_group(name: str, *releases: str, tenants: int = 0) -> GroupSpec:
    return GroupSpec(name, "ha", releases, tenants)


def dr_group(name: str, primary: str = "6.11", secondary: str | None = None, tenants: int = 0) -> GroupSpec:
    return GroupSpec(name, "dr", (primary, secondary or primary), tenants)


def bolt(main_spec: GroupSpec, *hosts: GroupSpec) -> Inventory:
    return build("bolt", main_spec, list(hosts))


def elastic(main_spec: GroupSpec, *hosts: GroupSpec) -> Inventory:
    return build("elasticsearch", main_spec, list(hosts))


def five(release: str = "6.11") -> Inventory:
    """Main and five host groups (one a DR pair), a tenant each."""
    hosts = [single_group(f"h{i}", release, tenants=1) for i in range(1, 5)]
    return build(
        "bolt", single_group("main", release, tenants=1), [*hosts, dr_group("d5", release, tenants=1)]
    )
