"""Scale run: the NPU export of the full `bluelm-2.5-3b` preset (seeded random weights), piece by piece.

The model is built on the meta device; the vision tower, adapter and the decoder's embedding /
norm / head are materialised (seeded, `export.scale`) and the shipped calibration set is captured
through them; then `export.npu_scale.quantize_npu_piecewise` quantizes the static program with the
vendor quantizer one decoder layer at a time (each layer materialised, calibrated through the host
NPU runner's exact calls, converted, its fp32 weights released), the static methods are exported
(`graphs.static.export_npu`; decode shares prefill's weight tensors), the backend's passes run up to
the SDK (coverage, the CPU-fallback check), and the lowering-ready bundle is written and verified.
Records wall time and peak RSS per stage, the archive's size against the quantized weight bytes, and
a few greedy tokens from the saved archive through the host NPU runner. CPU heavy: run it alone.

    QNN_SDK_ROOT="" .venv/bin/python benchmarks/export_full_npu.py --backend qnn --out /tmp/bluelm-3b-qnn \
        --json benchmarks/export_full_npu.json
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from export_full import GB, USED, Clock, build_config, rss_gb, watchdog


def materialize_rest(model, seed: int) -> None:
    """Every piece but the decoder layers (what calibration capture and the small methods read)."""
    from bluelm_edge.export.scale import materialize_piece, pieces

    for names in pieces(model):
        if not names[0].startswith("decoder.layers."):
            materialize_piece(model, names, seed)
    model.eval()


def quantize(args, model, config, clock: Clock) -> dict:
    from bluelm_edge.export.npu_scale import quantize_npu_piecewise
    from bluelm_edge.export.scale import materialize_piece
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import calibrate_in_memory
    from bluelm_edge.text.tokenizer import default_tokenizer

    start = time.perf_counter()
    calib = calibrate_in_memory(model, default_tokenizer(), config, load_set(None, args.samples))
    tokens = sum(int(s["ids"].shape[1]) for s in calib.samples)
    print(f"calibration: {len(calib.samples)} samples, {tokens} tokens, "
          f"{sum(p.shape[0] for p in calib.pixels())} tiles",
          flush=True)
    clock.done("calibrate (capture)", start)
    start, t0 = time.perf_counter(), time.perf_counter()

    def piece(names: list[str]) -> None:
        print(f"  {names[0]}: {time.perf_counter() - t0:.0f}s rss {rss_gb():.2f} GiB", flush=True)

    modules = quantize_npu_piecewise(
        model, args.recipe, calib, soc=args.soc, chunk=args.prefill_chunk, vision_batch=args.vision_batch,
        materialize=lambda names: materialize_piece(model, names, args.seed),
        release=lambda names: [model.get_submodule(n).to("meta") for n in names], on_piece=piece)
    clock.done("quantize (piecewise)", start)
    return modules


def weight_bytes(progs: dict) -> dict:
    """Distinct tensor bytes the programs hold, by dtype (a shared tensor counted once)."""
    seen, by = set(), Counter()
    for ep in progs.values():
        for t in (*ep.state_dict.values(), *[c for c in ep.constants.values() if isinstance(c, torch.Tensor)]):
            if t.data_ptr() in seen:
                continue
            seen.add(t.data_ptr())
            by[str(t.dtype).replace("torch.", "")] += t.numel() * t.element_size()
    return dict(by)


def lower_and_write(args, modules, config, clock: Clock) -> dict:
    from bluelm_edge import contract
    from bluelm_edge.export import bundle
    from bluelm_edge.export.pipeline import ExportOptions, lower_into, npu_io, write_from_cache
    from bluelm_edge.graphs.static import export_npu
    from bluelm_edge.text.tokenizer import default_tokenizer

    start = time.perf_counter()
    progs = export_npu(modules, config, args.prefill_chunk, args.vision_batch)
    del modules
    gc.collect()
    clock.done("torch.export", start)
    held = weight_bytes(progs)
    from bluelm_edge.export import shards

    by_layer = shards.weight_bytes_by_layer(progs[contract.PREFILL])
    packed = {n: sum((by_layer if n == contract.PREFILL else shards.weight_bytes_by_layer(ep)).values())
              for n, ep in progs.items() if n != contract.DECODE}  # decode shares prefill's tensors
    opts = ExportOptions(preset=args.preset, backend=args.backend, soc=args.soc, recipe=args.recipe, out=args.out,
                         vision_batch=args.vision_batch, max_context=args.max_context, seed=args.seed,
                         prefill_chunk=args.prefill_chunk, shards=args.shards)
    work = args.out.parent / f".{args.out.name}.scale-work"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    io = npu_io(opts, progs, config.decoder.layers)
    meta = contract.npu_metadata(config, args.prefill_chunk, args.vision_batch, io)
    missing = lower_into(work, opts, progs, meta)
    (work / "done.json").write_text(json.dumps({"quality": {}, "missing": missing}))
    clock.done(f"coverage + save (lower, {args.backend}, up to the SDK)", start)
    coverage = json.loads((work / contract.COVERAGE_JSON).read_text())
    del progs
    gc.collect()
    start = time.perf_counter()
    manifest = write_from_cache(opts, config, default_tokenizer(), work)
    problems = bundle.verify_bundle(args.out)
    if problems:
        raise SystemExit(f"bundle does not verify: {problems}")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    clock.done("write + verify bundle", start)
    return {"held_bytes": held, "missing": missing, "manifest": manifest,
            "cpu_fallbacks_in_decoder": coverage["cpu_fallbacks_in_decoder"],
            "partitions": {n: m.get("partitions") for n, m in coverage["methods"].items()},
            "shards": {**coverage["shards"], "weight_bytes_per_shard": shards.shard_bytes(
                by_layer, config.decoder.layers, coverage["shards"]["count"])},
            "weight_bytes_at_stored_width": packed}


def host_tokens(args, config, clock: Clock) -> dict:
    """Greedy tokens from the saved archive (fresh load) through the host NPU runner."""
    from bluelm_edge import contract
    from bluelm_edge.export.npu_host import NpuDecoder

    start = time.perf_counter()
    runner = NpuDecoder.from_archive(args.out / contract.PROGRAM_PT2)
    clock.done("load archive", start)
    ids = torch.arange(11, 11 + 40).reshape(1, -1) % config.decoder.vocab_size
    start = time.perf_counter()
    logits = runner.text_decoder(runner.token_embedding(ids), torch.arange(ids.shape[1]))
    prefill_s = time.perf_counter() - start
    out, start = [int(logits.argmax())], time.perf_counter()
    for i in range(args.tokens - 1):
        emb = runner.token_embedding(torch.tensor([[out[-1]]]))
        out.append(int(runner.text_decoder(emb, torch.tensor([ids.shape[1] + i])).argmax()))
    clock.done("host NPU runner (fake-quant graphs)", start)
    return {"tokens": out, "prefill_s": round(prefill_s, 1),
            "decode_s_per_token": round((time.perf_counter() - start) / max(args.tokens - 1, 1), 2)}


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bluelm-2.5-3b")
    ap.add_argument("--backend", default="qnn", choices=("qnn", "mediatek"))
    ap.add_argument("--soc", default=None, help="default: SM8650 (qnn), mt6989 (mediatek)")
    ap.add_argument("--recipe", default=None, help="default: qnn-16a4w / mediatek-a16w4")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bluelm-3b-npu"))
    ap.add_argument("--max-context", type=int, default=1024)
    ap.add_argument("--prefill-chunk", type=int, default=128)
    ap.add_argument("--vision-batch", type=int, default=1)
    ap.add_argument("--samples", type=int, default=8, help="calibration samples (the shipped set's first N)")
    ap.add_argument("--decoder-layers", type=int, default=None, help="override (scaling runs)")
    ap.add_argument("--vision-layers", type=int, default=None, help="override (scaling runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shards", default="auto", help="decoder contexts/chunks: auto (the SoC's budget) or N")
    ap.add_argument("--tokens", type=int, default=4, help="greedy tokens through the saved archive (0: skip)")
    ap.add_argument("--rss-limit-gb", type=float, default=17.0, help="abort above this RSS (GiB)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from bluelm_edge.export.pipeline import DEFAULT_RECIPES, DEFAULT_SOCS

    args.soc = args.soc or DEFAULT_SOCS[args.backend]
    args.recipe = args.recipe or DEFAULT_RECIPES[args.backend]
    return args


def main(argv=None) -> dict:
    from bluelm_edge.model.checkpoint import build_model, count_parameters
    from bluelm_edge.quant.vendor import prepare_qnn_env

    args = parse(argv)
    prepare_qnn_env()
    watchdog(args.rss_limit_gb)
    torch.set_grad_enabled(False)
    clock = Clock()
    config = build_config(args)
    model = build_model(config, "meta")
    params = count_parameters(model)
    start = time.perf_counter()
    materialize_rest(model, args.seed)
    clock.done("materialize vision + embeddings + head", start)
    modules = quantize(args, model, config, clock)
    del model
    gc.collect()
    written = lower_and_write(args, modules, config, clock)
    export_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB
    archive = args.out / "program.pt2"
    host = host_tokens(args, config, clock) if args.tokens else None
    result = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "preset": args.preset, "backend": args.backend, "soc": args.soc, "recipe": args.recipe,
        "decoder_layers": config.decoder.layers, "vision_layers": config.vision.layers,
        "vocab_size": config.decoder.vocab_size, "parameters": params, "max_context": args.max_context,
        "prefill_chunk": args.prefill_chunk, "samples": args.samples,
        "wall_s": round(time.perf_counter() - clock.t0, 1), "export_peak_rss_gb": round(export_peak, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB, 2),
        "machine_peak_used_delta_gb": round(USED["peak"], 2),
        "archive_bytes": archive.stat().st_size, "held_tensor_bytes": written.pop("held_bytes"),
        "bundle_id": written.pop("manifest")["bundle_id"], **written, "host": host, "stages": clock.stages,
        "torch_threads": torch.get_num_threads(), "loadavg_end": list(__import__("os").getloadavg()),
    }
    print(json.dumps(result, indent=2), flush=True)
    if args.json:
        from bluelm_edge.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
