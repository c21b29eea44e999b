"""The family registry: which model description reads a folder, and what it answers.

A `Family` recognises a folder by its `config.json` and answers every question a command has
about it, so no command branches on a model name:

- `read_config(folder, raw)`: our `BlueLMConfig` from the folder's config (no weights, no tokenizer);
- `open(folder)`: a `Source`: config, tokenizer (with the family's special-token ids) and
  `ChatFormat` (template, thinking tags, budget message), weights not read yet;
- `missing(folder)`: the files a complete folder of this family needs that are absent;
- `load_model(source)` / `check_weights(source)`: weights through the one loader
  (`model/checkpoint.py`), data or headers only;
- `image_reader(folder, config)`: the family's image preprocessing (a model folder or a bundle
  carrying its rules): image -> `PreparedImage` (tiles + what the prompt needs); default BlueLM's
  AnyRes (`imaging.py`), which refuses images for a text-only config in one line;
- `write_bundle_files(folder, out)`: files beyond config / tokenizer a bundle needs (image rules).

`register(family)` adds one; `detect(folder)` picks the first that matches, or says in one line
which architectures are supported. Families: `families/bluelm.py` (our format) and
`families/hub_text.py` (Qwen3, Qwen2, LLaMA-family text models from a Hugging Face folder).
Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bluelm_edge import validate
from bluelm_edge.errors import ConfigError, UsageError

if TYPE_CHECKING:
    import torch

    from bluelm_edge.model.config import BlueLMConfig
    from bluelm_edge.model.vlm import BlueLM
    from bluelm_edge.text.formats import ChatFormat
    from bluelm_edge.text.tokenizer import Tokenizer

CONFIG = "config.json"


@dataclass
class PreparedImage:
    """One image as its family preprocessed it: what the vision tower and the prompt need."""

    pixels: torch.Tensor  # [T, 3, S, S] float32, in the order the vision tower takes them
    n_tokens: int  # `<image>` embedding slots it fills (T * tokens per tile)
    prompt: str | None = None  # template families: the text its `<image>` placeholder becomes


ImageReader = Callable[[Any], PreparedImage]  # a path or a PIL image -> PreparedImage


def anyres_reader(config: BlueLMConfig) -> ImageReader:
    """BlueLM's AnyRes tiles (`imaging.preprocess`): thumbnail first, `<image>` x n in the prompt."""
    from bluelm_edge.imaging import preprocess

    def read(image: Any) -> PreparedImage:
        tiles = preprocess(image, config)
        return PreparedImage(tiles.pixels, tiles.n_tokens)

    return read


@dataclass
class Source:
    """A model folder as its family read it: enough to chat, export or describe it."""

    family: Family
    path: Path
    config: BlueLMConfig
    tokenizer: Tokenizer
    chat: ChatFormat

    def load_model(self) -> BlueLM:
        return self.family.load_model(self)

    def image_reader(self) -> ImageReader:
        return self.family.image_reader(self.path, self.config)


class Family:
    """One model family's description; subclasses answer for their folders."""

    name = "family"
    architectures: tuple[str, ...] = ()  # what `supported()` lists

    def matches(self, raw: dict[str, Any]) -> bool:
        raise NotImplementedError

    def read_config(self, folder: Path, raw: dict[str, Any]) -> BlueLMConfig:
        raise NotImplementedError

    def missing(self, folder: Path) -> list[str]:
        raise NotImplementedError

    def open(self, folder: Path) -> Source:
        raise NotImplementedError

    def load_model(self, source: Source) -> BlueLM:
        raise NotImplementedError

    def check_weights(self, folder: Path, config: BlueLMConfig) -> list[Path]:
        raise NotImplementedError

    def chat_from_manifest(self, chat: dict[str, Any], tokenizer: Tokenizer) -> ChatFormat:
        raise NotImplementedError

    def image_reader(self, folder: Path, config: BlueLMConfig) -> ImageReader:
        return anyres_reader(config)

    def write_bundle_files(self, folder: Path, out: Path) -> None:
        """Copy into bundle folder `out` what `image_reader(out, ...)` reads besides config.json."""


_FAMILIES: list[Family] = []


def register(family: Family) -> Family:
    """Add a family (the first registered that matches a folder reads it)."""
    _FAMILIES.append(family)
    return family


def by_name(name: str) -> Family:
    for f in _FAMILIES:
        if f.name == name:
            return f
    raise ConfigError(f"unknown model family {name!r}; known: {', '.join(f.name for f in _FAMILIES)}")


def supported() -> str:
    """The architectures every family reads, for the one-line error."""
    return ", ".join(a for f in _FAMILIES for a in f.architectures)


def read_raw(folder: Path) -> dict[str, Any]:
    """The folder's config.json as a dict (one-line errors for a missing or broken file)."""
    path = Path(folder) / CONFIG
    if not Path(folder).is_dir():
        raise UsageError(f"{folder}: no such model folder; check the path")
    if not path.is_file():
        raise ConfigError(f"{path}: no config.json; a model folder needs one (a Hugging Face download has it)")
    raw = validate.read_json(path, ConfigError)
    if not isinstance(raw, dict):
        validate.check_config_file(raw, path, ConfigError)  # the one line naming what it is instead
    return raw


def detect(folder: Path) -> Family:
    """The family that reads `folder`, or a ConfigError listing the supported architectures."""
    raw = read_raw(folder)
    for family in _FAMILIES:
        if family.matches(raw):
            return family
    arch = raw.get("architectures") or raw.get("model_type") or "no 'architectures'"
    raise ConfigError(f"{Path(folder) / CONFIG}: architecture {arch} is not supported; supported: {supported()} "
                      "(or a bluelm-edge checkpoint)")


def open_folder(folder: Path) -> Source:
    """Detect the family, check the folder is complete, and open it (weights not read)."""
    family = detect(folder)
    missing = family.missing(Path(folder))
    if missing:
        raise ConfigError(f"{folder}: incomplete {family.name} folder: missing {', '.join(missing)}; "
                          "download the whole model folder")
    return family.open(Path(folder))
