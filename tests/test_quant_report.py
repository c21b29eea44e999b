"""The quality report (`eval --compare`): per recipe against fp32 on held-out data."""

from __future__ import annotations

import math

import pytest

from bluelm_edge.paths import DEFAULT_MODEL_DIR


@pytest.fixture(autouse=True)
def _no_sdk(monkeypatch):
    monkeypatch.setenv("QNN_SDK_ROOT", "")


@pytest.mark.slow
def test_report_on_random_tiny_model_has_every_metric():
    from bluelm_edge.model.seeded import seeded_model
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import calibrate_in_memory
    from bluelm_edge.quant.report import compare_loaded

    model, tok, cfg = seeded_model("tiny", 0)
    calib = calibrate_in_memory(model, tok, cfg, load_set(samples=2))
    r = compare_loaded(model, tok, cfg, ["xnnpack-8da4w", "mediatek-a16w4"], calib, heldout=8,
                       accuracy_examples=1, budgets=(0,), max_new_tokens=4)
    fp32 = r["fp32"]
    assert fp32["kl"] == 0.0 and fp32["top1_agreement"] == 1.0 and fp32["vision_cosine"] == pytest.approx(1.0)
    assert fp32["size_bytes"] == 4 * sum(p.numel() for p in model.parameters())
    x = r["recipes"]["xnnpack-8da4w"]
    assert 0 < x["kl"] < 0.5 and 0.3 < x["top1_agreement"] <= 1.0 and 0.9 < x["vision_cosine"] <= 1.0
    assert x["size_bytes"] < fp32["size_bytes"] / 3
    assert abs(math.log(x["perplexity"] / fp32["perplexity"])) < 0.2
    m = r["recipes"]["mediatek-a16w4"]
    assert len(m["fallback_layers"]) == 4
    # The fallback is chosen on calibration data; on RANDOM weights its effect on held-out KL goes
    # either way by a few percent (seen: -3% .. +3%), so this checks the bookkeeping; the reduction
    # itself is asserted on calibration data in test_quant_backends::test_sensitivity_fallback_*.
    before = m["before_recovery"]["kl"]
    assert 0 < m["kl"] < 1.1 * before
    assert m["recovered_kl_fraction"] == pytest.approx((before - m["kl"]) / before)


@pytest.mark.slow
def test_verified_decoding_gives_the_quantized_models_own_greedy_tokens():
    """Draft-and-verify decoding of a QNN fake-quant model equals its token-by-token decoding,
    in fewer whole-sequence calls than tokens generated."""
    from bluelm_edge.datasets.tasks import eval_examples
    from bluelm_edge.generate import Sampling
    from bluelm_edge.model.seeded import seeded_model
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import calibrate_in_memory
    from bluelm_edge.quant.recipes import get_recipe
    from bluelm_edge.quant.report import QuantRunner, build_variant
    from bluelm_edge.quant.verify import VerifiedDecoder
    from bluelm_edge.session import ChatSession

    model, tok, cfg = seeded_model("tiny", 0)
    calib = calibrate_in_memory(model, tok, cfg, load_set(samples=2))
    quant = build_variant(model, get_recipe("qnn-16a4w"), calib, [])
    verified = VerifiedDecoder(quant, QuantRunner(model), draft_tokens=24, stop_ids=[cfg.tokens.eos])
    sampling = Sampling(max_new_tokens=24)
    generated = 0
    for ex in [eval_examples("img_add", 1)[0], eval_examples("sort", 1)[0]]:
        images = [ex.image()] if ex.image_spec is not None else []
        for think in (False, True):
            slow = ChatSession(quant, tok, cfg).ask(ex.question, images, think=think, sampling=sampling)
            fast = ChatSession(verified, tok, cfg).ask(ex.question, images, think=think, sampling=sampling)
            assert fast.tokens == slow.tokens
            generated += len(slow.tokens)
    assert generated >= 60 and verified.verify_calls < generated / 2


@pytest.mark.slow
def test_trained_stand_in_meets_the_issue_thresholds():
    """Issue 4's bar on the shipped checkpoint, as the run of `eval --compare ... --limit 6` in
    benchmarks/RESULTS.md: 12 held-out examples a task (96; one example = 1.04 points, finer than
    the 2-point bar, which at 48 would mean "no example lost"), greedy accuracy at budgets 0 and
    none (decoded draft-and-verify), 16 default calibration samples."""
    import json

    from bluelm_edge.quant.report import compare_recipes

    r = compare_recipes(DEFAULT_MODEL_DIR, ["xnnpack-8da4w", "qnn-16a4w", "mediatek-a16w4"], samples=16,
                        heldout=96, accuracy_examples=96, budgets=(0, None))
    print(json.dumps(r, indent=1))
    fp32 = r["fp32"]
    assert fp32["accuracy_budget_none"] >= 0.75  # the stand-in answers (its own bar is issue 3's)
    x = r["recipes"]["xnnpack-8da4w"]
    assert x["perplexity"] <= 1.05 * fp32["perplexity"]
    for key in ("accuracy_budget_0", "accuracy_budget_none"):
        assert fp32[key] - x[key] <= 0.02, key
        for name in ("qnn-16a4w", "mediatek-a16w4"):
            assert fp32[key] - r["recipes"][name][key] <= 0.05, (name, key)
    for name in ("qnn-16a4w", "mediatek-a16w4"):
        q = r["recipes"][name]
        assert len(q["fallback_layers"]) == 4 and "before_recovery" in q
        # The trained stand-in loses ~3e-5 KL under these recipes, so recovery has almost nothing to
        # recover on held-out data; it must not add material loss. (That the fallback picks the
        # layers whose precision matters most is asserted in test_quant_backends.)
        assert q["kl"] <= q["before_recovery"]["kl"] + 1e-4
        assert q["size_bytes"] > q["before_recovery"]["size_bytes"]  # the fallback layers cost 8-bit weights
