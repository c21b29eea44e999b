"""The synthetic task generator: determinism, checkers against independent solvers, images drawn
from their specs, the held-out split, and the chat forms (thinking, non-thinking, budget-cut)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from bluelm_edge.datasets import chats, images
from bluelm_edge.datasets.tasks import (
    EVAL_POOL,
    TASKS,
    addition_trace,
    eval_examples,
    get_tasks,
    is_held_out,
    train_stream,
)
from bluelm_edge.model.config import tiny
from bluelm_edge.text.chat import render_text
from bluelm_edge.text.thinking import BUDGET_MESSAGE
from bluelm_edge.train import data


def _solve(ex) -> str:
    """An independent solver for every task: from the question text or the image spec."""
    q = ex.question
    if ex.task in ("add", "arith"):
        expr = re.fullmatch(r"What is ([0-9+\-]+)\?", q).group(1)
        return str(sum(int(t) for t in re.findall(r"[+-]?\d+", expr)))
    if ex.task == "sort":
        return " ".join(str(n) for n in sorted(int(t) for t in q.split(":")[1].split()))
    if ex.task == "count":
        target, letters = re.fullmatch(r"How many (\w) in ([1-9a-e ]+)\?", q).groups()
        assert [w[0] for w in letters.split()] == [str(i) for i in range(1, len(letters.split()) + 1)]
        return str([w[1] for w in letters.split()].count(target))
    kind, spec = ex.image_spec
    if ex.task == "shapes":
        colour = q.split()[2]
        return str(sum(1 for c in spec[0] if c is not None and c[0] == colour))
    if ex.task == "img_add":
        return str(spec[0] + spec[1])
    if ex.task == "img_compare":
        return "top" if spec[0] > spec[1] else "bottom"
    if ex.task == "grid":
        return str(spec[0].index(q.split()[-1].rstrip("?")) + 1)
    raise AssertionError(ex.task)


@pytest.mark.parametrize("name", list(TASKS))
def test_answers_match_an_independent_solver(name):
    rng = random.Random(7)
    for _ in range(300):
        ex = TASKS[name].make(rng)
        assert ex.answer == _solve(ex), ex
        assert ex.trace.endswith(ex.answer)
        assert ex.check(f"  {ex.answer}\n") and not ex.check(ex.answer + "0")


@pytest.mark.parametrize("name", list(TASKS))
def test_generation_is_deterministic_for_a_seed(name):
    a = [TASKS[name].make(random.Random(f"s{i}")) for i in range(20)]
    b = [TASKS[name].make(random.Random(f"s{i}")) for i in range(20)]
    assert a == b
    assert len({ex.key for ex in a}) > 15  # and not constant
    if a[0].image_spec is not None:
        assert np.array_equal(np.asarray(a[0].image()), np.asarray(b[0].image()))


def test_addition_trace_is_digit_by_digit_with_carries():
    assert addition_trace(587, 946, 3) == (
        "7+6=13 write 3 carry 1. 8+4+1=13 write 3 carry 1. 5+9+1=15 write 5 carry 1. so 1533"
    )
    assert addition_trace(7, 2, 2) == "7+2=9 write 9 carry 0. 0+0=0 write 0 carry 0. so 9"


def test_images_are_drawn_from_the_spec():
    assert np.all(np.asarray(images.blank()) == 255)
    cells = [None] * 9
    cells[4] = ("red", "square")
    img = np.asarray(images.draw_shapes(cells)).astype(int)
    assert img.shape == (64, 64, 3)
    assert tuple(img[16 + 8, 16 + 8]) == images.COLOURS["red"]  # centre of cell 4 (row 1, col 1)
    assert np.all(img[:16] == 255) and np.all(img[32:] == 255)  # nothing outside that row
    assert np.all(img[:, :16] == 255) and np.all(img[:, 32:] == 255)  # nor that column
    # seven segments: '8' lights the middle bar 'g', '0' does not (top number, tens slot)
    mid = (6 + 9, 19 + 5)
    assert np.all(np.asarray(images.draw_numbers(80, 0))[mid] == 0)
    assert np.all(np.asarray(images.draw_numbers(0, 0))[mid] == 255)
    grid = np.asarray(images.draw_grid(["square"] + [None] * 8))
    assert np.all(grid[8, 8] == 0) and np.all(grid[16:, :] == 255) and np.all(grid[:, 16:] == 255)


def test_held_out_examples_never_appear_in_training():
    tasks = get_tasks()
    pool = {ex.key for t in tasks for ex in eval_examples(t.name, EVAL_POOL)}
    assert len(pool) == EVAL_POOL * len(tasks)  # distinct
    stream = train_stream(0, tasks, [1.0] * len(tasks))
    seen = [next(stream).key for _ in range(4000)]
    assert not pool.intersection(seen)
    # the filter is what guarantees it: a held-out example is recognised as such
    assert all(is_held_out(ex) for ex in eval_examples("count", 50))
    assert eval_examples("add", 3) == eval_examples("add", 5)[:3]


def test_training_steps_are_a_pure_function_of_seed_and_step():
    tasks = get_tasks(["add", "grid"])
    one = data.step_messages(3, 10, 8, tasks, [1, 1], data.Mix())
    two = data.step_messages(3, 10, 8, tasks, [1, 1], data.Mix())
    other = data.step_messages(3, 11, 8, tasks, [1, 1], data.Mix())
    text = lambda pairs: [(m[0].content, m[1].content, m[1].thinking, t) for m, t in pairs]
    assert text(one) == text(two) and text(one) != text(other)


@pytest.fixture(scope="module")
def tokenizer():
    return data.build_tokenizer(get_tasks(), 320)


def test_chat_forms(tokenizer):
    ex = TASKS["add"].make(random.Random(1))
    think = render_text(chats.example_messages(ex, "think"), think=True, add_generation_prompt=False)
    assert think == f"<s>[|Human|]:{ex.question}[|BlueThink|][|AI|]:<think>{ex.trace}</think>{ex.answer}</s>"
    plain = render_text(chats.example_messages(ex, "no_think"), think=False, add_generation_prompt=False)
    assert plain == f"<s>[|Human|]:{ex.question}[|AI|]:{ex.answer}</s>"


def test_budget_cut_example_format(tokenizer):
    ex = TASKS["img_add"].make(random.Random(2))
    for seed in range(20):
        msgs = chats.example_messages(ex, "cut", random.Random(seed))
        cut = msgs[1].thinking
        assert ex.trace.startswith(cut) and len(cut) <= len(ex.trace)
        assert cut == "" or ex.trace[len(cut)] == " "  # cut between words
        sample = data.render_sample(msgs, tokenizer, tiny(), think=True)
        text = tokenizer.decode(sample.ids)
        assert text.endswith(f"<think>{cut}{BUDGET_MESSAGE}</think>{ex.answer}</s>")
        assert text.count("<image>") == 16 and sample.pixels.shape == (1, 3, 64, 64)
        # trained on: <think>, the partial trace, the answer and </s>; not the forced message
        forced = tokenizer.encode(BUDGET_MESSAGE) + [tokenizer.special.think_end]
        n_answer = len(tokenizer.encode(ex.answer)) + 1
        assert sample.loss_mask[-n_answer:] == [1] * n_answer
        assert sample.loss_mask[-n_answer - len(forced) : -n_answer] == [0] * len(forced)
        assert sample.ids[-n_answer - len(forced) : -n_answer] == forced


def test_tokenizer_covers_the_tasks_with_single_digits(tokenizer):
    ids = tokenizer.encode("What is 587+946?")
    assert tokenizer.decode(ids) == "What is 587+946?"
    assert [tokenizer.decode([i]) for i in tokenizer.encode("587")] == ["5", "8", "7"]


def test_task_weights_split_each_kind_by_weight():
    from bluelm_edge.train.trainer import _task_weights

    tasks = get_tasks()
    shares = dict(zip([t.name for t in tasks], _task_weights(tasks, 0.5), strict=True))
    assert sum(shares.values()) == pytest.approx(1.0)
    assert sum(shares[t.name] for t in tasks if t.kind == "image") == pytest.approx(0.5)
    assert shares["count"] == pytest.approx(0.5 * 2.0 / 6.0)  # add 2 + arith 1.5 + sort 0.5 + count 2
    assert _task_weights(get_tasks(["count", "sort"]), 0.5) == [2.0, 0.5]  # one kind: the weights
    assert _task_weights(get_tasks(["count", "add"]), 0.5, {"add": 3.0}) == [2.0, 3.0]  # --task-weights


def test_task_weights_option_rejects_bad_items():
    from typer.testing import CliRunner

    from bluelm_edge.cli.main import app
    from bluelm_edge.errors import UsageError

    for bad in ("add=x", "nope=2", "add=-1", "add=0", "add"):
        r = CliRunner().invoke(app, ["train", "--out", "/nonexistent/x", "--task-weights", bad])
        assert isinstance(r.exception, UsageError) and "TASK=WEIGHT" in str(r.exception), bad


def test_shapes_trace_names_the_asked_colour_nowhere():
    """Cells are written R/B/-, so the question's colour word is the only one in the context."""
    for ex in eval_examples("shapes", 50):
        assert "red" not in ex.trace and "blue" not in ex.trace
        assert ex.trace.count(".") == 9


def test_grid_trace_keeps_where_the_asked_symbol_was_seen():
    """Cells are written O/S/T/P/-, each step with the cell of the asked symbol so far (0 before)."""
    for ex in eval_examples("grid", 50):
        steps = ex.trace.split(" so ")[0].split(". ")
        assert len(steps) == 9 and not any(s in ex.trace for s in images.SYMBOLS)
        seen = [int(s.rstrip(".").split()[2]) for s in steps]
        assert seen == [int(ex.answer) if i >= int(ex.answer) else 0 for i in range(1, 10)]


def test_budget_cuts_favour_short_traces():
    """45% of cuts fall in the first SHORT_CUT words, 45% anywhere, 10% keep the whole trace."""
    ex = TASKS["shapes"].make(random.Random(3))
    n = len(ex.trace.split(" "))
    kept = [len(chats.example_messages(ex, "cut", random.Random(s))[1].thinking.split()) for s in range(1000)]
    short = sum(k < chats.SHORT_CUT for k in kept) / len(kept)
    assert abs(short - (0.45 + 0.45 * chats.SHORT_CUT / n)) < 0.05
    assert abs(kept.count(n) / len(kept) - 0.1) < 0.03  # the whole trace, then the budget message
    assert len(set(kept)) == n + 1  # every cut point happens
