"""Scale run: export the full `bluelm-2.5-3b` preset (random weights) with the XNNPACK 4-bit recipe.

Records wall time, peak RSS, `.pte` size and host decode tok/s, and appends a row to
benchmarks/RESULTS.md. CPU heavy (tens of minutes on 2 cores): run it alone.

    .venv/bin/python benchmarks/export_full.py --out /tmp/bluelm-3b-bundle --max-context 1024
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from bluelm_edge.export.pipeline import ExportOptions, run_export

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bluelm-3b-bundle"))
    ap.add_argument("--max-context", type=int, default=1024)
    ap.add_argument("--recipe", default="xnnpack-8da4w")
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    t0 = time.perf_counter()
    opts = ExportOptions(preset="bluelm-2.5-3b", recipe=args.recipe, max_context=args.max_context, out=args.out,
                         samples=args.samples, force=True)
    result = run_export(opts)
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    pte = next(f["size"] for f in result.manifest["files"] if f["path"] == "model.pte")
    row = {"wall_s": round(wall, 1), "peak_rss_gb": round(peak_gb, 2), "pte_gb": round(pte / 1e9, 3),
           "decode_tok_s": (result.host or {}).get("decode_tok_s"), "stage_s": result.stage_s}
    print(json.dumps(row, indent=2))
    with RESULTS.open("a") as f:
        f.write(f"\n## export_full ({args.recipe}, context {args.max_context})\n\n"
                f"`.venv/bin/python benchmarks/export_full.py --out {args.out} --max-context {args.max_context}`\n\n"
                f"```json\n{json.dumps(row, indent=2)}\n```\n")


if __name__ == "__main__":
    main()
