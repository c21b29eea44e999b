"""Hugging Face `tokenizers` still gives tests/vectors/bpe_tokenizer.json, the reference of the Java BpeTokenizer.

The file is what `tokenizers` made of its texts (tests/vectors/make_bpe_tokenizer.py); if a new `tokenizers`
encodes differently these tests fail, and regenerating the vectors is a deliberate act. A broken vector (one
case re-segmented) must make both this check and the Java run disagree (tests/test_java_core.py).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parent / "vectors" / "bpe_tokenizer.json"
BROKEN_CASE = ("qwen2_style", "ascii_sentence")


def load() -> dict:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def materialize(entry: dict, by_name: dict[str, dict]) -> dict:
    """An entry's tokenizer.json: embedded whole, or its `base` with top-level keys `replace`d, model keys
    `model_replace`d and `vocab_add` entries added (BpeTokenizerTest.materialize does the same)."""
    if "tokenizer" in entry:
        return entry["tokenizer"]
    doc = copy.deepcopy(materialize(by_name[entry["base"]], by_name))
    doc.update(copy.deepcopy(entry.get("replace", {})))
    doc["model"].update(entry.get("model_replace", {}))
    doc["model"]["vocab"].update(entry.get("vocab_add", {}))
    return doc


def hf_tokenizer(entry: dict, by_name: dict[str, dict]):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json.dumps(materialize(entry, by_name)))


def disagreements(doc: dict) -> list[str]:
    """Where `tokenizers` now differs from the vectors: 'tokenizer/case: what'."""
    by_name = {e["name"]: e for e in doc["tokenizers"]}
    out = []
    for e in doc["tokenizers"]:
        tok = hf_tokenizer(e, by_name)
        if tok.get_vocab_size() != e["vocab_size"]:
            out.append(f"{e['name']}: vocab_size {tok.get_vocab_size()}")
        if "special_id" in e and tok.token_to_id(e["special_id"]["content"]) != e["special_id"]["id"]:
            out.append(f"{e['name']}: special_id")
        for c in e["cases"]:
            ids = tok.encode(c["text"], add_special_tokens=False).ids
            if ids != c["ids"]:
                out.append(f"{e['name']}/{c['name']}: ids {ids}")
        for c in e["cases"] + e.get("decode_cases", []):
            text = tok.decode(c["ids"], skip_special_tokens=False)
            if text != c["decoded"]:
                out.append(f"{e['name']}/{c['name']}: decoded {text!r}")
    return out


def python_agrees(doc: dict) -> bool:
    return not disagreements(doc)


def break_one_case(doc: dict) -> str:
    """Re-segment one case: a merged token spelled as its single-byte tokens. It decodes to the same text
    (so only the encode check can see it); returns the name the failing assertions carry."""
    by_name = {e["name"]: e for e in doc["tokenizers"]}
    entry = by_name[BROKEN_CASE[0]]
    case = next(c for c in entry["cases"] if c["name"] == BROKEN_CASE[1])
    tok = hf_tokenizer(entry, by_name)
    i = next(i for i, t in enumerate(case["ids"]) if len(tok.id_to_token(t)) > 1)
    case["ids"][i:i + 1] = [tok.token_to_id(ch) for ch in tok.id_to_token(case["ids"][i])]
    return "/".join(BROKEN_CASE)


@pytest.fixture(scope="module")
def doc() -> dict:
    pytest.importorskip("tokenizers")
    return load()


def test_hf_tokenizers_give_the_vectors(doc):
    assert disagreements(doc) == []


def test_vectors_cover_what_the_java_tokenizer_must_handle(doc):
    by_name = {e["name"]: e for e in doc["tokenizers"]}
    needed = {"ascii_sentence", "digits_run", "decimals", "multiple_spaces", "tabs", "newlines", "contractions",
              "leading_trailing_spaces", "cjk", "emoji", "zwj_emoji", "accented", "combining", "special_think",
              "special_bluelm", "empty", "chat_prompt", "long_prompt"}
    for name in ("bluelm_tiny", "qwen2_style"):
        cases = {c["name"]: c for c in by_name[name]["cases"]}
        assert needed <= set(cases), needed - set(cases)
        assert len(cases["long_prompt"]["text"]) >= 1900
        assert any("\ufffd" in c["decoded"] for c in by_name[name]["decode_cases"])
    qwen = by_name["qwen2_style"]["tokenizer"]
    assert qwen["normalizer"] == {"type": "NFC"} and len(qwen["model"]["vocab"]) <= 600
    assert qwen["pre_tokenizer"]["pretokenizers"][0]["type"] == "Split"
    assert by_name["llama3_style"]["model_replace"] == {"ignore_merges": True}
    combining = next(c for c in by_name["qwen2_style"]["cases"] if c["name"] == "combining")
    assert combining["decoded"] != combining["text"]  # NFC changed it


def test_a_broken_vector_disagrees(doc):
    broken = copy.deepcopy(doc)
    name = break_one_case(broken)
    assert [d.split(":")[0] for d in disagreements(broken)] == [name]
