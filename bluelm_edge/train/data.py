"""Training data: task examples and user chats -> token ids, loss masks and image tiles -> batches.

Owns the mode mix (thinking / non-thinking / thinking cut by the budget), the per-step example
stream (a pure function of seed and step, so a resumed or distributed run sees exactly the same
data), the tokenizer corpus, user JSONL chats (`{"messages": [...]}` with image paths), and
collation into padded `Batch`es.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bluelm_edge import validate
from bluelm_edge.errors import DataError
from bluelm_edge.imaging import preprocess
from bluelm_edge.model.config import BlueLMConfig
from bluelm_edge.text.chat import Message, render, render_text
from bluelm_edge.text.thinking import BUDGET_MESSAGE
from bluelm_edge.text.tokenizer import Tokenizer, train_tokenizer
from bluelm_edge.train.tasks import Example, Task, train_example

SHORT_CUT = 12  # words: about 24 tokens of a trace
SHORT_SHARE = 0.45  # default share of the cuts that fall within the first SHORT_CUT words


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


# ---- one example -> messages ------------------------------------------------------------------
def example_messages(ex: Example, form: str, rng: random.Random | None = None,
                     short: float = SHORT_SHARE) -> list[Message]:
    """Chat messages for an example; form is "think", "no_think" or "cut" (needs rng; `short` is
    the share of cuts within the first SHORT_CUT words)."""
    images = [ex.image()] if ex.image_spec is not None else []
    user = Message("user", ex.question, images=images)
    if form == "no_think":
        return [user, Message("assistant", ex.answer)]
    thinking, cut = ex.trace, False
    if form == "cut":
        words = ex.trace.split(" ")
        thinking, cut = " ".join(words[: _cut_point(len(words), rng, short)]), True
    return [user, Message("assistant", ex.answer, thinking=thinking, thinking_truncated=cut)]


def _cut_point(n_words: int, rng: random.Random, short: float = SHORT_SHARE) -> int:
    """Words kept before the budget cut. 10%: the whole trace, which the controller also closes
    when a trace is exactly as long as the budget (the answer must not change then); `short`
    (default 45%): within the first SHORT_CUT words, so small budgets (a few trace steps, or none)
    are trained often enough that a short trace does not answer worse than no trace; the rest:
    anywhere."""
    r = rng.random()
    if r < 0.1:
        return n_words
    return rng.randrange(min(n_words, SHORT_CUT) if r < 0.1 + short else n_words)


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


# ---- user JSONL chats ---------------------------------------------------------------------------
def load_chats(path: Path) -> list[list[Message]]:
    """Read `{"messages": [{"role", "content", "images"?, "thinking"?}, ...]}` lines (images: paths
    relative to the file). Every line is checked by `bluelm_edge.validate` (encoding, keys, types)
    and every image is decoded now, so a bad one is a DataError naming `file:line` before any work."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass a JSONL file of chats with --data")
    chats = [_chat(obj, path.parent, f"{path}:{lineno}") for lineno, obj in validate.iter_jsonl(path)]
    if not chats:
        raise DataError(f"{path}: no chats found; each line must be a JSON object with 'messages'")
    return chats


def _chat(obj: dict, base: Path, where: str) -> list[Message]:
    validate.check_chat(obj, where)
    try:
        msgs = [Message(m["role"], m["content"], images=[_image_path(p, base, where) for p in m.get("images", [])],
                        thinking=m.get("thinking")) for m in obj["messages"]]
        if msgs[-1].role != "assistant":
            raise DataError("the last message must be the assistant's (what to train on)")
        render_text(msgs, think=False, add_generation_prompt=False,
                    image_tokens=[1] * sum(len(m.images) for m in msgs))
    except DataError as err:
        if str(err).startswith(where):
            raise
        raise DataError(f"{where}: {err}; fix or remove that line") from None
    return msgs


def _image_path(p: str, base: Path, where: str) -> Path:
    path = Path(p) if Path(p).is_absolute() else base / p
    if not path.is_file():
        raise DataError(f"{where}: image {p!r} not found (paths are relative to the JSONL file)")
    validate.check_image(path, where, p)
    return path


def chat_messages(chats: Sequence[list[Message]], seed: int, step: int, batch_size: int):
    """The global batch of user chats for a step: (messages, think) pairs, seeded like the tasks."""
    rng = random.Random(f"chats:{seed}:{step}")
    picked = [chats[rng.randrange(len(chats))] for _ in range(batch_size)]
    return [(m, m[-1].thinking is not None) for m in picked]
