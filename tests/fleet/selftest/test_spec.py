"""Tests of the fleet spec: the YAML form, defaults, and what it rejects."""

from __future__ import annotations

import pytest

from tests.fleet import spec as spec_module
from tests.fleet.spec import Faults, FleetSpec


def test_the_documented_yaml_form_loads_with_its_defaults() -> None:
    docstring = spec_module.__doc__ or ""
    example = docstring.split("::", 1)[1]
    fleet = FleetSpec.from_yaml(example)
    deployment = fleet.deployment("single")
    assert (deployment.main.kind, deployment.hosts[0].kind) == ("single", "single")
    h1 = deployment.hosts[0].primary
    assert (h1.version, h1.sudo_password, h1.faults.tmp_noexec) == ("6.10.0", "pw", True)
    assert deployment.main.primary.version == "6.11.0"
    assert fleet.download_token == "t0ken"


def test_ha_and_dr_groups_and_the_database_default() -> None:
    fleet = spec_module.topology_spec()
    assert fleet.deployment("hamain").database == "elasticsearch"
    assert fleet.deployment("drmain").database == "bolt"
    pair = fleet.deployment("drhosts").hosts[0]
    assert (pair.primary.name, pair.secondary.name) == ("drhosts-d1p", "drhosts-d1s")


def test_unknown_faults_and_duplicate_server_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.from_dict({"installer_explodes": True})
    duplicate = {
        "deployments": [
            {"name": "a", "main": {"server": {"name": "x"}}},
            {"name": "b", "main": {"server": {"name": "x"}}},
        ]
    }
    with pytest.raises(ValueError, match="unique"):
        FleetSpec.from_dict(duplicate)
