"""Calibration sets: the shipped default set, user sets, and their validation.

Forms a set can take (all validated on load, errors name the file and line):
- a JSONL file of chats, `{"messages": [{"role", "content", "images"?, "thinking"?}, ...]}` a line,
  image paths relative to the file (the training data format, read by `datasets.chats.load_chats`);
  a chat whose last assistant turn has `thinking` is rendered in thinking mode;
- a folder with `samples.jsonl` (the same, e.g. the shipped `calibration/default/`);
- a folder of images (`*.png`, `*.jpg`, `*.jpeg`) with a `prompts.txt` (one prompt a line): image
  i (sorted by name) is asked prompt i mod n, as a generation prompt in non-thinking mode.

The default set (`make_default_set`) is made reproducibly from the training task generator (never
a held-out example) and the chat template: text and image tasks, thinking, non-thinking and
budget-cut turns, single-turn (short) and two-turn (long) chats.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from bluelm_edge import validate
from bluelm_edge.errors import DataError
from bluelm_edge.paths import data_dir
from bluelm_edge.text.chat import Message

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FORMS = ("think", "no_think", "cut")


@dataclass
class CalibSample:
    """One calibration conversation and how to render it."""

    messages: list[Message]
    think: bool
    generation_prompt: bool = False  # ends with a user turn (folder sets)


def default_set_dir() -> Path:
    return data_dir("calibration") / "default"


# ---- loading user and shipped sets ----------------------------------------------------------------
def load_set(path: Path | None = None, samples: int | None = None) -> list[CalibSample]:
    """Load and validate a calibration set (default: the shipped one); keep the first `samples`."""
    path = Path(path) if path is not None else default_set_dir()
    if not path.exists():
        raise DataError(f"{path}: no such calibration file or folder; pass a JSONL file or a folder with --data")
    if path.is_dir():
        out = _load_folder(path)
    else:
        out = _load_jsonl(path)
    if samples is not None:
        if samples < 1:
            raise DataError(f"--samples {samples}: use at least 1")
        out = out[:samples]
    return out


def _load_jsonl(path: Path) -> list[CalibSample]:
    from bluelm_edge.datasets.chats import load_chats

    chats = load_chats(path)  # validated: encoding, keys, types, every image decoded (DataError file:line)
    return [CalibSample(c, think=c[-1].thinking is not None) for c in chats]


def _load_folder(path: Path) -> list[CalibSample]:
    if (path / "samples.jsonl").is_file():
        return _load_jsonl(path / "samples.jsonl")
    prompts_file = path / "prompts.txt"
    if not prompts_file.is_file():
        raise DataError(f"{path}: a calibration folder needs samples.jsonl, or images with a prompts.txt")
    prompts = [line.strip() for line in validate.read_text(prompts_file).splitlines() if line.strip()]
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not prompts or not images:
        what = "prompts in prompts.txt" if not prompts else f"images ({', '.join(IMAGE_SUFFIXES)})"
        raise DataError(f"{path}: empty calibration set: no {what}")
    for img in images:
        validate.check_image(img, str(path))
    return [
        CalibSample([Message("user", prompts[i % len(prompts)], images=[img])], think=False, generation_prompt=True)
        for i, img in enumerate(images)
    ]


# ---- the default set --------------------------------------------------------------------------------
def default_messages(i: int, seed: int = 0) -> tuple[list[Message], bool]:
    """Sample i of the default set: (messages, think). Pure function of (i, seed)."""
    from bluelm_edge.datasets.chats import example_messages
    from bluelm_edge.datasets.tasks import get_tasks, train_example

    rng = random.Random(f"calibration:{seed}:{i}")
    tasks = get_tasks()
    form = FORMS[i % len(FORMS)]
    first = train_example(rng, [tasks[i % len(tasks)]], [1.0])
    messages = example_messages(first, form, rng)
    if i % 4 == 3:  # long: a second turn; earlier turns keep only their answers
        second = train_example(rng, tasks, [1.0] * len(tasks))
        messages = [*messages, *example_messages(second, form, rng)]
    return messages, form != "no_think"


def make_default_set(out: Path, n: int = 48, seed: int = 0) -> Path:
    """Write the default set (samples.jsonl + images/*.png + README facts) atomically to `out`."""
    from bluelm_edge.io import atomic_dir

    with atomic_dir(Path(out)) as tmp:
        (tmp / "images").mkdir()
        lines = []
        for i in range(n):
            messages, _ = default_messages(i, seed)
            lines.append(json.dumps({"messages": [_message_json(m, tmp, i, j) for j, m in enumerate(messages)]}))
        (tmp / "samples.jsonl").write_text("\n".join(lines) + "\n")
        (tmp / "meta.json").write_text(json.dumps({"n": n, "seed": seed, "made_by": "make_default_set"}) + "\n")
    return Path(out)


def _message_json(m: Message, folder: Path, i: int, j: int) -> dict:
    d: dict = {"role": m.role, "content": m.content}
    if m.images:
        names = []
        for k, img in enumerate(m.images):
            name = f"images/{i:04d}_{j}_{k}.png"
            img.save(folder / name, format="PNG")
            names.append(name)
        d["images"] = names
    if m.thinking is not None:
        d["thinking"] = m.thinking
    return d
