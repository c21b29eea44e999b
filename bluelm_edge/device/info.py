"""What `bluelm-edge devices` reports about each attached phone: identity, SoC, memory, storage,
which backends fit it, which bundles are on it and whether given local bundles would fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bluelm_edge.device.adb import Device, list_devices
from bluelm_edge.device.bundle import TARGETS, read_manifest
from bluelm_edge.device.deploy import check_fit
from bluelm_edge.device.errors import BundleMismatch, DeviceError
from bluelm_edge.socs import load_socs, match_soc


def describe(device: Device, bundles: list[Path] = ()) -> dict[str, Any]:
    """One phone's facts as a JSON-ready dict."""
    props = device.props()
    soc = match_soc(props)
    backends = list(soc.backends) if soc else list(load_socs()["cpu"].backends)
    mem_kb = device.mem_total_kb()
    return {
        "serial": device.serial, "state": "device",
        "model": props.get("ro.product.model"), "manufacturer": props.get("ro.product.manufacturer"),
        "soc": soc.id if soc else None, "soc_name": soc.name if soc else None,
        "soc_props": {k: props.get(k) for k in ("ro.soc.model", "ro.board.platform", "ro.hardware")},
        "android": props.get("ro.build.version.release"), "sdk": props.get("ro.build.version.sdk"),
        "abi": props.get("ro.product.cpu.abi"),
        "ram_gb": round(mem_kb / 1024**2, 1) if mem_kb else None,
        "free_storage_gb": round(device.free_bytes("/sdcard") / 1e9, 1),
        "backends": backends,
        "bundles_on_device": [n for n in device.listdir(TARGETS["app"]) if not n.startswith(".")],
        "bundle_fit": {str(b): _fit(device, b) for b in bundles},
    }


def _fit(device: Device, bundle: Path) -> str:
    try:
        return "fits: " + check_fit(device, read_manifest(bundle), force=False)
    except BundleMismatch as err:
        return "no: " + str(err).split(": ", 1)[-1].removesuffix("; pass --force to push it anyway")


def describe_all(bundles: list[Path] = ()) -> list[dict[str, Any]]:
    """Every phone the adb server sees; phones that cannot answer get their state and the error."""
    rows = []
    for serial, state in list_devices():
        if state != "device":
            rows.append({"serial": serial, "state": state})
            continue
        try:
            rows.append(describe(Device(serial), bundles))
        except DeviceError as err:
            rows.append({"serial": serial, "state": "error", "error": str(err)})
    return rows
