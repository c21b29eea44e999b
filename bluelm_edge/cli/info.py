"""`bluelm-edge info`: a model's parameters by part, its weight memory at each precision, its config.

The model is built on the meta device from a checkpoint's (or bundle's) config.json or a preset,
so even the 2.9B preset costs no memory; a checkpoint's weights are checked against the config by
their safetensors headers only (names, shapes, dtypes), no tensor data is read. A checkpoint of
any registered family works (`bluelm_edge.families`: ours, or a Hugging Face download), and a
folder with only a config.json reports the shapes it describes (`weights: "none (config only)"`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from bluelm_edge.cli.common import JsonOpt, ModelArg, PresetOpt, resolve_model_dir
from bluelm_edge.errors import UsageError

PARTS = {
    "vision": "vision tower",
    "adapter": "adapter",
    "decoder_embedding": "decoder embedding",
    "decoder_layers": "decoder layers",
    "output_head": "output head",
    "total": "total",
}
BITS = {"fp32": 32, "fp16": 16, "int8": 8, "int4": 4}  # weights only; quant scales not counted


def model_info(model: Path | None = None, preset_name: str | None = None) -> dict[str, Any]:
    """Parameters and weight bytes by part, plus the config, as plain data."""
    from bluelm_edge.model.checkpoint import build_model, count_parameters
    from bluelm_edge.model.config import preset

    if preset_name is not None and model is not None:
        raise UsageError("give either MODEL or --preset, not both")
    family, weights = "bluelm", "checked"
    if preset_name is not None:
        config, source = preset(preset_name), f"preset {preset_name}"
    else:
        path = resolve_model_dir(model)
        config, family, weights = _read_config(path)
        source = str(path)
    params = count_parameters(build_model(config, "meta"))
    memory = {p: {k: n * b // 8 for k, b in BITS.items()} for p, n in params.items()}
    return {
        "source": source,
        "name": config.name,
        "family": family,
        "weights": weights,
        "parameters": params,
        "memory_bytes": memory,
        "image_tokens_per_tile": config.image_tokens_per_tile,
        "config": config.to_dict(),
    }


def _read_config(path: Path) -> tuple[Any, str, str]:
    """(config, family, weights) of a bundle, or of a checkpoint as its family reads it, the
    weights' headers checked against the config when the folder has weights."""
    from bluelm_edge.families import detect, read_raw
    from bluelm_edge.model.config import BlueLMConfig

    if (path / "manifest.json").is_file():
        manifest = json.loads((path / "manifest.json").read_text())
        family = (manifest.get("app", {}).get("chat") or {}).get("family", "bluelm")
        return BlueLMConfig.load(path / "config.json"), family, "bundle"
    family = detect(path)
    config = family.read_config(path, read_raw(path))
    if not any(path.glob("*.safetensors")) and not (path / "model.safetensors.index.json").is_file():
        return config, family.name, "none (config only)"
    family.check_weights(path, config)
    return config, family.name, "checked"


def _count(n: int) -> str:
    return f"{n / 1e9:.3f}B" if n >= 1e8 else f"{n / 1e6:.2f}M"


def _bytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _print(report: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"{report['name']} ({report['source']})")
    for col in ("part", "parameters", *BITS):
        table.add_column(col, justify="left" if col == "part" else "right")
    for part, label in PARTS.items():
        mem = report["memory_bytes"][part]
        table.add_row(label, _count(report["parameters"][part]), *(_bytes(mem[k]) for k in BITS))
    console.print(table)
    console.print(f"family: {report['family']} · weights: {report['weights']} · "
                  f"image tokens per tile: {report['image_tokens_per_tile']}")
    console.print_json(json.dumps(report["config"]))


def info(model: ModelArg = None, preset: PresetOpt = None, json_out: JsonOpt = False) -> None:
    """Show parameters by part, weight memory at fp32/fp16/int8/int4 and the config.

    Example: bluelm-edge info --preset bluelm-2.5-3b   (or: bluelm-edge info ./checkpoint --json)
    """
    report = model_info(model, preset)
    if json_out:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
