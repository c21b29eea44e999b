"""`bluelm-edge run BUNDLE`: one prompt through a bundle's `.pte` on the ExecuTorch runtime (host)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bluelm_edge.cli.common import JsonOpt

BundleArg = Annotated[Path, typer.Argument(help="Bundle folder written by `bluelm-edge export`.")]


def run(
    bundle_dir: BundleArg,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user message.")],
    image: Annotated[list[Path] | None, typer.Option("--image", help="Image file(s) for the prompt.")] = None,
    think: Annotated[bool, typer.Option("--think/--no-think", help="Thinking mode on or off.")] = True,
    thinking_budget: Annotated[
        int | None, typer.Option("--thinking-budget", help="Max thinking tokens (default: the bundle's).", min=0)
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Stop after this many generated tokens.", min=1)] = 256,
    profile: Annotated[bool, typer.Option("--profile", help="Write an ETDump and print per-operator times.")] = False,
    etdump: Annotated[Path, typer.Option(help="Where --profile writes the ETDump.")] = Path("bluelm-run.etdump"),
    json_out: JsonOpt = False,
) -> None:
    """Run one prompt through a bundle with the ExecuTorch runtime, greedy, with the thinking budget.

    Example: bluelm-edge run ./bluelm-bundle --prompt "What is 530+627?" --think --thinking-budget 32 --profile
    """
    from bluelm_edge.cli.chat import _printer, _stats_line
    from bluelm_edge.export.host import bundle_session, operator_table
    from bluelm_edge.generate import Sampling

    if profile:
        from bluelm_edge.io import check_output_file

        check_output_file(etdump, "--etdump", ours=_is_etdump, overwrite=None)
    session = bundle_session(bundle_dir, etdump=profile)
    console = Console(quiet=json_out)
    budget = thinking_budget if thinking_budget is not None else session.config.default_thinking_budget
    reply = session.ask(prompt, list(image or []), think=think, budget=budget,
                        sampling=Sampling(max_new_tokens=max_new_tokens), on_text=_printer(console))
    console.print()
    console.print(f"[dim]{_stats_line(reply)}[/dim]")
    rows = None
    if profile:
        session.decoder.write_etdump(etdump)
        rows = operator_table(etdump)
        console.print(_table(rows, etdump))
    if json_out:
        typer.echo(json.dumps({"thinking": reply.thinking, "answer": reply.answer, "tokens": reply.tokens,
                               "stats": reply.stats.to_dict(), "profile": rows}, indent=2))


def _is_etdump(path: Path) -> bool:
    """An ETDump of ours to replace: a size-prefixed flatbuffer with the ED00 identifier."""
    with open(path, "rb") as f:
        return f.read(16)[8:12] == b"ED00"


def _table(rows: list[dict], etdump: Path) -> Table:
    table = Table(title=f"per-operator time ({etdump})")
    for col in ("operator", "calls", "total ms", "avg ms"):
        table.add_column(col, justify="left" if col == "operator" else "right")
    for r in rows:
        table.add_row(r["name"], str(r["calls"]), f"{r['total_ms']:.2f}", f"{r['avg_ms']:.3f}")
    return table


def register(app: typer.Typer) -> None:
    app.command("run")(run)
