"""Shared CLI pieces: option types and the one place a command turns MODEL into something to run.

MODEL may be a checkpoint folder of any registered family (ours, or a Hugging Face download of
Qwen3 / Qwen2 / LLaMA-family models: `bluelm_edge.families`), an exported bundle (a folder with
manifest.json), or omitted (the shipped tiny stand-in); `--preset NAME` builds a randomly
initialised model of that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from bluelm_edge.errors import UsageError
from bluelm_edge.paths import DEFAULT_MODEL_DIR

ModelArg = Annotated[
    Path | None,
    typer.Argument(help="Checkpoint folder (ours or a Hugging Face download), or an exported bundle "
                        "(default: the shipped tiny stand-in)."),
]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="Build a randomly initialised model of a preset (tiny, bluelm-2.5-3b).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@dataclass
class Loaded:
    decoder: Any  # DecoderProtocol
    tokenizer: Any  # Tokenizer
    config: Any  # BlueLMConfig
    label: str
    chat: Any = None  # ChatFormat: the family's template and thinking tags (None: BlueLM's)
    images: Any = None  # ImageReader: the family's image preprocessing (None: BlueLM's AnyRes)

    def session(self) -> Any:
        """A ChatSession over this model in its family's chat format and image rules."""
        from bluelm_edge.session import ChatSession

        return ChatSession(self.decoder, self.tokenizer, self.config, self.chat, self.images)


def resolve_model_dir(model: Path | None) -> Path:
    """MODEL, or the shipped stand-in; a one-line error if neither exists."""
    if model is not None:
        if not Path(model).exists():
            raise UsageError(f"{model}: no such checkpoint or bundle folder")
        return Path(model)
    if (DEFAULT_MODEL_DIR / "config.json").is_file():
        return DEFAULT_MODEL_DIR
    raise UsageError("the shipped tiny checkpoint is missing; pass MODEL or --preset tiny")


def model_config(model: Path | None) -> Any:
    """MODEL's BlueLMConfig as its family reads it (config.json only; a bundle's own config)."""
    from bluelm_edge.families import detect, read_raw
    from bluelm_edge.model.config import BlueLMConfig

    path = resolve_model_dir(model)
    if (path / "manifest.json").is_file():
        return BlueLMConfig.load(path / "config.json")
    return detect(path).read_config(path, read_raw(path))


def load_for_generation(model: Path | None, preset: str | None, seed: int = 0) -> Loaded:
    """Load MODEL (checkpoint or bundle) or build a preset, wrapped for the generation loop."""
    from bluelm_edge.session import EagerDecoder

    if preset is not None:
        if model is not None:
            raise UsageError("give either MODEL or --preset, not both")
        return _preset(preset, seed)
    path = resolve_model_dir(model)
    if (path / "manifest.json").is_file():
        from bluelm_edge.export.host import load_bundle_parts

        decoder, tokenizer, config, chat, images = load_bundle_parts(path)
        return Loaded(decoder, tokenizer, config, label=str(path), chat=chat, images=images)
    from bluelm_edge.families import open_folder

    source = open_folder(path)
    label = str(path) if source.family.name == "bluelm" else f"{path} ({source.family.name})"
    return Loaded(EagerDecoder(source.load_model()), source.tokenizer, source.config, label, source.chat,
                  source.image_reader())


def _preset(name: str, seed: int) -> Loaded:
    from bluelm_edge.model.seeded import seeded_model
    from bluelm_edge.session import EagerDecoder

    model, tokenizer, config = seeded_model(name, seed)
    return Loaded(EagerDecoder(model), tokenizer, config, label=f"preset {name} (random weights)")
