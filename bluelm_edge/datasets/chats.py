"""Chat data below both `train/` and `quant/`: synthetic task examples as chat messages (the
thinking / non-thinking / budget-cut forms) and user JSONL chats (`{"messages": [...]}` with image
paths, every line and image checked before any work). `train.data` turns them into batches;
`quant.calibration` and `quant.report` read them as calibration and held-out data.
"""

from __future__ import annotations

import random
from pathlib import Path

from bluelm_edge import validate
from bluelm_edge.datasets.tasks import Example
from bluelm_edge.errors import DataError
from bluelm_edge.text.chat import Message, render_text

SHORT_CUT = 12  # words: about 24 tokens of a trace
SHORT_SHARE = 0.45  # default share of the cuts that fall within the first SHORT_CUT words


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
