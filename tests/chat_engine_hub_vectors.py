"""Builds tests/vectors/chat_engine_hub.json: the Java ChatEngine (ChatEngineTest) on bundles of
checkpoint families, with each bundle's real manifest (app.chat segments, family tokens, budget
message and suffix) and tokenizer bytes. The prompts are stated by intent: what the checkpoint's
own Jinja template renders (`text/template.py`, the one transformers runs), so the engine's
segment rendering must equal it token for token.

- qwen3 (thinks, `enable_thinking` switch): a budget forces Qwen3's message + `</think>` + its
  blank-line suffix; budget 0 takes the template's own non-thinking prompt; a second turn renders
  the history again (its non-thinking prompt holds an empty think block, so the cache cannot
  continue).
- smollm2 (cannot think): no budget still answers without thinking; a second turn continues the
  cache with the template's own closer + user turn.

Run by hand: `python -m tests.chat_engine_hub_vectors QWEN3_BUNDLE SMOLLM2_BUNDLE` (bundles from
`bluelm-edge export --model DIR --recipe fp32` of tests/hub_folders.py's folders).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.chat_engine_vectors import case
from tests.runner_vectors import byte_table


def _reader(bundle: Path):
    from tokenizers import Tokenizer

    from bluelm_edge.text.template import render_template

    manifest = json.loads((bundle / "manifest.json").read_text())
    chat = manifest["app"]["chat"]
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    encode: dict[str, list[int]] = {}
    switch = (chat.get("thinking") or {}).get("switch")

    def enc(text: str) -> list[int]:
        encode[text] = tok.encode(text, add_special_tokens=False).ids
        return encode[text]

    def prompt(turns: list[str], think: bool) -> str:
        msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
        extra = {switch: think} if switch else {}
        text = render_template(chat["chat_template"], msgs, add_generation_prompt=True,
                               special=chat["template_tokens"], **extra)
        return text + (manifest["app"]["tokens"]["think_start"] if think else "")

    return manifest, tok, encode, enc, prompt


def _piece(tok, *texts: str) -> list[int]:
    """One token id per text (each must be a single token of the vocabulary)."""
    ids = [tok.token_to_id(t) for t in texts]
    assert None not in ids, texts
    return ids


def qwen3(bundle: Path) -> dict[str, Any]:
    manifest, tok, encode, enc, prompt = _reader(bundle)
    app = manifest["app"]
    eos = app["token_ids"]["eos"]
    h, ell, w, o = _piece(tok, "He", "ll", "W", "o")
    msg, suffix = app["thinking"]["budget_message"], app["thinking"]["budget_suffix"]
    F = enc(msg + app["tokens"]["think_end"] + suffix)
    P, P0 = enc(prompt(["Hi"], True)), enc(prompt(["Hi"], False))
    second = enc(prompt(["Hi", "o", "Again"], False))
    cases = [
        case("qwen3_budget_2_forces_its_message_end_and_suffix", "Hi", 2, [h, ell, w, o, eos],
             shown=[["He", 1, 0], ["ll", 1, 0], [msg, 1, 1], [suffix, 0, 1], ["o", 0, 0]], thinking=2, finish="eos",
             kv=P + [h, ell] + F + [o], stops=1, steps=3, calls=2),
        case("qwen3_budget_0_takes_the_templates_non_thinking_prompt", "Hi", 0, [o, eos],
             shown=[["o", 0, 0]], thinking=0, finish="eos", kv=P0 + [o], stops=0, steps=1, calls=1),
        case("qwen3_second_turn_renders_the_history", "Hi", 0, [o, eos, w, eos],
             shown=[["o", 0, 0]], thinking=0, finish="eos", kv=second + [w], stops=0, steps=2, calls=1, resets=2,
             then={"user": "Again", "budget": 0, "shown": [["W", 0, 0]]}),
    ]
    return _doc(bundle, manifest, encode, cases)


def smollm2(bundle: Path) -> dict[str, Any]:
    manifest, tok, encode, enc, prompt = _reader(bundle)
    app = manifest["app"]
    eos = app["token_ids"]["eos"]
    w, o = _piece(tok, "W", "o")
    P = enc(prompt(["Hi"], False))
    closer = app["chat"]["segments"]["between"]["assistant>user"]
    turn = enc(closer + "Again" + app["chat"]["segments"]["generation"]["no_think"])
    assert prompt(["Hi", "o", "Again"], False) == prompt(["Hi"], False) + "o" + closer + "Again" + \
        app["chat"]["segments"]["generation"]["no_think"]
    cases = [
        case("smollm2_cannot_think_so_no_budget_answers_directly", "Hi", None, [o, w, eos],
             shown=[["o", 0, 0], ["W", 0, 0]], thinking=0, finish="eos", kv=P + [o, w], stops=0, steps=2, calls=1),
        case("smollm2_second_turn_continues_the_cache", "Hi", None, [o, eos, w, eos],
             shown=[["o", 0, 0]], thinking=0, finish="eos", kv=P + [o] + turn + [w], stops=0, steps=2, calls=1,
             resets=1, then={"user": "Again", "budget": None, "shown": [["W", 0, 0]]}),
    ]
    return _doc(bundle, manifest, encode, cases)


def _doc(bundle: Path, manifest: dict, encode: dict, cases: list[dict]) -> dict[str, Any]:
    table = byte_table(bundle / "tokenizer.json")
    used = sorted({i for c in cases for i in c["script"]} | {i for ids in encode.values() for i in ids})
    return {"family": manifest["app"]["chat"]["family"], "manifest": manifest, "encode": encode,
            "vocab": {str(i): table[i].hex() for i in used}, "counter_vocab": [table[i].hex() for i in sorted(table)],
            "cases": cases}


def build(qwen3_bundle: Path, smollm2_bundle: Path) -> dict[str, Any]:
    return {"schema": "ChatEngine on checkpoint families (tests/chat_engine_hub_vectors.py); each set has the "
                      "fields of chat_engine.json",
            "sets": [qwen3(qwen3_bundle), smollm2(smollm2_bundle)]}


if __name__ == "__main__":
    out = Path("tests/vectors/chat_engine_hub.json")
    out.write_text(json.dumps(build(Path(sys.argv[1]), Path(sys.argv[2])), ensure_ascii=False, indent=1) + "\n",
                   encoding="utf-8")
    print(f"wrote {out}")
