"""Greedy exact-match evaluation on held-out task examples, per task and thinking budget.

Generation goes through the one loop (`bluelm_edge.session.ChatSession` -> `generate`), with the
budget controller: budget 0 is the non-thinking template, N > 0 caps the thinking tokens, None is
unlimited. Also owns the summary the issue asks for (text / image / multi-step means, the
thinking vs non-thinking gap) and the accuracy-against-budget plot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bluelm_edge.errors import UsageError
from bluelm_edge.generate import Sampling
from bluelm_edge.train.tasks import Task, eval_examples, get_tasks

Budget = int | None
MAX_NEW_TOKENS = 256


@dataclass
class Row:
    task: str
    kind: str
    multi_step: bool
    budget: Budget
    n: int
    accuracy: float
    thinking_tokens_mean: float
    chance: float


def parse_budgets(text: str) -> list[Budget]:
    """'0,8,none' -> [0, 8, None]; a UsageError names a bad item."""
    out: list[Budget] = []
    for item in (s.strip().lower() for s in text.split(",") if s.strip()):
        if item in ("none", "inf", "unlimited"):
            out.append(None)
        elif item.isdigit():
            out.append(int(item))
        else:
            raise UsageError(f"--thinking-budget item {item!r} is not a number or 'none' (e.g. 0,8,32,none)")
    if not out:
        raise UsageError("--thinking-budget is empty; give e.g. 0,8,16,32,64,none")
    return out


def budget_label(b: Budget) -> str:
    return "none" if b is None else str(b)


def evaluate_task(session, task: Task, budget: Budget, limit: int, blank_images: bool = False,
                  on_example: Callable[[], None] | None = None) -> Row:
    """Greedy accuracy of one task at one budget over the first `limit` held-out examples."""
    right, thinking = 0, 0
    examples = eval_examples(task.name, limit)
    for ex in examples:
        session.reset()
        images = [ex.image(blank=blank_images)] if ex.image_spec is not None else []
        reply = session.ask(ex.question, images, think=budget != 0, budget=budget,
                            sampling=Sampling(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS))
        right += ex.check(reply.answer)
        thinking += reply.stats.thinking_tokens
        if on_example:
            on_example()
    n = len(examples)
    return Row(task.name, task.kind, task.multi_step, budget, n, right / n, thinking / n, task.chance)


def evaluate(
    session, tasks: Sequence[str] | None, budgets: Sequence[Budget], limit: int,
    blank_images: bool = False, on_example: Callable[[], None] | None = None,
) -> list[Row]:
    return [
        evaluate_task(session, t, b, limit, blank_images, on_example)
        for t in get_tasks(tasks) for b in budgets
    ]


def summarise(rows: Sequence[Row]) -> dict:
    """Mean accuracy by kind and budget, and the multi-step gap between thinking and not."""
    out: dict = {}
    for b in dict.fromkeys(r.budget for r in rows):
        at = [r for r in rows if r.budget == b]
        entry = {kind: _mean([r.accuracy for r in at if r.kind == kind]) for kind in ("text", "image")}
        entry["multi_step"] = _mean([r.accuracy for r in at if r.multi_step])
        entry["thinking_tokens_mean"] = _mean([r.thinking_tokens_mean for r in at])
        out[budget_label(b)] = entry
    if "none" in out and "0" in out and out["none"]["multi_step"] is not None:
        out["multi_step_gap_points"] = round(100 * (out["none"]["multi_step"] - out["0"]["multi_step"]), 1)
    return out


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def to_json(rows: Sequence[Row], model: str, limit: int, blank_images: bool) -> dict:
    return {
        "model": model, "limit": limit, "blank_images": blank_images, "decoding": "greedy",
        "results": [asdict(r) | {"budget": budget_label(r.budget)} for r in rows],
        "summary": summarise(rows),
    }


def plot(rows: Sequence[Row], path: Path, title: str = "accuracy against thinking budget") -> None:
    """Accuracy (y) against budget (x, categorical in the order given) per task, PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bluelm_edge.io import PNG_SOFTWARE, atomic_path

    budgets = list(dict.fromkeys(r.budget for r in rows))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for task in dict.fromkeys(r.task for r in rows):
        acc = {r.budget: r.accuracy for r in rows if r.task == task}
        kind = next(r.kind for r in rows if r.task == task)
        ax.plot(range(len(budgets)), [acc.get(b) for b in budgets], marker="o",
                linestyle="-" if kind == "text" else "--", label=task)
    ax.set_xticks(range(len(budgets)), [budget_label(b) for b in budgets])
    ax.set_xlabel("thinking budget (tokens; 0 = non-thinking mode)")
    ax.set_ylabel("exact-match accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": PNG_SOFTWARE})
    plt.close(fig)
