"""`inventory validate`: an inventory read and checked, and its topology as data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xsoar_mt.errors import ExitCode, InventoryError
from xsoar_mt.inventory import Inventory, load_inventory


@dataclass(frozen=True)
class InventoryRequest:
    path: Path


@dataclass(frozen=True)
class InventoryResult:
    """The inventory when it is valid, else every problem found (file:line: key.path: message)."""

    inventory: Inventory | None
    problems: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return int(ExitCode.OK if self.inventory is not None else InventoryError.exit_code)

    def to_dict(self) -> dict[str, Any]:
        if self.inventory is None:
            return {"valid": False, "problems": list(self.problems)}
        from xsoar_mt.topology import topology_dict

        return {"valid": True, "inventory": topology_dict(self.inventory)}


def check_inventory(request: InventoryRequest) -> InventoryResult:
    """The inventory, or its problems. It needs no session: no state, no secret, no server."""
    try:
        return InventoryResult(load_inventory(request.path))
    except InventoryError as exc:
        return InventoryResult(None, tuple(exc.problems))
