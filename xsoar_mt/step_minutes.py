"""The actions whose minutes an inventory's `durations` may set, with their defaults, and the ones a run
measures per server: below both the inventory and the estimate, which read them."""

from __future__ import annotations

from collections.abc import Mapping

# Expected minutes per action when the inventory's `durations` leaves one out (docs/reference/inventory.md).
# A backup archives /var/lib/demisto; a fetch moves an installer of about 1 GiB; `start` is the service
# command returning, `healthy` the wait until /health answers after it.
DEFAULT_MINUTES: Mapping[str, float] = {
    "backup": 10.0,
    "fetch": 5.0,
    "stop": 1.0,
    "install": 15.0,
    "start": 1.0,
    "healthy": 5.0,
    "validate": 1.0,
}
DURATION_KEYS: tuple[str, ...] = tuple(DEFAULT_MINUTES)
# What a run measures on each server and the deployment's local record keeps (known.py).
MEASURED_KEYS: tuple[str, ...] = ("stop", "install", "start", "healthy")
