"""Benchmark: installer delivery in upload mode. The one local download (HTTPS, verified) and the SFTP
upload plus the server's sha256 check, to one server and to several at once, of a large file.

Real installers are over a gigabyte; this uses SIZE_MIB to keep `make bench` short, and reports MiB/s.
Everything runs on loopback on this machine, so the figures are the tool's own cost (TLS, SSH, sha256
on both ends), not a network's.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZE_MIB = 256
SERVERS = 4


def measure() -> dict[str, Any]:
    from tests.download_stub import download_server
    from tests.fleet.fleet import Fleet
    from tests.fleet.spec import sized_spec
    from xsoar_mt.download import download_installer
    from xsoar_mt.installer import installer_path, upload_check_command
    from xsoar_mt.usecases.session import Session

    with tempfile.TemporaryDirectory(prefix="xsoar-mt-bench-") as root:
        work = Path(root)
        vendor = work / "vendor"
        vendor.mkdir()
        with (vendor / "demisto-6.12.sh").open("wb") as handle:
            for _ in range(SIZE_MIB):
                handle.write(os.urandom(1 << 20))
        with download_server(vendor, "bench-token", work / "stub") as stub:
            before = os.environ.get("SSL_CERT_FILE")
            os.environ["SSL_CERT_FILE"] = str(stub.ca_file)  # trust the stub's own certificate
            try:
                began = time.monotonic()
                local = download_installer(stub.link(), "6.12", None, work / "cache")
                download_seconds = time.monotonic() - began
            finally:
                if before is None:
                    del os.environ["SSL_CERT_FILE"]
                else:
                    os.environ["SSL_CERT_FILE"] = before
        with Fleet(sized_spec(SERVERS), work / "fleet") as fleet:
            session = Session(fleet.inventory("bench"), work / "state").__enter__()
            inventory, pool = session.inventory, session.shells
            names = [s.name for s in inventory.servers][:SERVERS]
            remote = installer_path(inventory.installer, "6.12")
            check = upload_check_command(inventory.installer, "6.12")

            def deliver(name: str) -> float:
                shell = pool(name)
                shell.run("mkdir -p xsoar-mt")
                began = time.monotonic()
                shell.put(local.path, remote)
                result = shell.run(check, stdin=local.sha256 + "\n", timeout=300)
                if not result.ok:
                    raise RuntimeError(f"{name}: the check failed: {result.tail(3)}")
                return time.monotonic() - began

            try:
                one = deliver(names[0])
                began = time.monotonic()
                with ThreadPoolExecutor(max_workers=len(names)) as workers:
                    each = list(workers.map(deliver, names))
                many_wall = time.monotonic() - began
            finally:
                session.close()
        shutil.rmtree(work / "cache", ignore_errors=True)
    return {
        "delivery_size_mib": SIZE_MIB,
        "download_seconds": round(download_seconds, 2),
        "download_mib_per_s": round(SIZE_MIB / download_seconds, 1),
        "upload_one_server_seconds": round(one, 2),
        "upload_one_server_mib_per_s": round(SIZE_MIB / one, 1),
        "upload_servers": len(names),
        "upload_concurrent_wall_seconds": round(many_wall, 2),
        "upload_concurrent_slowest_server_seconds": round(max(each), 2),
        "upload_concurrent_aggregate_mib_per_s": round(SIZE_MIB * len(names) / many_wall, 1),
    }


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key}: {value}")
