"""Greedy task accuracy of a QNN fake-quant model: token by token vs draft-and-verify.

Builds the `qnn-16a4w` variant of the shipped stand-in (no recovery), then answers the same
held-out examples (thinking mode, no budget) twice through `ChatSession`: with the quantized runner
itself (one fake-quant graph call per token) and through `quant.verify.VerifiedDecoder` (fp32
proposes, the graph checks whole sequences). Records wall time, graph calls and whether the
answers are identical, as JSON. CPU heavy (minutes): run it alone.

    QNN_SDK_ROOT="" .venv/bin/python benchmarks/quant_eval_speed.py --per-task 1 \
        --json benchmarks/quant_eval_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-task", type=int, default=1, help="held-out examples per task")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()

    from bluelm_edge.datasets.tasks import TASKS, eval_examples
    from bluelm_edge.generate import Sampling
    from bluelm_edge.model.checkpoint import load_checkpoint
    from bluelm_edge.paths import DEFAULT_MODEL_DIR
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import calibrate_in_memory
    from bluelm_edge.quant.recipes import get_recipe
    from bluelm_edge.quant.report import QuantRunner, build_variant
    from bluelm_edge.quant.verify import VerifiedDecoder
    from bluelm_edge.session import ChatSession
    from bluelm_edge.text.tokenizer import Tokenizer

    model, cfg = load_checkpoint(DEFAULT_MODEL_DIR)
    tok = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
    calib = calibrate_in_memory(model, tok, cfg, load_set(samples=16))
    quant = build_variant(model, get_recipe("qnn-16a4w"), calib, [])
    examples = [ex for t in TASKS for ex in eval_examples(t, args.per_task)]
    sampling = Sampling(max_new_tokens=160)

    calls = {"n": 0}
    graph_call = quant.all_logits

    def counted(*a):
        calls["n"] += 1
        return graph_call(*a)

    quant.all_logits = counted  # both ways reach the decoder graph through this method

    def answer(decoder) -> tuple[list[list[int]], float, int]:
        calls["n"] = 0
        t0 = time.perf_counter()
        out = []
        for ex in examples:
            images = [ex.image()] if ex.image_spec is not None else []
            out.append(ChatSession(decoder, tok, cfg).ask(ex.question, images, think=True, sampling=sampling).tokens)
        return out, time.perf_counter() - t0, calls["n"]

    slow, slow_s, slow_calls = answer(quant)
    verified = VerifiedDecoder(quant, QuantRunner(model), draft_tokens=160, stop_ids=[cfg.tokens.eos])
    fast, fast_s, fast_calls = answer(verified)
    result = {
        "examples": len(examples), "generated_tokens": sum(map(len, slow)),
        "token_by_token": {"seconds": round(slow_s, 1), "graph_calls": slow_calls},
        "draft_and_verify": {"seconds": round(fast_s, 1), "graph_calls": fast_calls},
        "speedup": round(slow_s / fast_s, 2), "identical_tokens": slow == fast,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
