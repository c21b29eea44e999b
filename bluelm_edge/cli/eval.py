"""`bluelm-edge eval`: greedy exact-match accuracy on held-out synthetic tasks, per thinking budget."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bluelm_edge.cli import tables
from bluelm_edge.cli.common import JsonOpt, ModelArg, load_for_generation
from bluelm_edge.errors import UsageError


def eval_cmd(
    model: ModelArg = None,
    tasks: Annotated[str | None, typer.Option("--tasks", help="Comma-separated tasks (default: all).")] = None,
    thinking_budget: Annotated[
        str, typer.Option("--thinking-budget", help="Budgets to compare; 0 = non-thinking, none = unlimited.")
    ] = "0,8,16,32,64,none",
    limit: Annotated[int, typer.Option("--limit", help="Held-out examples per task.", min=1, max=1000)] = 50,
    blank_images: Annotated[
        bool, typer.Option("--blank-images", help="Replace every image by a blank one (does the model look?).")
    ] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of accuracy against budget.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --plot even if we did not write it.")]
    = False,
    compare: Annotated[str | None, typer.Option(
        "--compare", help="Quantization report: recipes vs fp32, e.g. xnnpack-8da4w,qnn-16a4w.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint or bundle on held-out examples of the synthetic tasks (greedy decoding).

    Example: bluelm-edge eval --thinking-budget 0,8,16,32,64,none --limit 50 --plot accuracy.png

    Example: bluelm-edge eval --compare xnnpack-8da4w,qnn-16a4w,mediatek-a16w4 --limit 6 --json
    """
    if plot is not None:
        from bluelm_edge.io import check_output_file, is_our_png

        check_output_file(plot, "--plot", ours=is_our_png, overwrite=overwrite)
    if compare:
        return _compare(model, compare, tasks, limit, json_out)
    from bluelm_edge.datasets.tasks import get_tasks
    from bluelm_edge.train import evaluate as ev

    budgets = ev.parse_budgets(thinking_budget)
    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    try:
        chosen = get_tasks(names)
    except ValueError as err:
        raise UsageError(f"--tasks: {err}") from None
    loaded = load_for_generation(model, None)
    if names is None and loaded.config.vision is None:  # a text-only model: the text tasks
        chosen = [t for t in chosen if t.kind == "text"]
        names = [t.name for t in chosen]
    session = loaded.session()
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        job = bar.add_task("eval", total=len(chosen) * len(budgets) * limit)
        rows = ev.evaluate(session, names, budgets, limit, blank_images, lambda: bar.advance(job))
    report = ev.to_json(rows, loaded.label, limit, blank_images)
    if plot is not None:
        ev.plot(rows, plot, title=f"{Path(loaded.label).name}: accuracy against thinking budget")
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_table(Console(), rows, budgets, ev.budget_label)
    _print_summary(Console(), report["summary"], budgets, ev.budget_label)


def _print_table(console: Console, rows, budgets, label) -> None:
    heads = [f"budget {label(b)}" for b in budgets]
    table = tables.table("exact match (mean thinking tokens)", "task", *heads, right=tuple(heads))
    for task in dict.fromkeys(r.task for r in rows):
        cells = {r.budget: r for r in rows if r.task == task}
        table.add_row(task, *(f"{cells[b].accuracy:.2f} ({cells[b].thinking_tokens_mean:.0f})" for b in budgets))
    console.print(tables.whole(table))


def _print_summary(console: Console, summary: dict, budgets, label) -> None:
    heads = [f"budget {label(b)}" for b in budgets]
    table = tables.table("mean accuracy [95% interval] (mean thinking tokens)", "kind", *heads, right=tuple(heads))
    for kind, curve in summary["kinds"].items():
        cells = [curve.get(label(b)) for b in budgets]
        table.add_row(kind.replace("_", "-"), *(
            f"{c['accuracy']:.2f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}] ({c['thinking_tokens_mean']:.0f})"
            if c else "-" for c in cells))
    console.print(tables.whole(table))
    for kind, check in summary["checks"].items():
        for name, text in (("below_no_thinking", "below non-thinking"), ("drops", "lower than the budget before")):
            if check[name]:
                console.print(f"[yellow]{kind}: budget {', '.join(check[name])} {text} beyond its interval[/yellow]")
    if "multi_step_gap_points" in summary:
        console.print(f"thinking vs non-thinking on multi-step tasks: {summary['multi_step_gap_points']:+.1f} points")


def _compare(model: Path | None, recipes: str, tasks: str | None, limit: int, json_out: bool) -> None:
    from bluelm_edge.cli.common import resolve_model_dir
    from bluelm_edge.datasets.tasks import get_tasks
    from bluelm_edge.quant.report import compare_recipes

    names = [r.strip() for r in recipes.split(",") if r.strip()]
    task_names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    try:
        n = limit * len(get_tasks(task_names))
    except ValueError as err:
        raise UsageError(f"--tasks: {err}") from None
    # the vendor quantizers print notes to stdout: keep stdout for the --json report
    with Console(stderr=True).status(f"quantizing and evaluating {', '.join(names)}"), \
            contextlib.redirect_stdout(sys.stderr):
        report = compare_recipes(resolve_model_dir(model), names, heldout=n, accuracy_examples=n, tasks=task_names)
    if json_out:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_report(report, Console())


_ROWS = (("perplexity", "{:.3f}"), ("kl", "{:.4f}"), ("top1_agreement", "{:.3f}"), ("vision_cosine", "{:.4f}"),
         ("accuracy_budget_0", "{:.3f}"), ("accuracy_budget_none", "{:.3f}"), ("size_bytes", "{:,}"))


def print_report(report: dict[str, Any], console) -> None:
    """One rich table per recipe: fp32, the recipe (and before recovery when there was one)."""
    fp32 = report["fp32"]
    for name, entry in report["recipes"].items():
        cols = [("fp32", fp32)] + ([("before recovery", entry["before_recovery"])] if "before_recovery" in entry
                                   else []) + [(name, entry)]
        heads = tuple(col for col, _ in cols)
        table = tables.table(f"{name} ({entry['backend']}) vs fp32 on {report['heldout']} held-out examples",
                             "metric", *heads, right=heads)
        for key, fmt in _ROWS:
            table.add_row(key, *("-" if d.get(key) is None else fmt.format(d[key]) for _, d in cols))
        console.print(tables.whole(table))
        if "fallback_layers" in entry:
            console.print(f"  fallback layers: {', '.join(entry['fallback_layers'])}; recovered "
                          f"{_pct(entry['recovered_kl_fraction'])} of the KL loss, "
                          f"{_pct(entry['recovered_ppl_fraction'])} of the perplexity loss")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
