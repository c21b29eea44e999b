"""`bluelm-edge train`: train the tiny stand-in from scratch, or fine-tune a checkpoint.

Runs the same under `torchrun --nproc_per_node N` (DDP: gloo on CPU, nccl on GPU). Rerunning
with the same options and --out resumes an interrupted run from its last checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bluelm_edge.cli.common import JsonOpt
from bluelm_edge.errors import UsageError


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f} · {task.fields[tps]:.0f} tok/s"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
    )


def train(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint folder to write (resumed if it holds a run).")],
    preset: Annotated[str, typer.Option("--preset", help="Model shape for training from scratch.")] = "tiny",
    init: Annotated[Path | None, typer.Option("--init", help="Fine-tune this checkpoint instead.")] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="JSONL chats ({'messages': [...]}, image paths) instead of tasks.")
    ] = None,
    tasks: Annotated[
        str | None, typer.Option("--tasks", help="Comma-separated synthetic tasks (default: all).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 3000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Global batch (all ranks).", min=1)] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.", min=0.0)] = 2e-3,
    warmup: Annotated[int, typer.Option(help="Warmup steps.", min=0)] = 100,
    vision_lr_mult: Annotated[float, typer.Option(help="LR factor for the ViT and adapter.", min=0.0)] = 1.0,
    image_share: Annotated[float, typer.Option(help="Share of image-task examples.", min=0.0, max=1.0)] = 0.5,
    task_weights: Annotated[str | None, typer.Option(
        "--task-weights", help="Override task weights within their kind, e.g. add=2,grid=2.")] = None,
    no_think: Annotated[float, typer.Option(
        "--no-think-share", help="Share of answer-only (non-thinking) examples.", min=0.0, max=1.0)] = 0.25,
    cut: Annotated[float, typer.Option(
        "--cut-share", help="Share of thinking examples cut by the budget message.", min=0.0, max=1.0)] = 0.15,
    short_cut: Annotated[float, typer.Option(
        "--short-cut-share", help="Share of the cuts within a trace's first 12 words.", min=0.0, max=0.9)] = 0.45,
    vocab_size: Annotated[int, typer.Option(help="Tokenizer vocabulary (from scratch only).", min=267)] = 384,
    seed: Annotated[int, typer.Option(help="Seed of init and data.")] = 0,
    bf16: Annotated[bool, typer.Option("--bf16/--fp32", help="bf16 autocast (about 2x faster on CPU).")] = True,
    eval_every: Annotated[int, typer.Option(help="Held-out evaluation every N steps (0: off).", min=0)] = 250,
    save_every: Annotated[int, typer.Option(help="Resumable checkpoint every N steps (0: end only).", min=0)] = 250,
    stop_after: Annotated[
        int | None, typer.Option(help="Stop (resumably) after this many steps in total.", min=1)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a model on the synthetic reasoning tasks (or on your chats) and write a checkpoint.

    Example: bluelm-edge train --preset tiny --out runs/tiny --steps 3000 --seed 0

    Example: bluelm-edge train --init runs/tiny --data chats.jsonl --out runs/ft --steps 200 --lr 3e-4

    Example: torchrun --nproc_per_node 2 -m bluelm_edge.cli.main train --out runs/ddp --steps 100
    """
    from bluelm_edge.datasets.chats import load_chats
    from bluelm_edge.datasets.tasks import get_tasks
    from bluelm_edge.io import check_output_dir
    from bluelm_edge.train import trainer

    check_output_dir(out)  # a run of ours is resumed; anything else is the user's
    task_list = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else []
    try:
        get_tasks(task_list)
    except ValueError as err:
        raise UsageError(f"--tasks: {err}") from None
    weights = _parse_weights(task_weights)
    if no_think + cut > 1:
        raise UsageError(f"--no-think-share {no_think} + --cut-share {cut} exceed 1; the rest is plain thinking")
    if init is not None and not (init / "config.json").is_file():
        raise UsageError(f"--init {init}: not a checkpoint folder (no config.json)")
    chats = load_chats(data) if data is not None else None
    cfg = trainer.TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, warmup=min(warmup, steps), vision_lr_mult=vision_lr_mult,
        seed=seed, bf16=bf16, tasks=task_list, image_share=image_share, task_weights=weights, vocab_size=vocab_size,
        no_think=no_think, cut=cut, short_cut=short_cut,
        eval_every=eval_every, save_every=save_every,
    )
    run = trainer.setup(cfg, out, preset_name=preset, init=init, chats=chats)
    console = Console(quiet=json_out or run.rank != 0)
    if run.step:
        console.print(f"[dim]resuming {out} at step {run.step}[/dim]")
    with _progress(console) as bar:
        job = bar.add_task("train", total=steps, completed=run.step, loss=float("nan"), tps=0.0)

        def on_step(r, loss: float, tokens: int, seconds: float) -> None:
            bar.update(job, completed=r.step, loss=loss, tps=tokens * r.world / max(seconds, 1e-9))
            if not bar.console.is_terminal and r.step % 50 == 0:  # a log file: no live bar
                bar.console.print(f"step {r.step}/{steps} loss {loss:.4f} {tokens * r.world / seconds:.0f} tok/s")
            ev = r.history[-1].get("eval")
            if ev:
                bar.console.print(f"step {r.step}: " + _eval_line(ev))

        trainer.train(run, stop_after=stop_after, on_step=on_step)
    if run.rank == 0:
        final = run.history[-1] if run.history else {}
        if json_out:
            typer.echo(json.dumps({"out": str(out), "step": run.step, "final": final}, indent=2))
        else:
            console.print(f"wrote {out} (step {run.step}, loss {final.get('loss', float('nan')):.4f})")


def _parse_weights(text: str | None) -> dict[str, float]:
    from bluelm_edge.datasets.tasks import TASKS

    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name.strip() not in TASKS or not weight > 0:
            raise UsageError(f"--task-weights item {item!r}: give TASK=WEIGHT (weight > 0, task one of "
                             f"{', '.join(TASKS)}), e.g. add=2,grid=2")
        out[name.strip()] = weight
    return out


def _eval_line(ev: dict[str, float]) -> str:
    return " ".join(f"{k.removesuffix('/exact')}={v:.2f}" for k, v in ev.items())


def register(app: typer.Typer) -> None:
    app.command("train")(train)
