"""Scale run: export the full `bluelm-2.5-3b` preset (seeded random weights) through XNNPACK 8da4w.

The model is built on the meta device and materialised + initialised + quantized one piece at a
time (`bluelm_edge.export.scale`), so the fp32 model never sits whole in memory. Then the contract
methods are exported, lowered with XNNPACK and written as a verified bundle, and one short greedy
generation through the `.pte` (`export.host`) gives the host decode speed. Records wall time per
stage, peak RSS (ru_maxrss, and the high-water mark after each stage), `.pte` size and tok/s as
JSON. `--decoder-layers/--vision-layers` shrink the model for a scaling measurement.
CPU heavy (tens of minutes on 2 cores): run it alone.

    .venv/bin/python benchmarks/export_full.py --out /tmp/bluelm-3b-bundle --max-context 512 \
        --json benchmarks/export_full.json

No calibration or fp32 quality comparison: the recipe needs none (min-max torchao weights, no
recovery), and an fp32 reference would need the whole fp32 model in memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import torch

GB = 1024**3


def rss_gb(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM) resident set of this process, GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / GB
    return 0.0


def used_gb() -> float:
    """Memory in use on the machine (MemTotal - MemAvailable), GiB."""
    info = {line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()}
    return (info["MemTotal"] - info["MemAvailable"]) * 1024 / GB


USED = {"baseline": used_gb(), "peak": 0.0}  # machine-wide high-water mark (counts the lowering worker)


def watchdog(limit_gb: float) -> None:
    """Abort the process (exit 3) if its RSS passes `limit_gb`: the machine is shared. Also samples
    the machine's memory in use, so a forked lowering worker's pages count too."""
    def loop() -> None:
        while True:
            USED["peak"] = max(USED["peak"], used_gb() - USED["baseline"])
            if rss_gb() > limit_gb:
                print(f"RSS {rss_gb():.1f} GiB > limit {limit_gb} GiB: aborting", file=sys.stderr, flush=True)
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=loop, daemon=True).start()


class Clock:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.stages: dict[str, dict[str, float]] = {}

    def done(self, name: str, start: float) -> None:
        self.stages[name] = {"s": round(time.perf_counter() - start, 1), "rss_gb": round(rss_gb(), 2),
                             "peak_rss_gb": round(rss_gb("VmHWM"), 2)}
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {name}: {self.stages[name]}", flush=True)


def build_config(args: argparse.Namespace):
    from bluelm_edge.model.config import preset

    config = preset(args.preset)
    if args.decoder_layers:
        config.decoder.layers = args.decoder_layers
    if args.vision_layers:
        config.vision.layers = args.vision_layers
    config.decoder.max_seq_len = args.max_context
    return config.validate()


def materialize(args: argparse.Namespace, config, clock: Clock):
    from bluelm_edge.export.scale import materialize_and_quantize, pieces
    from bluelm_edge.model.checkpoint import build_model, count_parameters
    from bluelm_edge.quant.recipes import get_recipe

    model = build_model(config, "meta")
    params = count_parameters(model)
    print(f"parameters: {json.dumps(params)}", flush=True)
    total, t0, n = len(pieces(model)), time.perf_counter(), [0]

    def progress(names: list[str]) -> None:
        n[0] += 1
        print(f"  piece {n[0]}/{total} {names[0]}: {time.perf_counter() - t0:.0f}s rss {rss_gb():.2f} GiB",
              flush=True)

    start = time.perf_counter()
    materialize_and_quantize(model, get_recipe(args.recipe), seed=args.seed, on_piece=progress)
    clock.done("materialize+quantize", start)
    return model, params


def export_and_lower(args: argparse.Namespace, model, config, clock: Clock, pte_path: Path) -> int:
    from bluelm_edge import contract
    from bluelm_edge.export import lower_xnnpack
    from bluelm_edge.graphs import methods
    from bluelm_edge.graphs.forms import graph_source

    chunk = min(args.prefill_chunk or config.decoder.max_seq_len, config.decoder.max_seq_len)
    start = time.perf_counter()
    source = graph_source("xnnpack", model)
    names = [m for m in contract.METHODS if m != contract.FORWARD]  # forward: composed when lowered
    progs = methods.export_methods(source, chunk, args.vision_batch, modules=methods.wrappers(source, names))
    clock.done("torch.export", start)
    start = time.perf_counter()
    size = lower_xnnpack.lower(progs, contract.metadata(config, chunk, args.vision_batch), pte_path)
    clock.done("lower (xnnpack) + to_executorch", start)
    return size


def work_dir(args: argparse.Namespace) -> Path:
    return args.out.parent / f".{args.out.name}.scale-work"


def write_bundle(args: argparse.Namespace, config, clock: Clock) -> dict:
    from bluelm_edge.export import bundle
    from bluelm_edge.export.pipeline import ExportOptions, write_from_cache
    from bluelm_edge.text.tokenizer import default_tokenizer

    start = time.perf_counter()
    work = work_dir(args)
    opts = ExportOptions(preset=args.preset, recipe=args.recipe, out=args.out, vision_batch=args.vision_batch,
                         max_context=args.max_context, seed=args.seed)
    manifest = write_from_cache(opts, config, default_tokenizer(), work)
    problems = bundle.verify_bundle(args.out)
    if problems:
        raise SystemExit(f"bundle does not verify: {problems}")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    clock.done("write + verify bundle", start)
    return manifest


def host_run(args: argparse.Namespace, clock: Clock) -> dict:
    """One short greedy generation through the bundle's .pte (`load_bundle_decoder` + ChatSession)."""
    from bluelm_edge.export.host import benchmark_host

    start = time.perf_counter()
    run = benchmark_host(args.out, [args.prompt], runs=1, thinking_budget=None, max_new_tokens=args.tokens)["runs"][0]
    clock.done("host generation", start)
    keys = ("load_ms", "ttft_ms", "prefill_tokens", "prefill_tok_s", "decode_tokens", "decode_tok_s")
    return {k: round(float(run[k]), 2) for k in keys}


def bandwidth_gbs(mib: int = 256, rounds: int = 5) -> float:
    """Best of `rounds` copies of a `mib` MiB float32 tensor (read + write), GB/s, this process's threads."""
    src = torch.ones(mib * 2**18)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best / 1e9


def roofline(pte_bytes: int, params: dict, host: dict) -> dict:
    """Decode as a fraction of the copy-bandwidth roofline. Bytes read per token ~ the .pte minus what
    a decode step does not read: the vision tower, adapter and embedding table (8-bit: ~1 byte each)."""
    gbs = bandwidth_gbs()
    per_token = pte_bytes - params["vision"] - params["adapter"] - params["decoder_embedding"]
    ceiling = gbs * 1e9 / per_token
    return {"bandwidth_gbs": round(gbs, 2), "bytes_per_token": per_token, "roofline_tok_s": round(ceiling, 2),
            "fraction_of_roofline": round(host["decode_tok_s"] / ceiling, 3), "loadavg": os.getloadavg()}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bluelm-2.5-3b")
    ap.add_argument("--recipe", default="xnnpack-8da4w")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bluelm-3b-bundle"))
    ap.add_argument("--max-context", type=int, default=512)
    ap.add_argument("--prefill-chunk", type=int, default=None, help="default: the whole context")
    ap.add_argument("--vision-batch", type=int, default=1)
    ap.add_argument("--decoder-layers", type=int, default=None, help="override (scaling runs)")
    ap.add_argument("--vision-layers", type=int, default=None, help="override (scaling runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt", default="What is 17+25?")
    ap.add_argument("--tokens", type=int, default=32, help="max new tokens of the host generation")
    ap.add_argument("--rss-limit-gb", type=float, default=17.0, help="abort above this RSS (GiB)")
    ap.add_argument("--json", type=Path, default=None, help="write the results JSON here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    watchdog(args.rss_limit_gb)
    torch.set_grad_enabled(False)
    clock = Clock()
    config = build_config(args)
    model, params = materialize(args, config, clock)
    work_dir(args).mkdir(parents=True, exist_ok=True)
    pte_bytes = export_and_lower(args, model, config, clock, work_dir(args) / "model.pte")
    del model
    gc.collect()
    manifest = write_bundle(args, config, clock)
    host = host_run(args, clock)
    export_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB
    ceiling = roofline(pte_bytes, params, host)  # its copy probe is 0.5 GiB: after the export's peak
    result = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "preset": args.preset, "recipe": args.recipe, "decoder_layers": config.decoder.layers,
        "vision_layers": config.vision.layers, "vocab_size": config.decoder.vocab_size,
        "parameters": params, "max_context": args.max_context, "prefill_chunk": args.prefill_chunk,
        "vision_batch": args.vision_batch, "wall_s": round(time.perf_counter() - clock.t0, 1),
        "peak_rss_gb": round(export_peak, 2),  # the export through the host generation
        "peak_rss_with_probe_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB, 2),
        "machine_peak_used_delta_gb": round(USED["peak"], 2),
        "pte_bytes": pte_bytes, "pte_gb": round(pte_bytes / GB, 3), "bundle_id": manifest["bundle_id"],
        "host": host, "roofline": ceiling, "stages": clock.stages,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2), flush=True)
    if args.json:
        from bluelm_edge.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
