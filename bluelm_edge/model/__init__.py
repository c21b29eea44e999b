"""The model: config and presets, vision tower, adapter, decoder, the VLM and checkpoint IO.

Import the pieces from here: `from bluelm_edge.model import BlueLM, load_checkpoint, preset`.
"""

from bluelm_edge.model.checkpoint import (
    build_model,
    count_parameters,
    load_checkpoint,
    load_hf_llama,
    load_hf_siglip_vision,
    save_checkpoint,
)
from bluelm_edge.model.config import BlueLMConfig, DecoderConfig, VisionConfig, preset
from bluelm_edge.model.vlm import BlueLM

__all__ = [
    "BlueLM",
    "BlueLMConfig",
    "DecoderConfig",
    "VisionConfig",
    "build_model",
    "count_parameters",
    "load_checkpoint",
    "load_hf_llama",
    "load_hf_siglip_vision",
    "preset",
    "save_checkpoint",
]
