"""The Idefics3 / SmolVLM family: a Hugging Face folder of `Idefics3ForConditionalGeneration`.

The model side is `model/idefics3.py` (config mapping, weight keys, loading through the one
loader, completeness checks); the tokenizer and chat template are the checkpoint's own, read as
`hub_text` reads them. The images' rules (resize, tiles + the global image last, the
`<fake_token_around_image>` / `<row_r_col_c>` / `<global-img>` prompt) are `imaging_idefics3`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bluelm_edge.families.base import register
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


IDEFICS3 = register(Idefics3Family("idefics3", ("Idefics3ForConditionalGeneration",), ("idefics3",)))
