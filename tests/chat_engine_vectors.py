"""Builds tests/vectors/chat_engine.json: end-to-end cases of the Java ChatEngine over the Java
runner model (ChatEngineTest), with the exported tiny bundle's real manifest, tokenizer bytes and
tokenisation. Each case scripts the tokens the model samples, in order, and states by intent what
must happen: the pieces shown, the thinking tokens counted, how the answer ended, the exact KV cache
contents at the end (prompt + kept tokens + forced text, nothing twice, nothing dropped), the
stop() calls and the decode steps (no invisible run-on). Run by hand:
`python -m tests.chat_engine_vectors BUNDLE`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.runner_vectors import byte_table


def build(bundle: Path) -> dict[str, Any]:
    from tokenizers import Tokenizer

    from bluelm_edge.text.chat import Message, render_text

    manifest = json.loads((bundle / "manifest.json").read_text())
    app = manifest["app"]
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    table = byte_table(bundle / "tokenizer.json")
    encode: dict[str, list[int]] = {}

    def enc(text: str) -> list[int]:
        encode[text] = tok.encode(text, add_special_tokens=False).ids
        return encode[text]

    def prompt(history: list[tuple[str, str]], user: str, think: bool) -> str:
        msgs = [m for u, a in history for m in (Message("user", u), Message("assistant", a))]
        text = render_text([*msgs, Message("user", user)], think=think, add_generation_prompt=True)
        return text + (app["tokens"]["think_start"] if think else "")

    t = app["token_ids"]
    eos, think_end, think_start = t["eos"], t["think_end"], t["think_start"]
    h, ell, o, sp, w = enc("Hello world")[:5]
    ni = enc("你")  # three byte tokens, one streamed piece
    forced_budget = app["thinking"]["budget_message"] + app["tokens"]["think_end"]
    msg = app["thinking"]["budget_message"]
    p_think, p_plain = prompt([], "Hi", True), prompt([], "Hi", False)
    P, P0 = enc(p_think), enc(p_plain)
    F = enc(forced_budget)
    enc(app["tokens"]["think_end"])
    cases = [
        case("budget_none_thinks_until_the_model_closes", "Hi", None, [h, ell, think_end, o, sp, eos],
             shown=[["H", 1, 0], ["ell", 1, 0], ["o", 0, 0], [" ", 0, 0]], thinking=2, finish="eos",
             kv=P + [h, ell, think_end, o, sp], stops=0, steps=5, calls=1),
        case("budget_0_answers_without_thinking", "Hi", 0, [o, sp, eos],
             shown=[["o", 0, 0], [" ", 0, 0]], thinking=0, finish="eos", kv=P0 + [o, sp], stops=0, steps=2, calls=1),
        case("budget_1_forces_at_the_first_piece", "Hi", 1, [h, ell, o, sp, eos],
             shown=[["H", 1, 0], [msg, 1, 1], ["o", 0, 0], [" ", 0, 0]], thinking=1, finish="eos",
             kv=P + [h] + F + [o, sp], stops=1, steps=3, calls=2),
        case("budget_2_forces_after_two_tokens", "Hi", 2, [h, ell, w, o, eos],
             shown=[["H", 1, 0], ["ell", 1, 0], [msg, 1, 1], ["o", 0, 0]], thinking=2, finish="eos",
             kv=P + [h, ell] + F + [o], stops=1, steps=3, calls=2),
        case("budget_3_counts_the_tokens_of_a_chinese_character", "Hi", 3, [*ni, h, o, eos],
             shown=[["你", 1, 0], [msg, 1, 1], ["o", 0, 0]], thinking=3, finish="eos",
             kv=P + ni + F + [o], stops=1, steps=4, calls=2),
        case("thinking_is_opened_in_the_prompt", "Hi", None, [think_start, h, think_end, o, eos],
             shown=[["H", 1, 0], ["o", 0, 0]], thinking=1, finish="eos",
             kv=P + [think_start, h, think_end, o], stops=0, steps=4, calls=1),
        case("eos_inside_thinking_closes_it_and_answers", "Hi", None, [h, eos, o, sp, eos],
             shown=[["H", 1, 0], ["o", 0, 0], [" ", 0, 0]], thinking=1, finish="eos",
             kv=P + [h] + encode["</think>"] + [o, sp], stops=0, steps=3, calls=2),
        case("user_stop_in_the_first_piece_is_repeated", "Hi", None, [h, ell, o, sp, w, eos],
             shown=[["H", 1, 0]], thinking=1, finish="user", kv=P + [h], stops=2, steps=1, calls=1, user_stop_at=1),
        case("context_full_ends_the_answer", "Hi", 0, [o, sp, w, h, eos],
             shown=[["o", 0, 0], [" ", 0, 0], ["w", 0, 0]], thinking=0, finish="context_full",
             kv=P0 + [o, sp], stops=0, steps=2, calls=1, max_context=len(P0) + 3),
        case("prompt_longer_than_the_context_is_an_error", "Hi", 0, [],
             shown=[], thinking=0, finish="error", kv=[], stops=0, steps=0, calls=0, max_context=len(P0) - 1,
             error="generate failed (ExecuTorch error 0x12)"),
    ]
    cases.append(case("eos_as_the_prefill_piece_ends_the_answer", "Hi", 0, [eos, o, sp, eos],
                      shown=[], thinking=0, finish="eos", kv=P0 + [eos], stops=1, steps=1, calls=1))
    turn = enc(app["tokens"]["eos"] + render_text([Message("user", "Again")], think=False, add_generation_prompt=True)
               .removeprefix(app["tokens"]["bos"]))
    cases.append(case("second_turn_continues_the_cache", "Hi", 0, [o, sp, eos, w, eos],
                      shown=[["o", 0, 0], [" ", 0, 0]], thinking=0, finish="eos", kv=P0 + [o, sp] + turn + [w],
                      stops=0, steps=3, calls=1, resets=1, then={"user": "Again", "budget": 0, "shown": [["w", 0, 0]]}))
    second_after_thinking = enc(prompt([("Hi", " ")], "Again", False))
    cases.append(case("second_turn_after_thinking_renders_the_history", "Hi", None, [h, think_end, sp, eos, w, eos],
                      shown=[["H", 1, 0], [" ", 0, 0]], thinking=0, finish="eos", kv=second_after_thinking + [w],
                      stops=0, steps=4, calls=1, resets=2, then={"user": "Again", "budget": 0, "shown": [["w", 0, 0]]}))
    cases.append(two_images(app, enc, o, eos))
    used = sorted({i for c in cases for i in c["script"]} | {i for ids in encode.values() for i in ids})
    return {
        "schema": "ChatEngine end-to-end over the Java runner model (tests/chat_engine_vectors.py): script = the "
                  "tokens the model samples in order; shown = [text, thinking 0/1, forced 0/1]; kv = the cache at "
                  "the end; stops = stop() calls; steps = decode steps after the prefill samples",
        "manifest": manifest, "encode": encode,
        "vocab": {str(i): table[i].hex() for i in used},
        "counter_vocab": [table[i].hex() for i in sorted(table)],
        "cases": cases,
    }


def two_images(app: dict[str, Any], enc, o: int, eos: int) -> dict[str, Any]:
    """Two images in one message (1 and 2 tiles): each prefilled where its placeholders are, the
    text around them as prompts; the runner model marks an image position -1; temperature passed on."""
    from bluelm_edge.text.chat import Message, render_text

    n = app["image"]["tokens_per_tile"]
    text = render_text([Message("user", "Hi", images=[None, None])], think=False, add_generation_prompt=True,
                       image_tokens=[n, 2 * n])
    pieces = text.split(app["tokens"]["image"])  # before, n-1 empty, between, 2n-1 empty, after
    assert len(pieces) == 3 * n + 1 and not any(pieces[1:n]) and not any(pieces[n + 1:3 * n])
    before, between, after = pieces[0], pieces[n], pieces[3 * n]
    kv = enc(before) + [-1] * n + enc(between) + [-1] * (2 * n) + enc(after) + [o]
    return case("two_images_are_prefilled_where_their_placeholders_are", "Hi", 0, [o, eos], images=[1, 2],
                temperature=0.7, shown=[["o", 0, 0]], thinking=0, finish="eos", kv=kv, stops=0, steps=1, calls=1)


def case(name: str, user: str, budget: int | None, script: list[int], images: list[int] | None = None,
         temperature: float | None = None, **expect: Any) -> dict[str, Any]:
    """One engine case; `images`: the tiles of each image of the message; `temperature`: set first."""
    out = {"name": name, "user": user, "budget": budget, "script": script, "expect": expect}
    if images:
        out["images"] = images
    if temperature is not None:
        out["temperature"] = temperature
    return out


if __name__ == "__main__":
    bundle = Path(sys.argv[1])
    out = Path("tests/vectors/chat_engine.json")
    out.write_text(json.dumps(build(bundle), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
