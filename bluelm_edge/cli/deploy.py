"""`bluelm-edge deploy`: install the app and push a bundle to phones, verified and resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bluelm_edge.cli.devices import AllOpt, JsonOpt, SerialOpt


def deploy(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (from `bluelm-edge export`).")],
    apk: Annotated[Path | None, typer.Option("--apk", help="Install or update this APK first.")] = None,
    serial: SerialOpt = None,
    all_devices: AllOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Push even if the backend/SoC does not fit.")] = False,
    target: Annotated[
        str, typer.Option("--target", help="app: the app's files folder; runner: /data/local/tmp/bluelm")
    ] = "app",
    as_json: JsonOpt = False,
) -> None:
    """Push BUNDLE to the phone (sha256-checked, resumable), optionally installing the app APK.

    Example: bluelm-edge deploy ./bluelm-bundle --apk bluelm-demo.apk -s R5CX1234
    """
    from bluelm_edge.device.adb import select_devices
    from bluelm_edge.device.bundle import TARGETS, read_manifest
    from bluelm_edge.device.deploy import deploy as run_deploy
    from bluelm_edge.errors import UsageError

    if target not in TARGETS:
        raise UsageError(f"--target must be one of {', '.join(TARGETS)}, not {target!r}")
    if apk is not None and not apk.is_file():
        raise UsageError(f"--apk {apk}: no such file; build it with `bluelm-edge package`")
    manifest = read_manifest(bundle)
    console = Console(stderr=as_json)
    results = []
    for device in select_devices(serial, all_devices):
        r = run_deploy(device, bundle, manifest, apk=apk, force=force, target=target)
        results.append(r.to_dict())
        console.print(f"{r.serial}: {r.bundle_id} -> {r.path}: pushed {r.pushed} file(s) "
                      f"({r.bytes_pushed / 1e6:.1f} MB), {r.skipped} already there, {r.seconds:.1f} s")
    if as_json:
        typer.echo(json.dumps(results, indent=2))


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
