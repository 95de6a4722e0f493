"""The inventory: its model (model.py, plain frozen data) and its loader from YAML (loader.py), whose
readers report every problem as `file:line: key.path: message`."""

from xsoar_mt.inventory.loader import INVENTORY_VERSION, load_inventory, parse_inventory
from xsoar_mt.inventory.model import (
    Bastion,
    Commands,
    Group,
    Health,
    InstallerSettings,
    Inventory,
    Role,
    Server,
    SshSettings,
    Tenant,
    Topology,
    url_address,
)
from xsoar_mt.secrets import SecretRef  # the inventory names where each secret comes from

__all__ = [
    "INVENTORY_VERSION",
    "Bastion",
    "Commands",
    "Group",
    "Health",
    "InstallerSettings",
    "Inventory",
    "Role",
    "SecretRef",
    "Server",
    "SshSettings",
    "Tenant",
    "Topology",
    "load_inventory",
    "parse_inventory",
    "url_address",
]
