"""The one generation loop: equal to full recomputation, budget control, sampling, stats, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from bluelm_edge.generate import Sampling, generate, sample
from bluelm_edge.model.config import tiny
from bluelm_edge.model.vlm import BlueLM
from bluelm_edge.session import EagerDecoder, make_controller
from bluelm_edge.text.thinking import ThinkingBudget
from bluelm_edge.text.tokenizer import default_tokenizer


@pytest.fixture(scope="module")
def setup():
    tok = default_tokenizer()
    cfg = tiny()
    cfg.decoder.vocab_size = tok.vocab_size
    cfg.decoder.max_seq_len = 160
    torch.manual_seed(0)
    model = BlueLM(cfg.validate()).eval()
    return model, tok, cfg


def _reference(model, prompt, n, controller=None, stop=()):
    """A naive loop: recompute the whole sequence each step (no KV cache), same controller rules."""
    seq, out, forced = list(prompt), [], []
    with torch.no_grad():
        while len(out) < n:
            logits = model.forward_train(torch.tensor([seq]))[0, -1].clone()
            if controller is None:
                emitted = [(int(logits.argmax()), False)]
            else:
                logits[list(controller.banned())] = float("-inf")
                while not (step := controller.step(int(logits.argmax()))):
                    logits[int(logits.argmax())] = float("-inf")
                emitted = [(e.token, e.forced) for e in step]
            for t, f in emitted:
                seq.append(t)
                out.append(t)
                forced.append(f)
            if out[-1] in stop:
                break
    return out, forced


def test_greedy_equals_recomputation(setup) -> None:
    model, tok, cfg = setup
    prompt = tok.encode("[|Human|]:What is 12+34?[|AI|]:")
    res = generate(EagerDecoder(model, max_prefill=4), prompt, stop_ids=[], sampling=Sampling(max_new_tokens=24))
    ref, _ = _reference(model, prompt, 24)
    assert res.tokens == ref
    assert res.stats.stop_reason == "max_new_tokens" and res.stats.generated_tokens == 24


def test_budget_forced_tokens_go_through_the_cache(setup) -> None:
    model, tok, cfg = setup
    prompt = tok.encode("[|Human|]:Sort 3 1 2[|BlueThink|][|AI|]:")
    for budget in (0, 3, 8, None):
        ctl = make_controller(tok, think=budget != 0, budget=budget)
        res = generate(EagerDecoder(model), prompt, stop_ids=[tok.special.eos], controller=ctl,
                       sampling=Sampling(max_new_tokens=40))
        ref_ctl = make_controller(tok, think=budget != 0, budget=budget)
        ref, ref_forced = _reference(model, prompt, 40, ref_ctl, stop=[tok.special.eos])
        assert res.tokens == ref and res.forced == ref_forced
        if budget is not None:
            assert res.stats.thinking_tokens <= budget
        if budget:
            # the budget message and </think> are forced, right after the budget-th thinking token
            assert tok.special.think_end in res.tokens
            end = res.tokens.index(tok.special.think_end)
            assert res.forced[end] and res.stats.thinking_tokens == budget


def test_image_placeholders_are_replaced(setup) -> None:
    model, tok, cfg = setup
    n = cfg.image_tokens_per_tile
    prompt = [tok.special.bos, tok.special.im_start, *[tok.special.image] * n, tok.special.im_end, 50, 60]
    pixels = torch.randn(1, 3, cfg.vision.image_size, cfg.vision.image_size)
    res = generate(EagerDecoder(model), prompt, stop_ids=[], images=[pixels], image_token=tok.special.image,
                   sampling=Sampling(max_new_tokens=5))
    with torch.no_grad():
        mask = torch.tensor([prompt]) == tok.special.image
        logits = model.forward_train(torch.tensor([prompt]), pixels, mask)[0, -1]
    assert res.tokens[0] == int(logits.argmax())
    with pytest.raises(ValueError, match="<image> tokens"):
        generate(EagerDecoder(model), prompt, stop_ids=[], images=[], image_token=tok.special.image)


def test_sampling_is_seeded_and_limits_hold() -> None:
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0, 1.0])
    draws = [sample(logits, Sampling(temperature=1.0), torch.Generator().manual_seed(7)) for _ in range(3)]
    assert len(set(draws)) == 1
    gen = torch.Generator().manual_seed(0)
    assert {sample(logits, Sampling(temperature=5.0, top_k=2), gen) for _ in range(200)} == {1, 2}
    assert {sample(logits, Sampling(temperature=5.0, top_p=0.05), gen) for _ in range(50)} == {1}
    assert sample(logits, Sampling(temperature=0.0), None) == 1


def test_min_thinking_feeds_wait(setup) -> None:
    model, tok, _ = setup
    prompt = tok.encode("[|Human|]:Hi[|BlueThink|][|AI|]:")
    ctl = make_controller(tok, think=True, budget=None, min_thinking=6)
    res = generate(EagerDecoder(model), prompt, stop_ids=[tok.special.eos], controller=ctl,
                   sampling=Sampling(max_new_tokens=30))
    if tok.special.think_end in res.tokens:
        assert ctl.thinking_tokens >= 6
    assert isinstance(ctl, ThinkingBudget)


def test_chat_cli_one_shot_respects_budget() -> None:
    from bluelm_edge.cli.main import app

    out = CliRunner().invoke(app, ["chat", "--preset", "tiny", "--prompt", "What is 2+2?", "--think",
                                   "--thinking-budget", "8", "--max-new-tokens", "30", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output[out.output.index("{"):])
    assert doc["stats"]["thinking_tokens"] <= 8
    if doc["stats"]["thinking_tokens"] == 8:
        assert "Time is up" in doc["thinking"]
