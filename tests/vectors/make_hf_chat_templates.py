"""Writes hf_chat_templates.json: transformers' `apply_chat_template` on the published templates.

Run: PYTHONPATH=. python tests/vectors/make_hf_chat_templates.py  (needs transformers; no network).
Each case: family, messages (as given to transformers), turns (the same as role, content and an
image count: the form of `text/segments.render` and the Java core's TemplateSegments),
add_generation_prompt, template variables (enable_thinking), and the expected string. `segments`:
each template as `text/segments.derive` cuts it (what a bundle's manifest carries for the app).
tests/test_hub_families.py and tests/test_java_core.py check our renderers and transformers on it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hub_folders import FAMILIES, TEMPLATES, VECTORS, build_tokenizer, renderer  # noqa: E402

U1, A1, U2 = "Hello! What is 17 + 25?", "It is 42.", "Why?"
CONVERSATIONS = {
    "one_turn": [{"role": "user", "content": U1}],
    "multi_turn": [{"role": "user", "content": U1}, {"role": "assistant", "content": A1},
                   {"role": "user", "content": U2}],
    "system": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": U1}],
    "earlier_thinking": [{"role": "user", "content": U1},
                         {"role": "assistant", "content": "<think>\n17 + 25 = 42\n</think>\n\nIt is 42."},
                         {"role": "user", "content": U2}],
    "whitespace": [{"role": "user", "content": "  spaced out \n"}],
}


SMOLVLM = {"template": "smolvlm.jinja", "tokens": {"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>"}}
IMAGE_CONVERSATIONS = {
    "one_turn": [{"role": "user", "content": U1, "images": 0}],
    "one_image": [{"role": "user", "content": "Describe the picture.", "images": 1}],
    "two_images": [{"role": "user", "content": "What differs?", "images": 2}],
    "image_then_text": [{"role": "user", "content": "Describe the picture.", "images": 1},
                        {"role": "assistant", "content": A1, "images": 0},
                        {"role": "user", "content": "  And the colours? ", "images": 0}],
    "system": [{"role": "system", "content": "You are terse.", "images": 0},
               {"role": "user", "content": U1, "images": 1}],
}


def _parts(turn: dict) -> dict:
    return {"role": turn["role"],
            "content": [{"type": "image"}] * turn["images"] + [{"type": "text", "text": turn["content"]}]}


def _turns(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"], "images": 0} for m in messages]


def smolvlm_cases() -> list[dict]:
    """SmolVLM's template through transformers' Idefics3Processor (content as parts, images first)."""
    from idefics3_folder import make_processor

    processor, out = make_processor(), []
    for name, turns in IMAGE_CONVERSATIONS.items():
        whole = [*turns, {"role": "assistant", "content": A1, "images": 0}] if turns[-1]["role"] == "user" else turns
        for case, conv, gen in ((name, turns, True), (f"{name}+answer", whole, False)):
            messages = [_parts(t) for t in conv]
            text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            out.append({"family": "smolvlm", **SMOLVLM, "case": case, "messages": messages, "turns": conv,
                        "add_generation_prompt": gen, "variables": {}, "expected": text})
    return out


DATED = {"family": "llama", "template": "llama3_2_style.jinja", "now": "2026-03-05",
         "variables": {"date_string": "05 Mar 2026"}}  # transformers fills the date from date_string


def dated_cases() -> list[dict]:
    """A Llama 3.2-style template that writes today's date: transformers given the date as
    `date_string`, our segments given the same day as `now` (the app fills it from its clock)."""
    import transformers

    spec = FAMILIES["llama"]
    template = (TEMPLATES / DATED["template"]).read_text()
    with tempfile.TemporaryDirectory() as tmp:
        fast = transformers.PreTrainedTokenizerFast(tokenizer_object=build_tokenizer("llama"), **spec["tokens"])
        fast.save_pretrained(tmp)
        tok = transformers.AutoTokenizer.from_pretrained(tmp)
    out = []
    for name in ("one_turn", "multi_turn", "system"):
        messages = CONVERSATIONS[name]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=template,
                                       **DATED["variables"])
        out.append({**DATED, "tokens": spec["tokens"], "case": f"dated_{name}", "messages": messages,
                    "turns": _turns(messages), "add_generation_prompt": True, "expected": text})
    return out


def segments() -> dict:
    from bluelm_edge.text.segments import derive

    specs = {spec["template"]: (family, spec["tokens"]) for family, spec in FAMILIES.items()}
    specs[SMOLVLM["template"]] = ("smolvlm", SMOLVLM["tokens"])
    specs[DATED["template"]] = ("llama", FAMILIES["llama"]["tokens"])
    return {name: derive(renderer(family, (TEMPLATES / name).read_text(), tokens))
            for name, (family, tokens) in specs.items()}


def cases() -> list[dict]:
    import transformers

    out = []
    for family, spec in FAMILIES.items():
        with tempfile.TemporaryDirectory() as tmp:
            fast = transformers.PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(family), **spec["tokens"])
            fast.chat_template = (TEMPLATES / spec["template"]).read_text()
            fast.save_pretrained(tmp)
            tok = transformers.AutoTokenizer.from_pretrained(tmp)
        for name, messages in CONVERSATIONS.items():
            for thinking in (None, True, False):
                extra = {} if thinking is None else {"enable_thinking": thinking}
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
                out.append({"family": family, "template": spec["template"], "tokens": spec["tokens"],
                            "case": name, "messages": messages, "turns": _turns(messages),
                            "add_generation_prompt": True,
                            "variables": extra, "expected": text})
            whole = [*messages, {"role": "assistant", "content": A1}] if messages[-1]["role"] == "user" else messages
            text = tok.apply_chat_template(whole, tokenize=False, add_generation_prompt=False)
            out.append({"family": family, "template": spec["template"], "tokens": spec["tokens"],
                        "case": f"{name}+answer", "messages": whole, "turns": _turns(whole),
                        "add_generation_prompt": False,
                        "variables": {}, "expected": text})
    return out + smolvlm_cases() + dated_cases()


if __name__ == "__main__":
    data = {"schema": "hf_chat_templates/1", "generated_by": "transformers.apply_chat_template", "cases": cases(),
            "segments": segments()}
    (VECTORS / "hf_chat_templates.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(len(data["cases"]), "cases")
