"""Greedy exact-match evaluation on held-out task examples, per task and thinking budget.

Generation goes through the one loop (`bluelm_edge.session.ChatSession` -> `generate`), with the
budget controller: budget 0 is the non-thinking template, N > 0 caps the thinking tokens, None is
unlimited. Also owns the summary the issue asks for (text / image / multi-step means, the
thinking vs non-thinking gap) and the accuracy-against-budget plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bluelm_edge.datasets.tasks import Task, eval_examples, get_tasks
from bluelm_edge.errors import UsageError
from bluelm_edge.generate import Sampling

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


Z95 = 1.959964  # two-sided 95% normal quantile
KINDS: dict[str, Callable[[Row], bool]] = {
    "text": lambda r: r.kind == "text",
    "image": lambda r: r.kind == "image",
    "multi_step": lambda r: r.multi_step,
}
INTERVAL = "Wilson score 95% over the kind's examples pooled across its tasks"


def wilson(right: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sound at 0/n and n/n, unlike p +- z*se)."""
    if n <= 0:
        return 0.0, 1.0
    p = right / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def kind_curve(rows: Sequence[Row], kind: str) -> dict[str, dict]:
    """Budget label -> pooled accuracy, 95% interval, n and mean thinking tokens for one kind."""
    member = KINDS[kind]
    out: dict[str, dict] = {}
    for b in dict.fromkeys(r.budget for r in rows):
        at = [r for r in rows if r.budget == b and member(r)]
        n = sum(r.n for r in at)
        if not n:
            continue
        right = sum(round(r.accuracy * r.n) for r in at)
        lo, hi = wilson(right, n)
        out[budget_label(b)] = {
            "n": n, "right": right, "accuracy": round(right / n, 4), "ci95": [round(lo, 4), round(hi, 4)],
            "thinking_tokens_mean": round(sum(r.thinking_tokens_mean * r.n for r in at) / n, 2),
        }
    return out


def _half(entry: dict) -> float:
    return (entry["ci95"][1] - entry["ci95"][0]) / 2


def curve_checks(curve: dict[str, dict]) -> dict[str, list[str]]:
    """The two shape checks of a budget curve, as lists of the budgets that fail them:
    `below_no_thinking`: accuracy < budget-0 accuracy - this budget's interval half-width;
    `drops`: accuracy < the previous budget's accuracy - this budget's interval half-width."""
    labels = list(curve)
    floor = curve.get("0")
    below = [b for b in labels if floor and curve[b]["accuracy"] < floor["accuracy"] - _half(curve[b])]
    drops = [b for prev, b in zip(labels, labels[1:], strict=False)
             if curve[b]["accuracy"] < curve[prev]["accuracy"] - _half(curve[b])]
    return {"below_no_thinking": below, "drops": drops}


def summarise(rows: Sequence[Row]) -> dict:
    """Per kind (text, image, multi-step): the accuracy curve over budgets with 95% intervals and
    thinking tokens used, its shape checks, and the multi-step gap between thinking and not."""
    kinds = {k: c for k in KINDS if (c := kind_curve(rows, k))}
    out: dict = {"interval": INTERVAL, "kinds": kinds,
                 "checks": {k: curve_checks(c) for k, c in kinds.items()}}
    multi = kinds.get("multi_step", {})
    if "none" in multi and "0" in multi:
        out["multi_step_gap_points"] = round(100 * (multi["none"]["accuracy"] - multi["0"]["accuracy"]), 1)
    return out


def to_json(rows: Sequence[Row], model: str, limit: int, blank_images: bool) -> dict:
    return {
        "model": model, "limit": limit, "blank_images": blank_images, "decoding": "greedy",
        "results": [asdict(r) | {"budget": budget_label(r.budget)} for r in rows],
        "summary": summarise(rows),
    }


MEAN_STYLE = {"text": ("tab:blue", "-"), "image": ("tab:red", "--"), "multi_step": ("tab:green", ":")}
MARKERS = "osD^vP*Xh<>p"


def budget_positions(budgets: Sequence[Budget]) -> dict[Budget, float]:
    """x of each budget: log2(1 + budget), so 0, 4, 8, ..., 64 are spaced by their size; `none`
    one step past the largest."""
    xs = {b: math.log2(1 + b) for b in budgets if b is not None}
    if None in budgets:
        xs[None] = max(xs.values(), default=-1.0) + 1.0
    return xs


def plot(rows: Sequence[Row], path: Path, title: str = "accuracy against thinking budget") -> None:
    """Two panels, PNG, atomically. Top: per kind the mean accuracy (bold) with its 95% band, and
    each task thin (own marker, a small x offset so lines on 0 or 1 stay visible). Bottom: the
    thinking tokens actually used per kind against the budget's cap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bluelm_edge.io import PNG_SOFTWARE, atomic_path

    budgets = list(dict.fromkeys(r.budget for r in rows))
    pos = budget_positions(budgets)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    tasks = list(dict.fromkeys(r.task for r in rows))
    for i, task in enumerate(tasks):
        acc = {r.budget: r.accuracy for r in rows if r.task == task}
        off = 0.05 * (i - (len(tasks) - 1) / 2)
        bs = [b for b in budgets if b in acc]
        ax.plot([pos[b] + off for b in bs], [acc[b] for b in bs], marker=MARKERS[i % len(MARKERS)],
                markersize=4, lw=0.8, alpha=0.55, label=task)
    for kind, curve in summarise(rows)["kinds"].items():
        colour, style = MEAN_STYLE[kind]
        bs = [b for b in budgets if budget_label(b) in curve]
        xs, es = [pos[b] for b in bs], [curve[budget_label(b)] for b in bs]
        ax.plot(xs, [e["accuracy"] for e in es], color=colour, ls=style, lw=2.6, label=f"mean {kind}")
        ax.fill_between(xs, [e["ci95"][0] for e in es], [e["ci95"][1] for e in es], color=colour, alpha=0.13)
        ax2.plot(xs, [e["thinking_tokens_mean"] for e in es], color=colour, ls=style, lw=2, marker="o",
                 markersize=4, label=kind)
    capped = [b for b in budgets if b is not None]
    if capped:
        ax2.plot([pos[b] for b in capped], capped, color="0.5", lw=1, ls="-.", label="budget (cap)")
    ax.set_ylabel("exact-match accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper left", bbox_to_anchor=(0.0, 0.9))
    ax2.set_ylabel("thinking tokens used")
    ax2.set_xticks([pos[b] for b in budgets], [budget_label(b) for b in budgets])
    ax2.set_xlabel("thinking budget (tokens; 0 = non-thinking mode; bands: 95% Wilson intervals)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7, ncol=4, loc="upper left")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": PNG_SOFTWARE})
    plt.close(fig)
