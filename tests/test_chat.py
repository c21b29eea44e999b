"""Chat template: exact rendered strings and ids, loss masks, errors, and the shared JSON vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bluelm_edge.errors import DataError
from bluelm_edge.model.config import SPECIAL_TOKENS
from bluelm_edge.text.chat import TOKENS, Message, render, render_text
from bluelm_edge.text.thinking import BUDGET_MESSAGE
from bluelm_edge.text.tokenizer import default_tokenizer

VECTORS = Path(__file__).parent / "vectors" / "chat_template.json"


@pytest.fixture(scope="module")
def tok():
    return default_tokenizer()


def _two_turns() -> list[Message]:
    return [
        Message("user", "Hi", images=["a.png"]),
        Message("assistant", "Hello!", thinking="greet"),
        Message("user", "2+2?"),
        Message("assistant", "4", thinking="2+2=4"),
    ]


def test_exact_thinking_conversation_text():
    text = render_text(_two_turns(), think=True, add_generation_prompt=False, image_tokens=[2])
    assert text == (
        "<s>[|Human|]:<im_start><image><image><im_end>Hi[|BlueThink|][|AI|]:Hello!</s>"
        "[|Human|]:2+2?[|BlueThink|][|AI|]:<think>2+2=4</think>4</s>"
    )


def test_exact_generation_prompts():
    msgs = [Message("user", "What is 17+25?")]
    think = render_text(msgs, think=True, add_generation_prompt=True)
    assert think == "<s>[|Human|]:What is 17+25?[|BlueThink|][|AI|]:"
    assert render_text(msgs, think=False, add_generation_prompt=True) == "<s>[|Human|]:What is 17+25?[|AI|]:"


def test_ids_use_single_special_ids(tok):
    r = render([Message("user", "x", images=["a"]), Message("assistant", "y", thinking="t")], tok,
               think=True, add_generation_prompt=False, image_tokens=[3])
    x, y, t = tok.encode("x"), tok.encode("y"), tok.encode("t")
    assert r.ids == [1, 3, 8, 9, 9, 9, 10, *x, 5, 4, 6, *t, 7, *y, 2]
    assert r.loss_mask == [0] * (7 + len(x) + 2) + [1] * (1 + len(t) + 1 + len(y) + 1)


def test_ids_equal_encoding_the_text(tok):
    for think in (True, False):
        text = render_text(_two_turns(), think=think, add_generation_prompt=False, image_tokens=[5])
        r = render(_two_turns(), tok, think=think, add_generation_prompt=False, image_tokens=[5])
        assert r.ids == tok.encode(text)
        assert len(r.loss_mask) == len(r.ids)


def test_loss_mask_last_turn_only_and_all_turns(tok):
    msgs = _two_turns()
    r = render(msgs, tok, think=True, add_generation_prompt=False, image_tokens=[1])
    trained = [i for i, m in zip(r.ids, r.loss_mask, strict=True) if m]
    assert tok.decode(trained) == "<think>2+2=4</think>4</s>"
    r_all = render(msgs, tok, think=True, add_generation_prompt=False, image_tokens=[1],
                   train_on_all_turns=True)
    trained_all = [i for i, m in zip(r_all.ids, r_all.loss_mask, strict=True) if m]
    assert tok.decode(trained_all) == "Hello!</s><think>2+2=4</think>4</s>"
    # the prompt form trains on nothing
    r_gen = render(msgs[:3], tok, think=True, add_generation_prompt=True, image_tokens=[1])
    assert sum(r_gen.loss_mask) == 0


def test_truncated_trace_closes_with_budget_message_untrained(tok):
    msgs = [Message("user", "q"), Message("assistant", "A", thinking="long", thinking_truncated=True)]
    text = render_text(msgs, think=True, add_generation_prompt=False)
    assert text == f"<s>[|Human|]:q[|BlueThink|][|AI|]:<think>long{BUDGET_MESSAGE}</think>A</s>"
    r = render(msgs, tok, think=True, add_generation_prompt=False)
    assert r.ids == tok.encode(text)
    trained = [i for i, m in zip(r.ids, r.loss_mask, strict=True) if m]
    assert tok.decode(trained) == "<think>longA</s>"


def test_chat_tokens_match_config():
    assert TOKENS.to_dict() == {
        "bos": "<s>", "eos": "</s>", "human": "[|Human|]:", "ai": "[|AI|]:", "blue_think": "[|BlueThink|]",
        "think_start": "<think>", "think_end": "</think>", "im_start": "<im_start>", "image": "<image>",
        "im_end": "<im_end>",
    }
    assert set(TOKENS.to_dict().values()) == set(SPECIAL_TOKENS) - {"<pad>"}


_Q, _A, _QI = Message("user", "q"), Message("assistant", "a"), Message("user", "q", images=["a"])
_GEN, _FULL = {"add_generation_prompt": True}, {"add_generation_prompt": False}


@pytest.mark.parametrize(
    ("msgs", "kwargs", "match"),
    [
        ([], _GEN, "at least one user message"),
        ([_A], _FULL, "message 0 is 'assistant'"),
        ([_Q], _FULL, "pass add_generation_prompt=True"),
        ([_Q, _A], _GEN, "end with a user"),
        ([_QI], _GEN, "1 image\\(s\\) but image_tokens"),
        ([_QI], {**_GEN, "image_tokens": [0]}, "positive"),
    ],
)
def test_bad_conversations_are_one_line_data_errors(msgs, kwargs, match):
    with pytest.raises(DataError, match=match) as err:
        render_text(msgs, think=False, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_messages():
    with pytest.raises(DataError, match="role 'system'"):
        Message("system", "x")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="cannot carry images"):
        Message("assistant", "x", images=["a"])
    with pytest.raises(DataError, match="cannot carry thinking"):
        Message("user", "x", thinking="t")


# ---- shared vectors (the Java port reads the same file) ----------------------------------------
def _vectors() -> dict:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def test_vectors_file_shape():
    doc = _vectors()
    assert doc["tokens"] == TOKENS.to_dict()
    cases = doc["cases"]
    assert len(cases) >= 8
    assert {c["think"] for c in cases} == {True, False}
    assert {c["add_generation_prompt"] for c in cases} == {True, False}
    assert any(c["image_tokens"] for c in cases) and any(len(c["messages"]) > 2 for c in cases)


@pytest.mark.parametrize("case", _vectors()["cases"], ids=lambda c: c["name"])
def test_vector_case(case, tok):
    msgs = [
        Message(m["role"], m["content"], images=["img"] * m["n_images"], thinking=m["thinking"])
        for m in case["messages"]
    ]
    kw = {"think": case["think"], "add_generation_prompt": case["add_generation_prompt"],
          "image_tokens": case["image_tokens"]}
    assert render_text(msgs, **kw) == case["text"]
    assert render(msgs, tok, **kw).ids == tok.encode(case["text"])
