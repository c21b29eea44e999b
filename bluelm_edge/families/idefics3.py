"""The Idefics3 / SmolVLM family: a Hugging Face folder of `Idefics3ForConditionalGeneration`.

The model side is `model/idefics3.py` (config mapping, weight keys, loading through the one
loader, completeness checks); the tokenizer and chat template are the checkpoint's own, read as
`hub_text` reads them. The images' rules (resize, tiles + the global image last, the
`<fake_token_around_image>` / `<row_r_col_c>` / `<global-img>` prompt) are `imaging_idefics3`:
`image_reader` answers for them, from the folder's preprocessor / processor config, or from the
`processor_config.json` that `write_bundle_files` puts in a bundle. The template takes content as
typed parts (`parts=True`): images first, then the text, as transformers' processor is given it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bluelm_edge.errors import ConfigError
from bluelm_edge.families.base import ImageReader, PreparedImage, register
from bluelm_edge.families.hub_text import HubTextFamily, _template

_NO_TOKEN_FIELDS = ("human", "ai", "blue_think", "think_start", "think_end")  # Idefics3 has none of these


@dataclass(frozen=True)
class Idefics3Family(HubTextFamily):
    """SigLIP tower + pixel-shuffle connector + LLaMA decoder, read from a Hub folder."""

    def matches(self, raw: dict[str, Any]) -> bool:
        from bluelm_edge.model.idefics3 import is_idefics3

        return is_idefics3(raw)

    def read_config(self, folder: Path, raw: dict[str, Any]):
        from bluelm_edge.model.config import NO_TOKEN
        from bluelm_edge.model.idefics3 import read_config

        config = read_config(folder)
        for name in _NO_TOKEN_FIELDS:
            setattr(config.tokens, name, NO_TOKEN)
        return config.validate()

    def missing(self, folder: Path) -> list[str]:
        from bluelm_edge.model.idefics3 import missing

        gone = missing(folder)
        if (Path(folder) / "tokenizer_config.json").is_file() and _template(folder) is None:
            gone.append("a chat_template (tokenizer_config.json or chat_template.jinja)")
        return gone

    def load_model(self, source):
        from bluelm_edge.model.idefics3 import load_model

        return load_model(source.path, source.config)

    def check_weights(self, folder: Path, config) -> list[Path]:
        from bluelm_edge.model.idefics3 import check_weights

        return check_weights(folder, config)

    # ---- images ------------------------------------------------------------------------------
    def image_reader(self, folder: Path, config) -> ImageReader:
        """Reads the rules at each image, so a folder without them still chats without images."""
        return partial(_read_image, folder=Path(folder), per_tile=config.image_tokens_per_tile)

    def write_bundle_files(self, folder: Path, out: Path) -> None:
        from bluelm_edge.imaging_idefics3 import PROCESSOR, processor_dict

        (Path(out) / PROCESSOR).write_text(json.dumps(processor_dict(folder), indent=2) + "\n")


def _read_image(image: Any, *, folder: Path, per_tile: int) -> PreparedImage:
    """A path or PIL image -> tiles (global image last) and its expanded `<image>` prompt."""
    from bluelm_edge.imaging import load_image
    from bluelm_edge.imaging_idefics3 import Idefics3ImageRules, image_prompt, image_seq_len, preprocess

    rules = Idefics3ImageRules.load(folder)
    seq = image_seq_len(folder) or per_tile
    if seq != per_tile:
        raise ConfigError(f"{folder}: image_seq_len {seq} but the model gives {per_tile} features a tile; "
                          "the processor config is for another model")
    img = preprocess(load_image(image, keep_alpha=True), rules)
    # pixels: [T, 3, S, S]
    return PreparedImage(img.pixels, img.pixels.shape[0] * seq, image_prompt(img.rows, img.cols, seq))


IDEFICS3 = register(Idefics3Family("idefics3", ("Idefics3ForConditionalGeneration",), ("idefics3",), parts=True))
