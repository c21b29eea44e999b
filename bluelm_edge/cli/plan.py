"""`bluelm-edge plan`: weight memory, decode-step bytes and each phone's decode ceiling, before deploying.

Arithmetic from the model's config and a recipe (`bluelm_edge/plan.py`); for a bundle, its own
recipe and the `.pte` size on disk beside the arithmetic. `profile` measures the real numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bluelm_edge.cli.common import JsonOpt, ModelArg, PresetOpt
from bluelm_edge.errors import UsageError

RecipeOpt = Annotated[str | None, typer.Option("--recipe", metavar="<str>",
                                               help="Recipe (default: the bundle's, else xnnpack-8da4w).")]
ContextOpt = Annotated[int | None, typer.Option("--context", metavar="<int>",
                                                help="Tokens in the KV cache (default: the model's context).")]
SocOpt = Annotated[list[str] | None, typer.Option("--soc", metavar="<id>",
                                                  help="Only these chips (repeatable; default: the whole catalogue).")]


def plan_report(model: Path | None, preset: str | None, recipe: str | None, context: int | None,
                socs: list[str] | None) -> dict[str, Any]:
    from bluelm_edge.cli.info import model_info
    from bluelm_edge.model.config import BlueLMConfig
    from bluelm_edge.plan import fp32_recipe, make_plan, per_soc
    from bluelm_edge.quant.recipes import get_recipe
    from bluelm_edge.socs import load_socs

    info = model_info(model, preset)
    config = BlueLMConfig.from_dict(info["config"])
    bundle = _bundle(Path(info["source"])) if preset is None else None
    name = recipe or (bundle or {}).get("recipe") or "xnnpack-8da4w"
    chosen = fp32_recipe() if name == "fp32" else get_recipe(name)
    plan = make_plan(info["parameters"], config, chosen, context or config.decoder.max_seq_len)
    catalogue = load_socs()
    unknown = [s for s in socs or [] if s not in catalogue]
    if unknown:
        raise UsageError(f"unknown SoC {unknown[0]!r}; known: {', '.join(catalogue)}")
    rows = per_soc(plan, [catalogue[s] for s in socs] if socs else list(catalogue.values()))
    return {"source": info["source"], "name": info["name"], "family": info["family"], **plan.to_dict(),
            "program_file_bytes": (bundle or {}).get("program_file_bytes"), "socs": rows}


def _bundle(path: Path) -> dict[str, Any] | None:
    if not (path / "manifest.json").is_file():
        return None
    manifest = json.loads((path / "manifest.json").read_text())
    program = path / manifest.get("program", "")
    return {"recipe": manifest.get("recipe"),
            "program_file_bytes": program.stat().st_size if program.is_file() else None}


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _print(r: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]{r['name']}[/] ({r['family']}) at {r['recipe']}, context {r['context']}: program "
                  f"{_mb(r['program_bytes'])} (arithmetic; file {_mb(r['program_file_bytes'])}), KV cache "
                  f"{_mb(r['kv_cache_bytes'])}, {_mb(r['decode_step_bytes'])} read per decoded token")
    table = Table(title="decode ceiling = memory bandwidth / bytes per token (profile measures the real rate)")
    for col in ("SoC", "chip", f"{r['backend']}", "bandwidth", "decode ceiling"):
        table.add_column(col, justify="left" if col in ("SoC", "chip") else "right")
    for s in r["socs"]:
        bw = f"{s['memory_bandwidth_gbs']:g} GB/s" if s["memory_bandwidth_gbs"] else "-"
        ceiling = f"{s['decode_ceiling_tok_s']:g} tok/s" if s["decode_ceiling_tok_s"] else "-"
        table.add_row(s["soc"], s["name"], "yes" if s["backend_runs"] else "no", bw, ceiling)
    console.print(table)


def plan(model: ModelArg = None, preset: PresetOpt = None, recipe: RecipeOpt = None, context: ContextOpt = None,
         soc: SocOpt = None, json_out: JsonOpt = False) -> None:
    """Weight memory, bytes read per decoded token and each phone's decode ceiling (arithmetic).

    Example: bluelm-edge plan ./Qwen3-0.6B --context 1024   (or: bluelm-edge plan ./bluelm-bundle --soc SM8650 --json)
    """
    report = plan_report(model, preset, recipe, context, soc)
    if json_out:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
