"""Writes hf_chat_templates.json: transformers' `apply_chat_template` on the published templates.

Run: PYTHONPATH=. python tests/vectors/make_hf_chat_templates.py  (needs transformers; no network).
Each case: family, messages, add_generation_prompt, template variables (enable_thinking), and the
expected string; tests/test_hub_families.py checks our renderer and transformers against it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hub_folders import FAMILIES, TEMPLATES, VECTORS, build_tokenizer  # noqa: E402

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
                            "case": name, "messages": messages, "add_generation_prompt": True,
                            "variables": extra, "expected": text})
            whole = [*messages, {"role": "assistant", "content": A1}] if messages[-1]["role"] == "user" else messages
            text = tok.apply_chat_template(whole, tokenize=False, add_generation_prompt=False)
            out.append({"family": family, "template": spec["template"], "tokens": spec["tokens"],
                        "case": f"{name}+answer", "messages": whole, "add_generation_prompt": False,
                        "variables": {}, "expected": text})
    return out


if __name__ == "__main__":
    data = {"schema": "hf_chat_templates/1", "generated_by": "transformers.apply_chat_template", "cases": cases()}
    (VECTORS / "hf_chat_templates.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(len(data["cases"]), "cases")
