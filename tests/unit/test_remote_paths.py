"""Every path on a server comes from RemotePaths, built from installer.directory and commands.backup_dir."""

from __future__ import annotations

import yaml

from tests.inventories import GroupSpec, inventory_dict
from xsoar_mt.inventory import parse_inventory
from xsoar_mt.remote_paths import RemotePaths


def test_the_installer_directory_holds_installers_install_records_marker_lock_and_extract() -> None:
    paths = RemotePaths("/var/tmp/xsoar-mt/")  # a trailing slash is not doubled
    assert paths.installer("6.12") == "/var/tmp/xsoar-mt/demisto-6.12.sh"
    assert [paths.install_record("6.12", r) for r in ("log", "rc", "pid", "boot")] == [
        "/var/tmp/xsoar-mt/install-6.12.log",
        "/var/tmp/xsoar-mt/install-6.12.rc",
        "/var/tmp/xsoar-mt/install-6.12.pid",
        "/var/tmp/xsoar-mt/install-6.12.boot",
    ]
    assert paths.marker == "/var/tmp/xsoar-mt/state.json"
    assert paths.marker_draft("tmp") == "/var/tmp/xsoar-mt/state.json.tmp"
    assert (paths.lock, paths.lock_owner) == (
        "/var/tmp/xsoar-mt/run.lock",
        "/var/tmp/xsoar-mt/run.lock/owner.json",
    )
    assert paths.extract == "/var/tmp/xsoar-mt/extract"
    assert paths.root == "/var/tmp/xsoar-mt"


def test_the_root_directory_stays_itself_and_names_join_it_once() -> None:
    paths = RemotePaths("/")
    assert paths.root == "/" and paths.marker == "/state.json"


def test_paths_come_from_the_inventory_s_installer_directory_and_backup_dir() -> None:
    data = inventory_dict("bolt", GroupSpec("main", "single", ("6.11",)), [])
    data["installer"] = {"directory": "/opt/xm"}
    data["commands"] = {"backup_dir": "/srv/backups"}
    paths = RemotePaths.of(parse_inventory(yaml.safe_dump(data), "inv.yaml"))
    assert (paths.directory, paths.backups) == ("/opt/xm", "/srv/backups")
    assert paths.installer("6.11") == "/opt/xm/demisto-6.11.sh"
