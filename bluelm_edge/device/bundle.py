"""What the device layer needs of a bundle: its manifest (read in ONE place) and where it lives on
the phone (the app's external files folder, or /data/local/tmp for runner binaries).

Manifests are read through the export module's `bundle.read_manifest` (the one reader, which
verifies sizes and hashes); formats are in docs/contracts.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

APP_PACKAGE = "com.bluelm.edge.demo"
BENCH_ACTIVITY = f"{APP_PACKAGE}/.BenchmarkActivity"
APP_FILES = f"/sdcard/Android/data/{APP_PACKAGE}/files"
RUNNER_ROOT = "/data/local/tmp/bluelm"
TARGETS = {"app": f"{APP_FILES}/bundles", "runner": RUNNER_ROOT}


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    """The bundle's verified manifest.json (sizes and sha256 of every file checked on this machine)."""
    from bluelm_edge.export.bundle import read_manifest as export_read_manifest

    return export_read_manifest(Path(bundle_dir))


def device_dir(bundle_id: str, target: str = "app") -> str:
    """Where a deployed bundle lives on the phone."""
    return f"{TARGETS[target]}/{bundle_id}"


def partial_dir(bundle_id: str, target: str = "app") -> str:
    """The temporary folder a deploy pushes into before renaming it into place."""
    return f"{TARGETS[target]}/.{bundle_id}.partial"
