"""Pytest fixtures for the fleet: one session-scoped fleet holding every topology, reset per test.

``fleet_session`` starts the fleet once (``spec.topology_spec()``: deployments ``single``, ``hamain``,
``drmain``, ``hahosts``, ``drhosts``, ``mixed``); ``fleet`` resets it before each test (versions and
faults back to the spec, logs emptied, homes cleaned; only what changed is restarted). Without
``/usr/sbin/sshd`` the fixtures raise ``FleetError``: the tests fail with that message, never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet, require_sshd
from tests.fleet.spec import topology_spec


@pytest.fixture(scope="session")
def fleet_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_sshd()
    fleet = Fleet(topology_spec(), Path(tmp_path_factory.mktemp("fleet")))
    fleet.start()
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
def fleet(fleet_session: Fleet) -> Fleet:
    fleet_session.reset()
    return fleet_session
