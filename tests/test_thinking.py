"""Thinking-budget controller: the shared JSON vectors (also run by the Java port) and properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluelm_edge.text.thinking import ThinkingBudget

VECTORS = Path(__file__).parent / "vectors" / "thinking_budget.json"


def run_case(doc: dict, case: dict) -> tuple[list[list], int]:
    """Feed the sampled pieces through a controller over pieces; return (emitted, thinking)."""
    tokens = doc["tokens"]
    ctl = ThinkingBudget(
        think_start=tokens["think_start"],
        think_end=tokens["think_end"],
        eos=[tokens["eos"]],
        budget=case["budget"],
        budget_message=doc["budget_message"],
        min_thinking=case["min_thinking"],
        wait_message=doc["wait_message"],
        prompt_opened=case["prompt_opened"],
        budget_suffix=case.get("budget_suffix", ()),
    )
    emitted: list[list] = []
    for piece in case["sampled"]:
        emitted += [[e.token, e.forced] for e in ctl.step(piece)]
        if emitted and emitted[-1][0] == tokens["eos"]:
            break
    return emitted, ctl.thinking_tokens


def load_vectors(path: Path = VECTORS) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("case", load_vectors()["cases"], ids=lambda c: c["name"])
def test_vector(case: dict) -> None:
    emitted, thinking = run_case(load_vectors(), case)
    assert emitted == case["emitted"]
    assert thinking == case["thinking_tokens"]


def test_vectors_cover_the_spec() -> None:
    names = {c["name"] for c in load_vectors()["cases"]}
    assert len(names) >= 12
    assert {"unlimited", "budget_0_is_non_thinking", "minimum_feeds_wait", "no_reopen_after_close"} <= names


# ---- properties over random token streams (ids) ------------------------------------------------
THINK, END, EOS = 1, 2, 0
MESSAGE, WAIT = (100, 101, 102), (200,)
stream = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=120)
budgets = st.one_of(st.none(), st.integers(min_value=0, max_value=40))


def _drive(budget, min_thinking, opened, sampled):
    ctl = ThinkingBudget(
        think_start=THINK, think_end=END, eos=[EOS], budget=budget, budget_message=MESSAGE,
        min_thinking=min_thinking, wait_message=WAIT, prompt_opened=opened,
    )
    out = []
    for tok in sampled:
        banned = tok in ctl.banned()
        emitted = ctl.step(tok)
        assert not (banned and emitted), "a banned token is dropped"
        out += emitted
        if out and out[-1].token == EOS and not out[-1].forced:
            return ctl, out, True
    return ctl, out, False


@settings(max_examples=400, deadline=None)
@given(budget=budgets, min_thinking=st.integers(0, 10), opened=st.booleans(), sampled=stream)
def test_properties(budget, min_thinking, opened, sampled) -> None:
    if budget is not None and min_thinking > budget:
        min_thinking = budget
    if budget == 0:
        opened = False
    ctl, out, finished = _drive(budget, min_thinking, opened, sampled)
    ids = [e.token for e in out]
    # thinking tokens never exceed the budget, and they are exactly the sampled tokens between
    # the opening and the close
    if budget is not None:
        assert ctl.thinking_tokens <= budget
    if END in ids:
        start = ids.index(THINK) + 1 if THINK in ids else 0
        inside = [e for e in out[start : ids.index(END)] if not e.forced]
        assert len(inside) == ctl.thinking_tokens
    # never a second </think>, never a second <think>
    assert ids.count(END) <= 1 and ids.count(THINK) <= 1
    if budget == 0:
        assert THINK not in ids and END not in ids and not any(e.forced for e in out)
    elif finished:
        assert ids.count(END) == 1, "a finished thinking-mode output holds exactly one </think>"
    # forced tokens are exactly the controller's own: message, wait, or a structural token
    for e in out:
        if e.forced:
            assert e.token in (*MESSAGE, *WAIT, THINK, END)
        else:
            assert e.token not in MESSAGE and e.token not in WAIT
    # the budget message appears only when the budget was used up
    if 100 in ids:
        assert budget is not None and ctl.thinking_tokens == budget


def test_rejects_bad_budgets() -> None:
    with pytest.raises(ValueError):
        ThinkingBudget(think_start=1, think_end=2, eos=[0], budget=-1)
    with pytest.raises(ValueError):
        ThinkingBudget(think_start=1, think_end=2, eos=[0], budget=2, min_thinking=3)
