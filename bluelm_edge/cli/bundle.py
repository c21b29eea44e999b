"""`bluelm-edge bundle verify DIR`: check a bundle against its manifest, one line a problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bluelm_edge.cli.common import JsonOpt
from bluelm_edge.errors import BlueLMError

bundle_app = typer.Typer(help="Inspect exported bundles.\n\nExample: bluelm-edge bundle verify ./bluelm-bundle",
                         no_args_is_help=True)


class BundleInvalid(BlueLMError):
    """`bundle verify` found problems (they were printed, one a line)."""


@bundle_app.command("verify")
def verify(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder to check.")],
    json_out: JsonOpt = False,
) -> None:
    """Check the manifest, every file's size and sha256, and the program (header, then loaded by the runtime).

    Example: bluelm-edge bundle verify ./bluelm-bundle
    """
    from bluelm_edge.export.bundle import verify_bundle

    problems = verify_bundle(bundle_dir, runtime=True)
    if json_out:
        typer.echo(json.dumps({"bundle": str(bundle_dir), "ok": not problems, "problems": problems}, indent=2))
    else:
        for line in problems:
            typer.echo(f"{bundle_dir}: {line}" if not line.startswith(str(bundle_dir)) else line, err=True)
        if not problems:
            typer.echo(f"{bundle_dir}: ok")
    if problems:
        raise BundleInvalid(f"{bundle_dir}: {len(problems)} problem(s); re-export with `bluelm-edge export`")


def register(app: typer.Typer) -> None:
    app.add_typer(bundle_app, name="bundle")
