"""`bluelm-edge quantize`: list recipes, or quantize a checkpoint into lowering-ready programs.

The output folder holds one `torch.export.save` program per contract method (`<method>.pt2`,
quantized) and `quantize.json` (recipe, SoC, fallback layers); it is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bluelm_edge.cli import tables
from bluelm_edge.cli.common import JsonOpt, ModelArg, resolve_model_dir
from bluelm_edge.errors import UsageError


def quantize(
    model: ModelArg = None,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Recipe name or path to a recipe file.")] = None,
    calibration: Annotated[Path | None, typer.Option(
        "--calibration", help="Folder from `bluelm-edge calibrate` (default: calibrate now).")] = None,
    soc: Annotated[str | None, typer.Option("--soc", help="Qualcomm SoC (e.g. SM8650): decides block quant.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the quantized programs.")] = None,
    list_recipes: Annotated[bool, typer.Option("--list-recipes", help="List the registered recipes.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Quantize a checkpoint with a recipe (vendor quantizers run without their SDKs).

    Example: bluelm-edge quantize --list-recipes

    Example: bluelm-edge quantize --recipe qnn-16a4w --soc SM8650 --calibration calib --out q-qnn
    """
    from bluelm_edge.io import check_output_dir
    from bluelm_edge.quant.recipes import all_recipes, get_recipe

    if list_recipes:
        return _list(all_recipes(), json_out)
    if recipe is None or out is None:
        raise UsageError("give --recipe NAME and --out DIR (or --list-recipes to see the recipes)")
    chosen = get_recipe(recipe)
    check_output_dir(out)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        bar.add_task(f"quantize ({chosen.name})")
        info = _run(resolve_model_dir(model), chosen, calibration, soc, out)
    if json_out:
        typer.echo(json.dumps(info, indent=2))
    else:
        fallback = ", ".join(info["fallback"]) or "none"
        Console().print(f"{chosen.name}: {', '.join(info['methods'])} -> {out} (fallback layers: {fallback})")


def _run(folder: Path, recipe, calibration: Path | None, soc: str | None, out: Path) -> dict:
    import torch

    from bluelm_edge import contract
    from bluelm_edge.families import open_folder
    from bluelm_edge.graphs import methods
    from bluelm_edge.io import atomic_dir
    from bluelm_edge.quant.api import quantize_for_backend
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import calibrate_in_memory, load_calibration

    src = open_folder(folder)  # any family: ours or a Hugging Face download
    net, cfg = src.load_model(), src.config
    calib = (load_calibration(calibration, cfg) if calibration else
             calibrate_in_memory(net, src.tokenizer, cfg, load_set(samples=16), src.chat, src.image_reader()))
    names = [m for m in contract.METHODS if cfg.vision is not None or m != contract.VISION_ENCODER]
    q = quantize_for_backend(net, cfg, recipe, calib, soc=soc, methods=names)
    progs = methods.export_methods(net, modules=q.modules)
    info = {"recipe": recipe.name, "backend": recipe.backend, "soc": soc or recipe.default_soc,
            "fallback": q.fallback, "methods": list(progs), "model": str(folder)}
    with atomic_dir(out) as tmp:
        for name, prog in progs.items():
            torch.export.save(prog, str(tmp / f"{name}.pt2"))
        (tmp / "quantize.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _list(recipes: dict, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps({k: r.to_dict() for k, r in recipes.items()}, indent=2))
        return
    table = tables.table("quantization recipes (qnn_backends/recipes/)",
                         "name", "backend", "schemes", "kv cache", "recovery")
    for r in recipes.values():
        schemes = "\n".join(f"{label}: {_part(r.part(part))}" for part, label in
                             (("decoder_linears", "decoder"), ("vision", "vision"), ("embeddings", "embeddings")))
        table.add_row(r.name, r.backend, schemes, r.part("kv_cache")["scheme"], r.recovery.get("method", "none"))
    Console().print(tables.whole(table))


def _part(p: dict) -> str:
    size = p.get("group_size") or p.get("block_size")
    return f"{p['scheme']} {p.get('granularity', '')}{f' {size}' if size else ''}".strip()


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)
