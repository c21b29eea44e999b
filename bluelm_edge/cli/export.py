"""`bluelm-edge export` (checkpoint -> verified bundle) and `bluelm-edge lower BUNDLE` (finish NPU lowering)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bluelm_edge.cli import tables
from bluelm_edge.cli.common import JsonOpt
from bluelm_edge.errors import UsageError


def _check_soc(backend: str, soc: str | None) -> None:
    if soc is None or backend == "xnnpack":
        return
    from bluelm_edge.socs import soc_choices

    choices = soc_choices(backend)
    if soc not in choices:
        raise UsageError(f"--soc {soc!r} is not a {backend} chip in qnn_backends/socs.json; "
                         f"choose: {', '.join(choices)}")


def _warn_context(model: Path | None, preset: str | None, max_context: int | None) -> None:
    """Warn (stderr, one line) when --max-context is beyond what the model was trained for."""
    if max_context is None:
        return
    from bluelm_edge.cli.common import model_config
    from bluelm_edge.generate import context_warning
    from bluelm_edge.model.config import preset as preset_config

    config = preset_config(preset) if preset else model_config(model)
    warning = context_warning(max_context, config.decoder.max_seq_len, config.name)
    if warning:
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True, highlight=False)


def _warn_app_template(out: Path) -> None:
    """Warn (stderr, one line) when the demo app cannot render the bundle's chat template."""
    chat = json.loads((out / "manifest.json").read_text()).get("app", {}).get("chat") or {}
    if chat.get("chat_template") and chat.get("segments") is None:
        Console(stderr=True).print(
            f"[yellow]warning:[/yellow] the demo app cannot render {chat.get('family')}'s chat template "
            f"({chat.get('segments_problem')}); the bundle runs on the host (bluelm-edge run) and in "
            "ExecuTorch's runners", soft_wrap=True, highlight=False)


def export(
    model: Annotated[Path | None, typer.Option(help="Checkpoint folder: ours or a Hugging Face download (Qwen3, "
                                                  "Qwen2, Llama 3.x, SmolLM) (default: the shipped stand-in).")] = None,
    backend: Annotated[str, typer.Option(help="xnnpack | qnn | mediatek")] = "xnnpack",
    soc: Annotated[str | None, typer.Option(help="Target chip for qnn/mediatek (e.g. SM8650, mt6989).")] = None,
    recipe: Annotated[str | None, typer.Option(help="Quantization recipe (default per backend; fp32 = none).")] = None,
    max_context: Annotated[int | None, typer.Option(help="KV-cache length (default: the config's).", min=2)] = None,
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")] = Path("bluelm-bundle"),
    calibration: Annotated[Path | None, typer.Option(help="Calibration set (default: the shipped one).")] = None,
    samples: Annotated[int, typer.Option(help="Calibration samples to use.", min=1)] = 16,
    preset: Annotated[str | None, typer.Option(help="Export a randomly initialised preset instead of --model.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo every stage, ignoring the cache.")] = False,
    no_benchmark: Annotated[bool, typer.Option("--no-benchmark", help="Skip the host decode speed run.")] = False,
    text_only: Annotated[bool, typer.Option("--text-only", help="No vision_encoder (text only).")] = False,
    prefill_chunk: Annotated[int | None, typer.Option(
        help="Tokens per prefill call: qnn/mediatek static prefill graph (default 128); xnnpack longest call.",
        min=1)] = None,
    shards: Annotated[str, typer.Option(
        help="qnn/mediatek: cut the decoder into N NPU contexts/chunks of whole layers; auto: the fewest "
             "that keep each within the SoC's per-context budget.")] = "auto",
    graph_io: Annotated[str | None, typer.Option("--graph-io", help=(
        "qnn: what crosses the NPU boundary as integers. kv (default): the 8-bit KV cache, the rest fp32 "
        "(what the demo app's Java runtime can pass); full: also 16-bit embeddings, mask, RoPE rows and "
        "logits, as upstream's native Qualcomm Llama runner; float: nothing. mediatek: float."),
        metavar="kv|full|float")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a checkpoint to an ExecuTorch bundle: calibrate, quantize, lower, write, verify, benchmark.

    Example: bluelm-edge export                      (tiny stand-in, xnnpack-8da4w, ./bluelm-bundle)

    Example: bluelm-edge export --backend qnn --soc SM8650 --out bundle-qnn

    Example: bluelm-edge export --preset bluelm-2.5-3b --backend qnn --shards 2 --out bundle-3b
    """
    from bluelm_edge.export.pipeline import ExportOptions, SdkMissingError, run_export

    _check_soc(backend, soc)
    _warn_context(model, preset, max_context)
    opts = ExportOptions(model=model, preset=preset, backend=backend, soc=soc, recipe=recipe, max_context=max_context,
                         out=out, force=force, calibration=calibration, samples=samples, benchmark=not no_benchmark,
                         text_only=text_only, prefill_chunk=prefill_chunk, shards=shards,
                         graph_io=graph_io)
    result = run_export(opts, show=not json_out)
    if json_out:
        typer.echo(json.dumps(result.summary(), indent=2))
    else:
        _print_summary(Console(), result)
    _warn_app_template(result.out)
    if result.missing:
        raise SdkMissingError(f"{result.missing.replace('BUNDLE', str(out))} (lowering-ready bundle in {out})")


def _print_summary(console: Console, result) -> None:
    s = result.summary()
    console.print(f"{s['out']}  ({s['bundle_id']}{', cached' if s['cached'] else ''})", highlight=False)
    table = tables.table("", "file", "size", right=("size",))
    for f in s["files"]:
        table.add_row(f["path"], f"{f['size'] / 1e6:.2f} MB" if f["size"] > 1e5 else f"{f['size']} B")
    console.print(tables.whole(table))
    q = s["quality"]
    if q:
        console.print(f"quality vs fp32 ({q['measured_on']}, {q['samples']} prompts): top-1 agreement "
                      f"{q['top1_agreement']:.0%}, mean logit cosine {q['mean_cosine']:.4f}")
    if s["host"]:
        h = s["host"]
        console.print(f"host: decode {h['decode_tok_s']:.1f} tok/s, prefill {h['prefill_tok_s']:.0f} tok/s, "
                      f"TTFT {h['ttft_ms']:.1f} ms")
    if s["lowered"]:
        console.print(f"next: bluelm-edge run {s['out']} --prompt 'What is 530+627?'")


def lower(
    bundle_dir: Annotated[Path, typer.Argument(help="A lowering-ready bundle (qnn or mediatek, lowered: false).")],
    soc: Annotated[str | None, typer.Option(help="Override the bundle's target chip.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Finish lowering a qnn/mediatek bundle on a machine with the vendor SDK (QNN_SDK_ROOT / mtk_converter).

    Example: QNN_SDK_ROOT=/opt/qcom/qairt bluelm-edge lower ./bluelm-bundle
    """
    from bluelm_edge.export.finish import lower_bundle

    manifest = lower_bundle(bundle_dir, soc, show=not json_out)
    if json_out:
        typer.echo(json.dumps(manifest, indent=2))
    else:
        typer.echo(f"{bundle_dir}: lowered for {manifest['backend']} {manifest['soc']} ({manifest['bundle_id']})")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("lower")(lower)
