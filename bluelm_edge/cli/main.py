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
from rich.markup import escape

from bluelm_edge.errors import BlueLMError

COMMAND_MODULES = [
    "bluelm_edge.cli.info",
    "bluelm_edge.cli.plan",
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


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", help="Show library warnings and native logs (as BLUELM_DEBUG=1)."),
) -> None:
    """Global options (before the command name). --verbose is read in `run()`, before any import."""


def run() -> None:
    """Console-script entry: run the app, turning user errors into one line and an exit code."""
    from bluelm_edge.cli import quiet

    with quiet.terminal(quiet.verbose_requested(sys.argv[1:])):
        code = _main()
    sys.exit(code)


def _main() -> int:
    try:
        app(standalone_mode=False)
    except BlueLMError as err:
        if os.environ.get("BLUELM_DEBUG") == "1":
            raise
        _error(f"[red]error:[/red] {escape(str(err))}")
        return err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _error("aborted")
        return 130
    except typer.Exit as done:
        return done.exit_code
    except Exception as err:
        show = getattr(err, "show", None)  # click/typer usage errors print themselves
        if callable(show) and hasattr(err, "exit_code"):
            show()
            return err.exit_code
        if os.environ.get("BLUELM_DEBUG") == "1":
            raise
        _error(f"[red]internal error:[/red] {type(err).__name__}: {escape(str(err))} "
               "(rerun with BLUELM_DEBUG=1 for the traceback)")
        return 1
    return 0


def _error(markup: str) -> None:
    """One line on stderr: never hard-wrapped (soft_wrap), so a piped error stays one line."""
    Console(stderr=True).print(markup, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    run()
