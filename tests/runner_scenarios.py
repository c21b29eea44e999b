"""The scripted runner scenarios behind tests/vectors/runner_behaviour.json, run on ExecuTorch's own
runner bindings (TextLLMRunner, MultimodalRunner) of an exported tiny bundle.

`observe(bundle)` records what the real runner does; `write_vectors(bundle, path)` turns that into
the shared vectors (run by hand: `python -m tests.runner_scenarios BUNDLE`); the tests in
test_runner_behaviour.py re-run the scenarios and assert every expectation in the file, and the
Java model of LlmModule (android_demo/core, RunnerModelTest) must reproduce the same file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CONTEXT_FULL_PROMPT = " ".join(["cat"] * 125)  # 250 tokens of the tiny tokenizer: 6 positions left of 256
TOO_LONG_PROMPT = " ".join(["cat"] * 130)  # 260 tokens: more than the context
# name, behaviour it shows, calls (op, argument, max_new_tokens, callbacks at which stop() is called)
SCENARIOS: list[dict[str, Any]] = [
    {"name": "eos_ends_generation", "calls": [{"op": "generate", "prompt": "the answer", "max_new_tokens": 12}]},
    {"name": "stop_in_first_callback_is_ignored",
     "calls": [{"op": "generate", "prompt": "Hello world", "max_new_tokens": 8, "stop_at": [1]}]},
    {"name": "stop_at_callback_3_returns_3_pieces",
     "calls": [{"op": "generate", "prompt": "Hello world", "max_new_tokens": 8, "stop_at": [3]}]},
    {"name": "repeated_stop_after_ignored_first_takes_effect",
     "calls": [{"op": "generate", "prompt": "Hello world", "max_new_tokens": 8, "stop_at": [1, 2]}]},
    {"name": "last_token_left_out_of_kv_cache",
     "calls": [{"op": "generate", "prompt": "three sun !", "max_new_tokens": 8, "stop_at": [3]},
               {"op": "generate", "prompt": " red", "max_new_tokens": 4}]},
    {"name": "max_new_tokens_counts_the_prefill_piece",
     "calls": [{"op": "generate", "prompt": "Hello world", "max_new_tokens": 1},
               {"op": "reset"}, {"op": "generate", "prompt": "Hello world", "max_new_tokens": 3}]},
    {"name": "eos_from_prefill_does_not_stop",
     "calls": [{"op": "generate", "prompt": "the dog ? dog", "max_new_tokens": 12}]},
    {"name": "prefill_multibyte_counts_tokens",
     "calls": [{"op": "prefill", "prompt": "你好"}, {"op": "generate", "prompt": " world", "max_new_tokens": 4}]},
    {"name": "invalid_utf8_bytes_are_held_back",
     "calls": [{"op": "generate", "prompt": "书 天 Hello .", "max_new_tokens": 8}]},
    {"name": "generation_stops_at_the_context_end",
     "calls": [{"op": "generate", "prompt": CONTEXT_FULL_PROMPT, "max_new_tokens": -1},
               {"op": "generate", "prompt": " cat", "max_new_tokens": 3}]},
    {"name": "prompt_longer_than_context_fails",
     "calls": [{"op": "generate", "prompt": TOO_LONG_PROMPT, "max_new_tokens": 3}]},
]
# Error codes from upstream (runtime/core/error.h); the Python bindings only say "Generation failed".
INVALID_ARGUMENT = 0x12


def runner(bundle: Path, kind: str = "text"):
    from executorch.extension.llm.runner import MultimodalRunner, TextLLMRunner

    from bluelm_edge.graphs.xnnpack import load_custom_ops

    load_custom_ops()
    cls = TextLLMRunner if kind == "text" else MultimodalRunner
    return cls(str(bundle / "model.pte"), str(bundle / "tokenizer.json"))


def config(max_new_tokens: int):
    from executorch.extension.llm.runner import GenerationConfig

    return GenerationConfig(echo=False, max_new_tokens=max_new_tokens, temperature=0.0, num_bos=0)


def run_call(r, call: dict, kind: str = "text") -> dict[str, Any]:
    """One call on a real runner: pieces (as the Python callback got them), stats, the error."""
    from executorch.extension.llm.runner import make_text_input

    if call["op"] == "reset":
        r.reset()
        return {}
    text = call["prompt"] if kind == "text" else [make_text_input(call["prompt"])]
    if call["op"] == "prefill":
        r.prefill(text, config(1)) if kind == "text" else r.prefill(text)
        return {}
    pieces: list[str] = []
    stats: list[Any] = []
    stop_at = set(call.get("stop_at", []))

    def on_piece(p: str) -> None:
        pieces.append(p)
        if len(pieces) in stop_at:
            r.stop()

    out: dict[str, Any] = {"pieces": pieces}
    try:
        r.generate(text, config(call["max_new_tokens"]), token_callback=on_piece, stats_callback=stats.append)
    except UnicodeDecodeError:
        out["python_error"] = "UnicodeDecodeError"
    except RuntimeError as err:
        out["python_error"] = f"RuntimeError: {err}"
    if stats:
        out["prompt_tokens"], out["generated_tokens"] = stats[0].num_prompt_tokens, stats[0].num_generated_tokens
    return out


def run_scenario(bundle: Path, scenario: dict, kind: str = "text", r=None) -> list[dict[str, Any]]:
    r = r or runner(bundle, kind)
    r.reset()
    return [run_call(r, c, kind) for c in scenario["calls"]]


def position_after(bundle: Path, scenario: dict, r=None) -> int | None:
    """The KV position after a scenario, from MultimodalRunner: its stats' prompt_tokens is the
    position after prefilling, so prompt_tokens + generated_tokens of the last generate that ran
    is where the cache ended (None when no generate ran to the end in Python)."""
    r = r or runner(bundle, "multimodal")
    done = [c for c in run_scenario(bundle, scenario, "multimodal", r) if "generated_tokens" in c]
    return done[-1]["prompt_tokens"] + done[-1]["generated_tokens"] if done else None


def main(argv: list[str]) -> None:
    from tests.runner_vectors import build_vectors

    bundle, out = Path(argv[0]), Path(argv[1]) if len(argv) > 1 else Path("tests/vectors/runner_behaviour.json")
    out.write_text(json.dumps(build_vectors(bundle), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
