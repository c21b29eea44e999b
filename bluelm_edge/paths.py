"""Where the project's data folders live, in a source checkout and in an installed wheel.

The top-level data folders (`qnn_backends/`, `calibration/`, `android_demo/`) travel inside the
wheel as `bluelm_edge/_data/<name>` (hatchling force-include); in a checkout they sit beside the
package. The shipped tiny checkpoint lives in `bluelm_edge/assets/`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"
DEFAULT_MODEL_DIR = ASSETS_DIR / "bluelm-tiny"


def data_dir(name: str) -> Path:
    """Return the folder `name` (e.g. "qnn_backends") from the wheel or the source checkout."""
    for candidate in (PACKAGE_DIR / "_data" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data folder {name!r} not found next to {PACKAGE_DIR}; reinstall bluelm-edge")
