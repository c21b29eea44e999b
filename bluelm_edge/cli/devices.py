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
    Console().print(_table(rows))


def _table(rows: list[dict]) -> Table:
    table = Table(title="attached phones")
    for col in ("serial", "state", "model", "SoC", "Android", "ABI", "RAM GB", "free GB", "backends", "bundles"):
        table.add_column(col)
    for r in rows:
        soc = f"{r['soc']} ({r['soc_name']})" if r.get("soc") else r.get("soc_props", {}).get("ro.board.platform", "")
        fits = (f"{Path(b).name}: {v}" for b, v in r.get("bundle_fit", {}).items())
        bundles = [*r.get("bundles_on_device", []), *fits]
        table.add_row(r["serial"], r["state"], r.get("model") or r.get("error", ""), soc or "",
                      r.get("android") or "", r.get("abi") or "", str(r.get("ram_gb", "")),
                      str(r.get("free_storage_gb", "")), ", ".join(r.get("backends", [])), "\n".join(bundles))
    return table


def register(app: typer.Typer) -> None:
    app.command("devices")(devices)
