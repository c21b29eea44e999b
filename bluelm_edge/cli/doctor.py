"""`bluelm-edge doctor`: what this machine can do (versions, vendor SDKs, Android tools, devices),
the ExecuTorch runtime the app pins against the exporter's, and (given a bundle) what it needs."""

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


def _runtime(bundle: Path | None) -> dict:
    """The app's pinned runtime vs the exporter's wheel; with a bundle, the flavour and AAR it needs."""
    from bluelm_edge import contract
    from bluelm_edge.android import runtime as rt

    pinned, exporter = rt.carried_version(), _version("executorch")
    out: dict = {"app_executorch": pinned, "exporter_executorch": exporter,
                 "agree": exporter is not None and contract.release(exporter) == contract.release(pinned)}
    if bundle is not None:
        from bluelm_edge.export.bundle import read_manifest

        out["bundle"] = {"path": str(bundle), **rt.requirement(read_manifest(bundle)).to_dict()}
    return out


def collect(bundle: Path | None = None) -> dict:
    """Everything doctor reports, as plain data."""
    qnn_ok, qnn_detail = _qnn_sdk()
    mtk_ok, mtk_detail = _neuropilot()
    return {
        "versions": {d: _version(d) for d in ("bluelm-edge", "torch", "executorch", "torchao", "transformers")},
        "qnn_sdk": {"found": qnn_ok, "detail": qnn_detail},
        "neuropilot": {"found": mtk_ok, "detail": mtk_detail},
        "tools": {t: shutil.which(t) for t in ANDROID_TOOLS},
        "android_builds": _android_builds(),
        "runtime": _runtime(bundle),
        "devices": _devices(),
    }


def doctor(
    bundle: Path | None = typer.Argument(None, help="A bundle: say which app flavour and ExecuTorch AAR it needs."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Report versions, vendor SDKs, Android build tools, the app's ExecuTorch runtime and devices.

    Example: bluelm-edge doctor ./bluelm-bundle --json
    """
    report = collect(bundle)
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
    for label, value in _describe_runtime(report["runtime"]):
        table.add_row(label, value)
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


def _describe_runtime(info: dict) -> list[tuple[str, str]]:
    same = "[green]agree[/green]" if info["agree"] else "[red]differ: bundles may be refused[/red]"
    rows = [("app ExecuTorch runtime", f"executorch-android {info['app_executorch']} (android_demo/runtime.json); "
             f"exporter executorch {info['exporter_executorch'] or 'not installed'}: {same}")]
    b = info.get("bundle")
    if b:
        verdict = f"[red]refused[/red]: {b['refusal']}" if b["refusal"] else "[green]the app loads it[/green]"
        rows.append(("bundle needs", f"{b['flavour']} flavour: {' + '.join(b['needs'])}; {verdict}"))
    return rows


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
