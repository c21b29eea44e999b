"""`bluelm-edge devices`: the attached phones, their SoC and which backends and bundles fit them.

Also defines the phone-choosing options shared by `deploy` and `profile`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bluelm_edge.cli import tables

SerialOpt = Annotated[str | None, typer.Option("--serial", "-s", help="Phone serial (see `bluelm-edge devices`).")]
AllOpt = Annotated[bool, typer.Option("--all", help="Act on every attached phone.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def devices(
    bundle: Annotated[
        list[Path] | None, typer.Option("--bundle", "-b", help="Also say whether this bundle fits.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List attached phones: serial, model, SoC, Android, ABI, RAM, free storage, fitting backends/bundles.

    Example: bluelm-edge devices --bundle ./bluelm-bundle
    """
    from bluelm_edge.device.info import describe_all

    rows = describe_all(list(bundle or []))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    if not rows:
        console.print(NO_PHONE, soft_wrap=True, highlight=False)
        return
    console.print(tables.whole(_table(rows)))
    for line in _bundle_lines(rows):
        console.print(line, highlight=False, markup=False)  # wrapped between words: ids stay whole


NO_PHONE = "no phone attached: connect one with USB debugging on (check `adb devices`), or `adb connect HOST:PORT`"


def _table(rows: list[dict]) -> Table:
    """One row a phone; every cell whole at 80 columns (bundles are listed below the table)."""
    table = tables.table("attached phones", "serial", "state", "model", "SoC", "Android ABI", "RAM/free GB",
                         "backends")
    table.padding = (0, 1, 0, 0)
    for r in rows:
        soc = f"{r['soc']} ({r['soc_name']})" if r.get("soc") else r.get("soc_props", {}).get("ro.board.platform", "")
        system = f"{r.get('android') or ''} {r.get('abi') or ''}".strip()
        memory = f"{r['ram_gb']} / {r['free_storage_gb']}" if "ram_gb" in r else ""
        table.add_row(r["serial"], r["state"], r.get("model") or r.get("error", ""), soc or "", system, memory,
                      ", ".join(r.get("backends", [])))
    return table


def _bundle_lines(rows: list[dict]) -> list[str]:
    """`SERIAL: on the phone: ID` and `SERIAL: BUNDLE: fits/no ...` lines (long ids stay unbroken)."""
    lines = []
    for r in rows:
        lines += [f"{r['serial']}: on the phone: {b}" for b in r.get("bundles_on_device", [])]
        lines += [f"{r['serial']}: {Path(b).name}: {v}" for b, v in r.get("bundle_fit", {}).items()]
    return lines


def register(app: typer.Typer) -> None:
    app.command("devices")(devices)
