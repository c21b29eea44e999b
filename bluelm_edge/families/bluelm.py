"""The BlueLM family: our own checkpoint format (`model/checkpoint.py`) and chat format (`text/chat.py`).

A folder is ours when its config.json names no transformers `architectures` / `model_type` (a
`BlueLMConfig`, whose own checks then name what is wrong with it); its tokenizer must carry the
BlueLM special tokens at ids 0..10.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bluelm_edge.families.base import Family, Source, register


class BlueLMFamily(Family):
    name = "bluelm"
    architectures = ()  # listed as "a bluelm-edge checkpoint" in the one-line error

    def matches(self, raw: dict[str, Any]) -> bool:
        return "architectures" not in raw and "model_type" not in raw

    def read_config(self, folder: Path, raw: dict[str, Any]):
        from bluelm_edge.model.config import BlueLMConfig

        return BlueLMConfig.load(Path(folder) / "config.json")

    def missing(self, folder: Path) -> list[str]:
        return []  # the loader names what is missing, one line each

    def open(self, folder: Path) -> Source:
        from bluelm_edge.text.formats import BlueLMFormat
        from bluelm_edge.text.tokenizer import Tokenizer

        config = self.read_config(folder, {})
        tokenizer = Tokenizer.from_file(Path(folder) / "tokenizer.json")
        return Source(self, Path(folder), config, tokenizer, BlueLMFormat(tokenizer))

    def load_model(self, source: Source):
        from bluelm_edge.model.checkpoint import load_checkpoint

        return load_checkpoint(source.path)[0]

    def check_weights(self, folder: Path, config) -> list[Path]:
        from bluelm_edge.model.checkpoint import check_checkpoint

        return check_checkpoint(folder)[1]

    def chat_from_manifest(self, chat: dict[str, Any], tokenizer):
        from bluelm_edge.text.formats import BlueLMFormat

        return BlueLMFormat(tokenizer)


BLUELM = register(BlueLMFamily())
