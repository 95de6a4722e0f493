"""Every path xsoar-mt uses on a server, from `installer.directory` and `commands.backup_dir`.

The installer directory holds the installer of each release (`demisto-<release>.sh`), the records of each
detached installer run (`install-<release>.{pid,rc,boot,log}`), xsoar-mt's marker (`state.json`), the
deployment lock (`run.lock/owner.json`, on main), the record of each installer `upgrade prepare` left
(`prepared-<release>.json`) and the automatic extraction directory (`extract`).
Backups go to `commands.backup_dir`. Paths here are plain text: quote them (`shellwords.word`) in a command.
"""

from __future__ import annotations

from dataclasses import dataclass

from xsoar_mt.inventory import Inventory

MARKER_NAME = "state.json"
PREPARED_PREFIX = "prepared-"  # prepared-<release>.json: what `upgrade prepare` fetched and verified
INSTALL_RECORDS = ("log", "rc", "pid", "boot")  # what a detached installer run leaves, one file each
INSTALLER_JOBS = ("install", "purge")  # what a detached installer run does: its records are named after it


@dataclass(frozen=True)
class RemotePaths:
    directory: str  # installer.directory, as the inventory gives it
    backups: str | None = None  # commands.backup_dir

    @classmethod
    def of(cls, inventory: Inventory) -> RemotePaths:
        return cls(inventory.installer.directory, inventory.commands.backup_dir)

    @property
    def backup_dir(self) -> str:
        """Where backups go (`commands.backup_dir`): only for paths made from an inventory (`of`)."""
        assert self.backups is not None, "RemotePaths made without commands.backup_dir"
        return self.backups

    @property
    def base(self) -> str:
        """The directory without its trailing slash, to join names to (empty for `/`)."""
        return self.directory.rstrip("/")

    @property
    def root(self) -> str:
        """The directory itself, as a directory to create or enter (`/` stays `/`)."""
        return self.base or "/"

    def installer(self, release: str) -> str:
        """Where the installer for `release` is placed on every server."""
        return f"{self.base}/demisto-{release}.sh"

    def prepared(self, release: str) -> str:
        """The record `upgrade prepare` leaves of the installer for `release` it fetched and verified."""
        return f"{self.base}/{PREPARED_PREFIX}{release}.json"

    def install_record(self, release: str, record: str, job: str = "install") -> str:
        """One record of a detached installer run: `log`, `rc` (exit code), `pid` or `boot` (boot id).

        `job` is `install`, or `purge` for rollback's `-- -purge` run (its records never look like an
        install in flight)."""
        assert record in INSTALL_RECORDS, record
        assert job in INSTALLER_JOBS, job
        return f"{self.base}/{job}-{release}.{record}"

    @property
    def marker(self) -> str:
        """xsoar-mt's marker: the version it last saw or installed, and when."""
        return f"{self.base}/{MARKER_NAME}"

    def marker_draft(self, suffix: str) -> str:
        """Where a new marker is written before it is moved over the marker (`tmp`, `installer`)."""
        return f"{self.marker}.{suffix}"

    @property
    def backup_record(self) -> str:
        """The record of the backup taken before the last upgrade (JSON, rollback/backups.py), beside the
        marker: the marker is rewritten by every install, this only by a backup."""
        return f"{self.base}/backup-record.json"

    @property
    def lock(self) -> str:
        """The deployment lock: a directory made with `mkdir` on main."""
        return f"{self.base}/run.lock"

    @property
    def lock_owner(self) -> str:
        return f"{self.lock}/owner.json"

    @property
    def lock_guard(self) -> str:
        """The file every look-then-change of the lock holds a `flock` on, so a compare and its change are
        one step."""
        return f"{self.lock}.guard"

    @property
    def extract(self) -> str:
        """Where the installer extracts itself when /tmp does not allow exec (`-target`)."""
        return f"{self.base}/extract"
