"""Inventory text for the inventory tests: a small valid inventory to edit, and parsing that either gives
the inventory or, for an invalid one, the list of problems (with the exit code checked)."""

from __future__ import annotations

import pytest

from xsoar_mt.errors import ExitCode, InventoryError
from xsoar_mt.inventory import Inventory, parse_inventory

# Line numbers in the tests that use it count from this text (line 1 is inventory_version).
BASE = """\
inventory_version: 1
deployment:
  name: acme
  database: bolt
main:
  server: {name: main, address: 10.0.0.1, version: 6.11.0}
hosts:
  - name: emea
    server: {name: emea-1, address: 10.0.1.1, version: 6.11.0}
    tenants:
      - name: globex
"""


def parse(text: str) -> Inventory:
    return parse_inventory(text, "inv.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse(text)
    assert caught.value.exit_code is ExitCode.INVALID_INVENTORY
    return caught.value.problems
