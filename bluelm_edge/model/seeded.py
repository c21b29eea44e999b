"""A seeded random-weight model of a preset with the built-in tokenizer: what `--preset` runs
and what tests use when they need a model but not a trained one."""

from __future__ import annotations

import torch

from bluelm_edge.model.config import BlueLMConfig, preset
from bluelm_edge.model.vlm import BlueLM
from bluelm_edge.text.tokenizer import Tokenizer, default_tokenizer


def seeded_model(name: str = "tiny", seed: int = 0) -> tuple[BlueLM, Tokenizer, BlueLMConfig]:
    """(model in eval mode, tokenizer, config) with torch's global seed set to `seed` first."""
    tokenizer = default_tokenizer()
    config = preset(name)
    config.decoder.vocab_size = tokenizer.vocab_size
    torch.manual_seed(seed)
    return BlueLM(config.validate()).eval(), tokenizer, config
