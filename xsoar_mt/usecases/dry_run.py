"""What a dry run stands in for: the download link (its recording shells answer by command kind, in
xsoar_mt/engine/dry_run.py)."""

from __future__ import annotations

# A dry run never reads the real link; this stands in for it (the fetch step shows it masked anyway).
DRY_RUN_LINK = "https://download.demisto.com/download-params/?token=dry-run&eula=accept"
