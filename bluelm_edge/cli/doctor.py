"""`bluelm-edge doctor`: what this machine can do (versions, vendor SDKs, Android tools, devices)."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

ANDROID_TOOLS = ("adb", "java", "javac", "aapt2", "apksigner", "zipalign")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _qnn_sdk() -> tuple[bool, str]:
    root = os.environ.get("QNN_SDK_ROOT", "")
    if not root:
        return False, "QNN_SDK_ROOT is not set (quantize and save lowering-ready programs only)"
    lib = Path(root) / "lib" / "x86_64-linux-clang" / "libQnnHtp.so"
    if lib.is_file():
        return True, f"{root}"
    return False, f"QNN_SDK_ROOT={root} but {lib} is missing"


def _neuropilot() -> tuple[bool, str]:
    found = [m for m in ("mtk_converter", "mtk_neuron") if importlib.util.find_spec(m)]
    if len(found) == 2:
        return True, "mtk_converter and mtk_neuron importable"
    missing = sorted({"mtk_converter", "mtk_neuron"} - set(found))
    return False, f"missing {', '.join(missing)} (MediaTek NeuroPilot SDK wheels)"


def _devices() -> list[str] | str:
    adb = shutil.which(os.environ.get("BLUELM_ADB", "adb"))
    if not adb:
        return "adb not found"
    try:
        out = subprocess.run([adb, "devices"], capture_output=True, text=True, timeout=10).stdout
    except (subprocess.TimeoutExpired, OSError) as err:
        return f"adb failed: {err}"
    return [line.split()[0] for line in out.splitlines()[1:] if line.strip() and "\t" in line]


def _android_builds() -> dict:
    try:
        from bluelm_edge.android import android_build_capabilities
    except ImportError:
        return {"available": False, "detail": "bluelm_edge.android is not installed"}
    return android_build_capabilities()


def collect() -> dict:
    """Everything doctor reports, as plain data."""
    qnn_ok, qnn_detail = _qnn_sdk()
    mtk_ok, mtk_detail = _neuropilot()
    return {
        "versions": {d: _version(d) for d in ("bluelm-edge", "torch", "executorch", "torchao", "transformers")},
        "qnn_sdk": {"found": qnn_ok, "detail": qnn_detail},
        "neuropilot": {"found": mtk_ok, "detail": mtk_detail},
        "tools": {t: shutil.which(t) for t in ANDROID_TOOLS},
        "android_builds": _android_builds(),
        "devices": _devices(),
    }


def doctor(json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """Report versions, vendor SDKs, Android build tools and attached devices.

    Example: bluelm-edge doctor --json
    """
    report = collect()
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    console = Console()
    table = Table(title="bluelm-edge doctor", show_header=True)
    table.add_column("check")
    table.add_column("status")
    for name, ver in report["versions"].items():
        table.add_row(name, ver or "[red]not installed[/red]")
    for key, label in (("qnn_sdk", "Qualcomm QNN SDK"), ("neuropilot", "MediaTek NeuroPilot")):
        item = report[key]
        status = "[green]found[/green] " if item["found"] else "[yellow]missing[/yellow] "
        table.add_row(label, status + item["detail"])
    for tool, path in report["tools"].items():
        table.add_row(tool, path or "[yellow]not found[/yellow]")
    for build, info in report["android_builds"].items():
        table.add_row(f"APK build: {build}", _describe_build(info))
    devices = report["devices"]
    table.add_row("devices", ", ".join(devices) if isinstance(devices, list) and devices else str(devices or "none"))
    console.print(table)


def _describe_build(info: object) -> str:
    if not isinstance(info, dict):
        return str(info)
    if info.get("available"):
        note = "" if info.get("runs_models", True) else " (no ExecuTorch native libraries: UI only)"
        return "[green]can build[/green]" + note
    return "[yellow]cannot build[/yellow]: missing " + ", ".join(info.get("missing", []))


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
