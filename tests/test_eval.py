"""Evaluation: budget parsing, the summary numbers, the plot, the budget cap through the one
generation loop, the `eval` command, and the shipped checkpoint's accuracy on a fixed held-out
set (the issue's quality bar, measured once on the shipped weights)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from bluelm_edge.cli.main import app
from bluelm_edge.datasets.tasks import TASKS, get_tasks
from bluelm_edge.errors import UsageError
from bluelm_edge.model.config import tiny
from bluelm_edge.model.vlm import BlueLM
from bluelm_edge.paths import DEFAULT_MODEL_DIR
from bluelm_edge.session import ChatSession, EagerDecoder
from bluelm_edge.train import evaluate as ev
from bluelm_edge.train.data import build_tokenizer

SHIPPED = (DEFAULT_MODEL_DIR / "model.safetensors").is_file()


def test_parse_budgets():
    assert ev.parse_budgets("0, 8,16,none") == [0, 8, 16, None]
    with pytest.raises(UsageError, match="'x'"):
        ev.parse_budgets("0,x")


def _row(task, budget, acc, think=0.0):
    t = TASKS[task]
    return ev.Row(task, t.kind, t.multi_step, budget, 10, acc, think, t.chance)


def test_summary_numbers():
    rows = [_row("add", 0, 0.1), _row("add", None, 0.9, 40), _row("sort", 0, 0.5), _row("sort", None, 0.7, 30),
            _row("grid", 0, 0.2), _row("grid", None, 0.8, 10)]
    s = ev.summarise(rows)
    text, image, multi = (s["kinds"][k] for k in ("text", "image", "multi_step"))
    assert list(text) == ["0", "none"]
    assert text["none"] | {"ci95": None} == {"n": 20, "right": 16, "accuracy": 0.8, "ci95": None,
                                             "thinking_tokens_mean": 35.0}
    assert image["none"]["accuracy"] == 0.8 and multi["none"]["accuracy"] == 0.9
    assert text["0"]["accuracy"] == 0.3 and multi["0"]["accuracy"] == 0.1
    assert s["multi_step_gap_points"] == 80.0
    assert s["checks"]["text"] == {"below_no_thinking": [], "drops": []}
    out = ev.to_json(rows, "m", 10, False)
    assert out["results"][1]["budget"] == "none" and out["results"][0]["accuracy"] == 0.1


def _score_bound(right: int, n: int, upper: bool) -> float:
    """The Wilson bound from its definition, by bisection: the p where |p_hat - p| = z*sqrt(p(1-p)/n)."""
    p_hat = right / n
    lo, hi = (p_hat, 1.0) if upper else (0.0, p_hat)
    for _ in range(200):
        mid = (lo + hi) / 2
        outside = abs(p_hat - mid) > ev.Z95 * (mid * (1 - mid) / n) ** 0.5
        if outside == upper:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


@pytest.mark.parametrize("right,n", [(16, 20), (0, 50), (50, 50), (93, 200), (1, 400)])
def test_wilson_interval_is_the_score_interval(right, n):
    lo, hi = ev.wilson(right, n)
    assert lo == pytest.approx(_score_bound(right, n, False), abs=1e-9)
    assert hi == pytest.approx(_score_bound(right, n, True), abs=1e-9)
    assert ev.wilson(93, 200)[1] - ev.wilson(93, 200)[0] == pytest.approx(0.136948, abs=1e-6)


def test_curve_checks_name_the_failing_budgets():
    # 100 examples a budget: budget 8 at 0.30 is 16 points under budget 0 (half-width ~0.09)
    rows = [_row("add", b, a) for b, a in ((0, 0.46), (8, 0.30), (32, 0.70), (None, 0.95))]
    rows = [ev.Row(r.task, r.kind, r.multi_step, r.budget, 100, r.accuracy, 0.0, r.chance) for r in rows]
    assert ev.summarise(rows)["checks"]["text"] == {"below_no_thinking": ["8"], "drops": ["8"]}
    rows[1] = ev.Row("add", "text", True, 8, 100, 0.40, 8.0, 0.0)  # 6 points under: within the interval
    assert ev.summarise(rows)["checks"]["text"] == {"below_no_thinking": [], "drops": []}


def test_budget_positions_space_budgets_by_size():
    xs = ev.budget_positions([0, 4, 8, 64, None])
    assert xs[0] == 0 and xs[8] - xs[4] < xs[4] - xs[0] + 1 and xs[None] == xs[64] + 1


def test_plot_is_a_png(tmp_path):
    rows = [_row("add", b, a) for b, a in ((0, 0.1), (8, 0.3), (None, 0.9))] + [_row("grid", 0, 0.5)]
    ev.plot(rows, tmp_path / "acc.png")
    data = (tmp_path / "acc.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    from bluelm_edge.io import is_our_png

    assert is_our_png(tmp_path / "acc.png")  # so `eval --plot acc.png` may replace it next time


@pytest.fixture(scope="module")
def random_session():
    tok = build_tokenizer(get_tasks(), 300)
    cfg = tiny()
    cfg.decoder.vocab_size = tok.vocab_size
    torch.manual_seed(0)
    return ChatSession(EagerDecoder(BlueLM(cfg.validate())), tok, cfg)


def test_thinking_never_exceeds_the_budget(random_session):
    """An untrained model rambles: the controller must cut it at exactly the budget."""
    for budget in (0, 3, 8):
        row = ev.evaluate_task(random_session, TASKS["img_add"], budget, limit=2)
        assert row.n == 2 and row.thinking_tokens_mean <= budget
        assert 0.0 <= row.accuracy <= 1.0


def _shipped_eval(budgets: str, limit: int, blank: bool = False, tasks: str | None = None) -> dict:
    args = ["eval", "--thinking-budget", budgets, "--limit", str(limit), "--json"]
    args += (["--blank-images"] if blank else []) + (["--tasks", tasks] if tasks else [])
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout[r.stdout.index("{"):])


CURVE_BUDGETS = "0,4,8,16,32,64,none"


@pytest.fixture(scope="module")
def shipped_curve() -> dict:
    """One greedy eval of the shipped checkpoint over the many-budget curve, 12 held-out examples
    a task (48 a kind): shared by the recorded-accuracy and the curve-shape tests."""
    return _shipped_eval(CURVE_BUDGETS, 12)


# Examples right (of 12) of the shipped checkpoint on held-out examples 0..11, greedy, as recorded
# when it was trained (benchmarks/train_tiny.md); +-1 allowed for float differences between CPUs.
SHIPPED_RIGHT_OF_12 = {
    "add": {"0": 0, "32": 3, "none": 12}, "arith": {"0": 2, "32": 10, "none": 10},
    "sort": {"0": 12, "32": 12, "none": 12}, "count": {"0": 6, "32": 8, "none": 12},
    "shapes": {"0": 8, "32": 10, "none": 12}, "img_add": {"0": 0, "32": 9, "none": 12},
    "img_compare": {"0": 12, "32": 11, "none": 11}, "grid": {"0": 3, "32": 8, "none": 12},
}


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="the shipped checkpoint is not trained yet")
def test_shipped_checkpoint_quality(shipped_curve):
    """The recorded accuracies, and the issue's checks that the shipped model meets: thinking
    beats non-thinking by >= 15 points on multi-step tasks, accuracy rises with the budget, the
    budget caps thinking, and the text and image tasks reach the 90% and 80% bars (here on 12
    examples a task; benchmarks/train_tiny.md has 50)."""
    report = shipped_curve
    for r in report["results"]:
        if r["budget"] not in SHIPPED_RIGHT_OF_12[r["task"]]:
            continue
        assert abs(round(r["accuracy"] * 12) - SHIPPED_RIGHT_OF_12[r["task"]][r["budget"]]) <= 1, r
        if r["budget"] != "none":
            assert r["thinking_tokens_mean"] <= int(r["budget"]), r
    s = report["summary"]
    assert s["multi_step_gap_points"] >= 15
    acc = {k: {b: e["accuracy"] for b, e in c.items()} for k, c in s["kinds"].items()}
    assert acc["text"]["none"] >= 0.90 and acc["image"]["none"] >= 0.80
    for kind in ("text", "image", "multi_step"):
        assert acc[kind]["0"] <= acc[kind]["32"] <= acc[kind]["none"], kind


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="the shipped checkpoint is not trained yet")
def test_budget_curve_never_dips(shipped_curve):
    """Issue 17: over budgets 0, 4, 8, 16, 32, 64, none, for text, image and multi-step tasks, no
    budget answers worse than thinking off, and no step is lower than the one before, beyond its
    95% interval (Wilson, 48 examples a kind); thinking never exceeds the budget."""
    s = shipped_curve["summary"]
    assert list(s["kinds"]["text"]) == CURVE_BUDGETS.split(",")
    for kind in ("text", "image", "multi_step"):
        assert s["checks"][kind] == {"below_no_thinking": [], "drops": []}, (kind, s["kinds"][kind])
        for budget, entry in s["kinds"][kind].items():
            if budget != "none":
                assert entry["thinking_tokens_mean"] <= int(budget), (kind, budget)
    assert s["kinds"]["image"]["none"]["accuracy"] >= s["kinds"]["image"]["0"]["accuracy"] + 0.3


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="the shipped checkpoint is not trained yet")
def test_shipped_checkpoint_reads_the_image():
    """With blank images the image tasks fall to about chance (img_add: 12/12 -> at most 1/12)."""
    report = _shipped_eval("none", 12, blank=True, tasks="shapes,img_add,img_compare,grid")
    for r in report["results"]:
        assert r["accuracy"] <= r["chance"] + 0.25, r
        if r["task"] == "img_add":
            assert r["accuracy"] <= 1 / 12


def test_compare_with_an_unknown_task_is_one_line():
    r = CliRunner().invoke(app, ["eval", "--compare", "xnnpack-8da4w", "--tasks", "add,nope"])
    assert isinstance(r.exception, UsageError) and "unknown task 'nope'; choose from: add" in str(r.exception)
    assert "\n" not in str(r.exception)  # one line (the console entry prints it and exits 2)
