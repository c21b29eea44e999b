"""Entry point: wires the command modules into one Typer app and maps errors to one line.

Each module in COMMAND_MODULES exposes `register(app: typer.Typer) -> None`. Errors a user can
cause (BlueLMError) print one line and exit 1 (2 for usage); anything else is a bug and shows a
traceback only with BLUELM_DEBUG=1.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from bluelm_edge.errors import BlueLMError

COMMAND_MODULES = [
    "bluelm_edge.cli.info",
    "bluelm_edge.cli.chat",
    "bluelm_edge.cli.doctor",
    "bluelm_edge.cli.export",
    "bluelm_edge.cli.bundle",
    "bluelm_edge.cli.run",
    "bluelm_edge.cli.package",
    "bluelm_edge.cli.devices",
    "bluelm_edge.cli.deploy",
    "bluelm_edge.cli.profile",
    "bluelm_edge.cli.train",
    "bluelm_edge.cli.eval",
    "bluelm_edge.cli.calibrate",
    "bluelm_edge.cli.quantize",
]

app = typer.Typer(
    name="bluelm-edge",
    help="BlueLM-2.5-3B-style multimodal reasoning models from checkpoint to Android phone.\n\n"
    "Example: bluelm-edge export && bluelm-edge run ./bluelm-bundle --prompt 'What is 530+627?'",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def run() -> None:
    """Console-script entry: run the app, turning user errors into one line and an exit code."""
    try:
        app(standalone_mode=False)
    except BlueLMError as err:
        if os.environ.get("BLUELM_DEBUG") == "1":
            raise
        err_console.print(f"[red]error:[/red] {err}", highlight=False, markup=True)
        sys.exit(err.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as err:
        show = getattr(err, "show", None)  # click/typer usage errors print themselves
        if callable(show) and hasattr(err, "exit_code"):
            show()
            sys.exit(err.exit_code)
        if os.environ.get("BLUELM_DEBUG") == "1":
            raise
        err_console.print(
            f"[red]internal error:[/red] {type(err).__name__}: {err} (rerun with BLUELM_DEBUG=1 for the traceback)"
        )
        sys.exit(1)


if __name__ == "__main__":
    run()
