"""A fleet of real OpenSSH servers on loopback that behave like Cortex XSOAR 6.x servers (issue 3)."""

from tests.fleet.fleet import Fleet, FleetError, Server, stop_root
from tests.fleet.spec import DeploymentSpec, Faults, FleetSpec, GroupSpec, ServerSpec

__all__ = [
    "DeploymentSpec",
    "Faults",
    "Fleet",
    "FleetError",
    "FleetSpec",
    "GroupSpec",
    "Server",
    "ServerSpec",
    "stop_root",
]
