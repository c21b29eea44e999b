"""Training data: chat messages (`datasets.chats`) -> token ids, loss masks and image tiles -> batches.

Owns the mode mix (thinking / non-thinking / thinking cut by the budget), the per-step example
stream (a pure function of seed and step, so a resumed or distributed run sees exactly the same
data), the tokenizer corpus, the per-step pick of user chats, and
collation into padded `Batch`es.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bluelm_edge.datasets.chats import SHORT_SHARE, example_messages
from bluelm_edge.datasets.tasks import Task, train_example
from bluelm_edge.imaging import preprocess
from bluelm_edge.model.config import BlueLMConfig
from bluelm_edge.text.chat import Message, render, render_text
from bluelm_edge.text.thinking import BUDGET_MESSAGE
from bluelm_edge.text.tokenizer import Tokenizer, train_tokenizer


@dataclass(frozen=True)
class Mix:
    """How often each training form is drawn (the rest is plain thinking mode)."""

    no_think: float = 0.25  # answer only, non-thinking template
    cut: float = 0.15  # thinking cut at a random word, closed by the budget message
    short: float = SHORT_SHARE  # share of the cuts within the first SHORT_CUT words


@dataclass
class Sample:
    ids: list[int]
    loss_mask: list[int]
    pixels: torch.Tensor | None  # [T, 3, S, S]


@dataclass
class Batch:
    ids: torch.Tensor  # [B, L] int64, right-padded with <pad>
    targets_mask: torch.Tensor  # [B, L-1] float: 1 where ids[:, 1:] is trained on
    pixels: torch.Tensor | None  # [T, 3, S, S], all images of the batch in order

    @property
    def n_tokens(self) -> int:
        return int(self.ids.numel())


def draw_form(rng: random.Random, mix: Mix) -> str:
    r = rng.random()
    return "no_think" if r < mix.no_think else "cut" if r < mix.no_think + mix.cut else "think"


def render_sample(messages: list[Message], tokenizer: Tokenizer, cfg: BlueLMConfig, think: bool) -> Sample:
    tiles = [preprocess(img, cfg) for m in messages for img in m.images]
    r = render(messages, tokenizer, think=think, add_generation_prompt=False,
               image_tokens=[t.n_tokens for t in tiles])
    pixels = torch.cat([t.pixels for t in tiles]) if tiles else None
    return Sample(r.ids, r.loss_mask, pixels)


# ---- the per-step stream ------------------------------------------------------------------------
def step_messages(
    seed: int, step: int, batch_size: int, tasks: Sequence[Task], weights: Sequence[float], mix: Mix
) -> list[tuple[list[Message], bool]]:
    """The global batch of step `step`: (messages, think) pairs, a pure function of its arguments."""
    rng = random.Random(f"train:{seed}:{step}")
    out = []
    for _ in range(batch_size):
        ex = train_example(rng, tasks, weights)
        form = draw_form(rng, mix)
        out.append((example_messages(ex, form, rng, mix.short), form != "no_think"))
    return out


def collate(samples: Sequence[Sample], pad_id: int) -> Batch:
    length = max(len(s.ids) for s in samples)
    ids = torch.full((len(samples), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(samples), length), dtype=torch.float32)
    for i, s in enumerate(samples):
        ids[i, : len(s.ids)] = torch.tensor(s.ids)
        mask[i, : len(s.ids)] = torch.tensor(s.loss_mask, dtype=torch.float32)
    pix = [s.pixels for s in samples if s.pixels is not None]
    return Batch(ids, mask[:, 1:].contiguous(), torch.cat(pix) if pix else None)


def length_buckets(samples: Sequence[Sample], max_tokens: int) -> list[list[Sample]]:
    """Samples sorted by length and packed greedily into groups whose padded size (count x
    longest) stays within max_tokens: far less padding than one batch, the same gradient."""
    groups: list[list[Sample]] = []
    for s in sorted(samples, key=lambda s: len(s.ids)):
        if groups and (len(groups[-1]) + 1) * len(s.ids) <= max_tokens:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


# ---- tokenizer ----------------------------------------------------------------------------------
def tokenizer_corpus(tasks: Sequence[Task], n: int = 4000, seed: int = 0) -> list[str]:
    """Rendered chat text of n training examples in every form, with image placeholders."""
    rng = random.Random(f"tokenizer:{seed}")
    texts = [BUDGET_MESSAGE]
    for i in range(n):
        ex = train_example(rng, tasks, [1.0] * len(tasks))
        form = ("think", "no_think", "cut")[i % 3]
        msgs = [Message("user", ex.question), *example_messages(ex, form, rng)[1:]]
        texts.append(render_text(msgs, think=form != "no_think", add_generation_prompt=False))
    return texts


def build_tokenizer(tasks: Sequence[Task], vocab_size: int, extra_texts: Sequence[str] = ()) -> Tokenizer:
    return train_tokenizer([*tokenizer_corpus(tasks), *extra_texts], vocab_size)


def chat_messages(chats: Sequence[list[Message]], seed: int, step: int, batch_size: int):
    """The global batch of user chats for a step: (messages, think) pairs, seeded like the tasks."""
    rng = random.Random(f"chats:{seed}:{step}")
    picked = [chats[rng.randrange(len(chats))] for _ in range(batch_size)]
    return [(m, m[-1].thinking is not None) for m in picked]
