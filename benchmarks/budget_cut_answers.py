"""Teacher-forced answer exact match after a thinking-budget cut (issue 17's diagnosis).

For each task, on held-out examples: the answer after the non-thinking template, after the whole
gold trace, and after the gold trace cut at k tokens (what the controller does) or k words (what
training did), closed by the budget message. An answer counts when every answer token is the
argmax. Shows whether a short trace answers worse than none, without greedy decoding.

    .venv/bin/python benchmarks/budget_cut_answers.py [CHECKPOINT] [EXAMPLES_PER_TASK]
"""

from __future__ import annotations

import sys

import torch

from bluelm_edge.datasets import chats
from bluelm_edge.datasets.tasks import eval_examples, get_tasks
from bluelm_edge.model.checkpoint import load_checkpoint
from bluelm_edge.paths import DEFAULT_MODEL_DIR
from bluelm_edge.text.chat import Message
from bluelm_edge.text.tokenizer import Tokenizer
from bluelm_edge.train import data

TOKEN_CUTS = (0, 2, 4, 8, 12, 16)
WORD_CUTS = (1, 2, 4)


def answer_exact(net, tok, samples: list[data.Sample]) -> float:
    """Share of samples whose answer (after the last `</think>`, else the trained tokens) is argmax."""
    think_end = tok.token_to_id("</think>")
    batch = data.collate(samples, tok.special.pad)
    with torch.no_grad():
        logits = net(batch.ids, batch.pixels)
    right = 0
    for i, s in enumerate(samples):
        ends = [j for j, t in enumerate(s.ids) if t == think_end]
        pos = range(ends[-1] + 1, len(s.ids)) if ends else [j for j, m in enumerate(s.loss_mask) if m]
        right += all(int(logits[i, p - 1].argmax()) == s.ids[p] for p in pos)
    return right / len(samples)


def cut_sample(ex, thinking: str, tok, cfg) -> data.Sample:
    msgs = [Message("user", ex.question, images=[ex.image()] if ex.image_spec else []),
            Message("assistant", ex.answer, thinking=thinking, thinking_truncated=True)]
    return data.render_sample(msgs, tok, cfg, True)


def main(path: str, n: int) -> None:
    torch.set_num_threads(1)
    net, cfg = load_checkpoint(path)
    tok = Tokenizer.from_file(f"{path}/tokenizer.json")
    print("task", "whole", "no_think", *[f"tok{k}" for k in TOKEN_CUTS], *[f"word{k}" for k in WORD_CUTS], sep="\t")
    for task in get_tasks(None):
        exs = eval_examples(task.name, n)
        row = [answer_exact(net, tok, [data.render_sample(chats.example_messages(ex, form), tok, cfg, form == "think")
                                       for ex in exs]) for form in ("think", "no_think")]
        for k in TOKEN_CUTS:
            cut = [tok.decode(tok.encode(ex.trace)[:k]) if k else "" for ex in exs]
            row.append(answer_exact(net, tok, [cut_sample(ex, c, tok, cfg) for ex, c in zip(exs, cut, strict=True)]))
        for w in WORD_CUTS:
            row.append(answer_exact(net, tok, [cut_sample(ex, " ".join(ex.trace.split(" ")[:w]), tok, cfg)
                                               for ex in exs]))
        print(task.name, *[f"{x:.2f}" for x in row], sep="\t", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(DEFAULT_MODEL_DIR), int(sys.argv[2]) if len(sys.argv) > 2 else 50)
