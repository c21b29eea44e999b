"""Expected runner behaviour for tests/vectors/runner_behaviour.json, from the rules below applied
to the exported tiny model's greedy choices (the host .pte decoder) and the tokenizer's bytes.

The rules (read from upstream extension/llm/runner and extension/android/jni, 1.5):
- generate(prompt): the prompt's tokens go into the cache (an error InvalidArgument if they do not
  fit: pos + n >= max_context); the first callback is the token sampled from the prefill;
  max_new_tokens counts it; then each step puts the previous token into the cache and samples the
  next; a stop() is honoured after a callback, except the prefill token's (the flag is reset after
  it); EOS ends generation, except when it is the prefill token; the last emitted token is never
  in the cache.
- prefill(text): its tokens go into the cache; the next generate(prompt) samples after it and them.
- Android's JNI concatenates token bytes until they are valid UTF-8 and then calls onResult.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.runner_scenarios import INVALID_ARGUMENT, SCENARIOS, run_scenario


def byte_table(tokenizer_json: Path) -> dict[int, bytes]:
    """Token id -> the bytes the runner's decode gives (ByteLevel vocabulary; added tokens as text)."""
    import json

    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    doc = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    unbyte = _unbyte()
    assert set(unbyte) >= set(alphabet)
    table = {i: bytes(unbyte[c] for c in tok) for tok, i in doc["model"]["vocab"].items()}
    table.update({a["id"]: a["content"].encode() for a in doc["added_tokens"]})
    return table


def _unbyte() -> dict[str, int]:
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in keep]
    return {**{chr(b): b for b in keep}, **{chr(256 + n): b for n, b in enumerate(extra)}}


def utf8_merge(parts: list[bytes]) -> list[str]:
    """What the JNI layer passes to onResult: bytes buffered until valid UTF-8; a tail is dropped."""
    out, buf = [], b""
    for p in parts:
        buf += p
        try:
            out.append(buf.decode("utf-8"))
            buf = b""
        except UnicodeDecodeError:
            continue
    return out


class Greedy:
    """The exported model's greedy next token after a context (the host decoder of the same .pte)."""

    def __init__(self, bundle: Path) -> None:
        from bluelm_edge.export.host import PteDecoder

        self.pte = PteDecoder(bundle / "model.pte")
        self.seen: dict[tuple[int, ...], int] = {}

    def __call__(self, ctx: list[int]) -> int:
        import torch

        key = tuple(ctx)
        if key not in self.seen:
            self.pte.reset()
            logits = self.pte.forward(torch.tensor([ctx]), torch.arange(len(ctx)))
            self.seen[key] = int(logits.reshape(-1, logits.shape[-1])[-1].argmax())
        return self.seen[key]


def expected_call(call: dict, kv: list[int], encode, lm, eos: set[int], ctx: int) -> dict[str, Any]:
    """One call by the rules; `kv` (the cache contents) is updated in place."""
    if call["op"] == "reset":
        kv.clear()
        return {"pos": 0}
    ids = encode(call["prompt"])
    if len(kv) + len(ids) >= ctx:
        return {"error": {"code": INVALID_ARGUMENT, "python": "RuntimeError: Generation failed"}, "pos": len(kv)}
    kv += ids
    if call["op"] == "prefill":
        return {"pos": len(kv)}
    budget = ctx - len(kv) if call["max_new_tokens"] == -1 else min(call["max_new_tokens"], ctx - len(kv))
    tokens = [lm(kv)]
    stop_at = set(call.get("stop_at", []))
    while len(tokens) < budget:
        kv.append(tokens[-1])
        tokens.append(lm(kv))
        if len(tokens) in stop_at or tokens[-1] in eos:
            break
    return {"tokens": tokens, "prompt_tokens": len(ids), "generated_tokens": len(tokens) - 1, "pos": len(kv)}


def build_vectors(bundle: Path) -> dict[str, Any]:
    import json

    from tokenizers import Tokenizer

    manifest = json.loads((bundle / "manifest.json").read_text())
    ctx, eos = manifest["app"]["max_context"], set(manifest["app"]["eos_ids"])
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    table = byte_table(bundle / "tokenizer.json")
    lm = Greedy(bundle)
    encode_table: dict[str, list[int]] = {}

    def encode(text: str) -> list[int]:
        encode_table[text] = tok.encode(text, add_special_tokens=False).ids
        return encode_table[text]

    scenarios = []
    for sc in SCENARIOS:
        kv: list[int] = []
        calls = []
        observed = run_scenario(bundle, sc)
        for call, seen in zip(sc["calls"], observed, strict=True):
            exp = expected_call(call, kv, encode, lm, eos, ctx)
            if "tokens" in exp:
                exp["pieces"] = utf8_merge([table[t] for t in exp["tokens"]])
                if "python_error" in seen:
                    exp["python_error"] = seen["python_error"]
            calls.append({**call, "expect": exp})
        scenarios.append({"name": sc["name"], "calls": calls, "kv": list(kv)})
    used = sorted({t for ctx_ in lm.seen for t in ctx_} | set(lm.seen.values()))
    return {
        "schema": "scenarios of ExecuTorch's LLM runner (tests/runner_vectors.py); vocab: token id -> hex bytes; "
                  "encode: text -> token ids; lm: [context ids, greedy next id] of the exported model; "
                  "expect.pieces: the Android JNI's onResult strings; expect.pos: KV position after the call",
        "max_context": ctx, "eos": sorted(eos),
        "vocab": {str(t): table[t].hex() for t in used},
        "encode": encode_table,
        "lm": [[list(k), v] for k, v in sorted(lm.seen.items())],
        "scenarios": scenarios,
    }
