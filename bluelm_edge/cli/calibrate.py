"""`bluelm-edge calibrate`: run a model over a calibration set and save the captured inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bluelm_edge.cli.common import JsonOpt, ModelArg, resolve_model_dir


def calibrate(
    model: ModelArg = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="JSONL chats, a samples.jsonl folder, or images + prompts.txt (default: shipped).")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="Use the first N samples.", min=1)] = None,
    out: Annotated[Path, typer.Option("--out", help="Calibration folder to write (atomically).")] = Path("calib"),
    json_out: JsonOpt = False,
) -> None:
    """Capture what quantizing needs (per-method inputs) so any recipe can reuse it.

    Example: bluelm-edge calibrate --samples 32 --out calib

    Then:    bluelm-edge quantize --recipe qnn-16a4w --calibration calib --out q-qnn
    """
    from bluelm_edge.families import open_folder
    from bluelm_edge.io import check_output_dir
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import run_calibration

    check_output_dir(out)
    src = open_folder(resolve_model_dir(model))  # any family: ours or a Hugging Face download
    net, cfg, tokenizer = src.load_model(), src.config, src.tokenizer
    chosen = load_set(data, samples)
    with Progress(TextColumn("[bold]calibrate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        job = bar.add_task("calibrate", total=len(chosen))
        run_calibration(net, tokenizer, cfg, chosen, out, source=str(data or "default"),
                        on_sample=lambda _: bar.advance(job), chat=src.chat, images=src.image_reader())
    meta = json.loads((out / "calibration.json").read_text())
    if json_out:
        typer.echo(json.dumps({"out": str(out), **meta}, indent=2))
    else:
        Console().print(f"calibrated {meta['samples']} samples ({meta['images']} with images, "
                        f"{meta['thinking']} thinking) -> {out}")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
