"""Synthetic multimodal reasoning tasks: seeded, endless, each with a step-by-step trace.

Owns the task registry (`TASKS`), the `Example` record (question, thinking trace, short answer,
exact-match checker, optional image spec), and the split between training and held-out data:
held-out examples come from their own seed stream (`"eval:..."`) and training examples whose
content key is in the held-out pool are skipped, so evaluation never sees a training question.
Images are drawn lazily by `bluelm_edge.datasets.images` from the spec.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from PIL import Image

from bluelm_edge.datasets import images

EVAL_POOL = 1000  # held-out examples reserved per task (evaluation uses a prefix of them)


@dataclass(frozen=True)
class Example:
    """One task instance. `trace` is the thinking text; `answer` is what exact match compares."""

    task: str
    question: str
    trace: str
    answer: str
    image_spec: tuple | None = None  # (kind, data) for images.draw_<kind>

    @property
    def key(self) -> str:
        """Content identity: two examples with the same key ask the same thing."""
        return f"{self.task}|{self.question}|{self.image_spec!r}"

    def image(self, blank: bool = False) -> Image.Image | None:
        if self.image_spec is None:
            return None
        if blank:
            return images.blank()
        kind, data = self.image_spec
        return getattr(images, f"draw_{kind}")(*data)

    def check(self, output: str) -> bool:
        """Exact match of the final answer (surrounding whitespace ignored)."""
        return output.strip() == self.answer


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "text" | "image"
    multi_step: bool  # a direct answer needs several steps of reasoning
    chance: float  # share of the most common answer in the held-out pool (guessing without looking)
    make: Callable[[random.Random], Example]
    weight: float = 1.0  # training share relative to the other tasks of its kind


# ---- digit-wise addition (shared by `add` and `img_add`) --------------------------------------
def addition_trace(a: int, b: int, width: int) -> str:
    """Column-by-column addition of fixed-width operands, least significant digit first."""
    da, db = f"{a:0{width}d}"[::-1], f"{b:0{width}d}"[::-1]
    steps, carry = [], 0
    for x, y in zip(da, db, strict=True):
        s = int(x) + int(y) + carry
        plus = f"+{carry}" if carry else ""
        steps.append(f"{x}+{y}{plus}={s} write {s % 10} carry {s // 10}.")
        carry = s // 10
    return " ".join(steps) + f" so {a + b}"


# ---- text tasks ------------------------------------------------------------------------------
def make_add(rng: random.Random) -> Example:
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    return Example("add", f"What is {a}+{b}?", addition_trace(a, b, 3), str(a + b))


def make_arith(rng: random.Random) -> Example:
    while True:
        nums = [rng.randint(1, 9) for _ in range(4)]
        ops = [rng.choice("+-") for _ in range(3)]
        steps, value = [], nums[0]
        for op, n in zip(ops, nums[1:], strict=True):
            new = value + n if op == "+" else value - n
            steps.append(f"{value}{op}{n}={new}.")
            value = new
        if all(int(s.split("=")[1][:-1]) >= 0 for s in steps):
            break
    expr = str(nums[0]) + "".join(f"{op}{n}" for op, n in zip(ops, nums[1:], strict=True))
    return Example("arith", f"What is {expr}?", " ".join(steps) + f" so {value}", str(value))


def make_sort(rng: random.Random) -> Example:
    """Five distinct digits; the trace names the smallest, then each next larger one in turn."""
    nums = rng.sample(range(10), 5)
    order = sorted(nums)
    steps = [f"min {order[0]}."] + [f"next {n}." for n in order[1:]]
    answer = " ".join(map(str, order))
    question = f"Sort from small to large: {' '.join(map(str, nums))}"
    return Example("sort", question, " ".join(steps) + f" so {answer}", answer)


def make_count(rng: random.Random) -> Example:
    """Letters numbered 1..n in the question; the trace walks them by number with a running count."""
    word = "".join(rng.choice("abcde") for _ in range(rng.randint(4, 7)))
    target = rng.choice(word)
    steps, n = [], 0
    for i, ch in enumerate(word, 1):
        n += ch == target
        steps.append(f"{i}{ch} {n},")
    question = f"How many {target} in {' '.join(f'{i}{ch}' for i, ch in enumerate(word, 1))}?"
    return Example("count", question, " ".join(steps) + f" so {n}", str(n))


# ---- image tasks -----------------------------------------------------------------------------
MARKS = {"red": "R", "blue": "B"}  # cell colours in the trace: tokens apart from the question's colour word


def make_shapes(rng: random.Random) -> Example:
    """Shapes in a 3x3 grid; the trace visits cells 1..9 with the colour seen (R, B or -) and a
    running count of the asked colour, whose word then occurs once in the context (easy to find)."""
    cells: list = [None] * 9
    for i in rng.sample(range(9), rng.randint(1, 6)):
        cells[i] = (rng.choice(("red", "blue")), rng.choice(("circle", "square")))
    colour = rng.choice(("red", "blue"))
    steps, total = [], 0
    for i, c in enumerate(cells, 1):
        total += c is not None and c[0] == colour
        steps.append(f"{i} {'-' if c is None else MARKS[c[0]]} {total}.")
    question = f"How many {colour} shapes are in the image?"
    return Example("shapes", question, " ".join(steps) + f" so {total}", str(total), ("shapes", (cells,)))


def _read_numbers(top: int, bottom: int) -> str:
    return f"top {top:02d}. bottom {bottom:02d}."


def make_img_add(rng: random.Random) -> Example:
    top, bottom = rng.randint(0, 99), rng.randint(0, 99)
    trace = f"{_read_numbers(top, bottom)} {addition_trace(top, bottom, 2)}"
    spec = ("numbers", (top, bottom))
    return Example("img_add", "Add the two numbers in the image.", trace, str(top + bottom), spec)


def make_img_compare(rng: random.Random) -> Example:
    top, bottom = rng.sample(range(100), 2)
    t, b = f"{top:02d}", f"{bottom:02d}"
    i = 0 if t[0] != b[0] else 1
    answer = "top" if top > bottom else "bottom"
    trace = f"{_read_numbers(top, bottom)} {t[i]} vs {b[i]}, so {answer}"
    question = "Which number is larger, top or bottom?"
    return Example("img_compare", question, trace, answer, ("numbers", (top, bottom)))


SYMBOL_MARKS = {"circle": "O", "square": "S", "triangle": "T", "plus": "P"}


def make_grid(rng: random.Random) -> Example:
    """Symbols in a 3x3 grid; the trace visits cells 1..9 with the symbol seen (O, S, T, P or -)
    and the cell where the asked symbol has been seen so far (0 before it), as shapes keeps its
    running count: each step is one local comparison, and the asked word occurs once in the context."""
    cells: list = [None] * 9
    syms = rng.sample(images.SYMBOLS, rng.randint(2, 4))
    for i, sym in zip(rng.sample(range(9), len(syms)), syms, strict=True):
        cells[i] = sym
    target = rng.choice(syms)
    where = cells.index(target) + 1
    steps = [f"{i} {SYMBOL_MARKS[s] if s else '-'} {where if i >= where else 0}." for i, s in enumerate(cells, 1)]
    question = f"Which cell (1-9) holds the {target}?"
    return Example("grid", question, " ".join(steps) + f" so {where}", str(where), ("grid", (cells,)))


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("add", "text", True, 0.005, make_add, weight=2.0),
        Task("arith", "text", True, 0.07, make_arith, weight=1.5),
        Task("sort", "text", False, 0.012, make_sort, weight=0.5),
        Task("count", "text", False, 0.40, make_count, weight=2.0),
        Task("shapes", "image", True, 0.29, make_shapes, weight=1.5),
        Task("img_add", "image", True, 0.015, make_img_add),
        Task("img_compare", "image", False, 0.5, make_img_compare, weight=0.5),
        Task("grid", "image", False, 0.125, make_grid, weight=2.0),
    )
}


def get_tasks(names: Sequence[str] | None = None) -> list[Task]:
    """The named tasks (all when None); a ValueError lists the valid names."""
    if not names:
        return list(TASKS.values())
    bad = [n for n in names if n not in TASKS]
    if bad:
        raise ValueError(f"unknown task {bad[0]!r}; choose from: {', '.join(TASKS)}")
    return [TASKS[n] for n in names]


# ---- held-out split --------------------------------------------------------------------------
def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()[:12]


def eval_examples(task: str, n: int) -> list[Example]:
    """The first n held-out examples of a task (distinct, from the eval seed stream)."""
    return _eval_pool(task)[:n]


@functools.cache
def _eval_pool(task: str) -> list[Example]:
    out, seen, i = [], set(), 0
    while len(out) < EVAL_POOL and i < EVAL_POOL * 20:
        ex = TASKS[task].make(random.Random(f"eval:{task}:{i}"))
        i += 1
        if ex.key not in seen:
            seen.add(ex.key)
            out.append(ex)
    return out


@functools.cache
def _eval_digests(task: str) -> frozenset[bytes]:
    return frozenset(_digest(ex.key) for ex in _eval_pool(task))


def is_held_out(ex: Example) -> bool:
    return _digest(ex.key) in _eval_digests(ex.task)


# ---- training stream -------------------------------------------------------------------------
def train_example(rng: random.Random, tasks: Sequence[Task], weights: Sequence[float]) -> Example:
    """Draw one training example (never a held-out one) from `rng`."""
    task = rng.choices(tasks, weights=weights)[0]
    while True:
        ex = task.make(rng)
        if not is_held_out(ex):
            return ex


def train_stream(seed: int, tasks: Sequence[Task], weights: Sequence[float]) -> Iterator[Example]:
    """Endless training examples for a seed; the training seed stream never meets the eval one."""
    rng = random.Random(f"train:{seed}")
    while True:
        yield train_example(rng, tasks, weights)
