"""Idefics3/SmolVLM's connector, and the choice between it and BlueLM's adapter.

`PixelShuffleConnector(tokens[T, P, W]) -> [T, N, D]`: transformers' `Idefics3Connector`, i.e.
`pixel_shuffle` with scale factor `merge` (each merge x merge block of the g x g patch grid
becomes one token whose features are the block's patches row-major, exactly the order of
`Adapter.merge_tokens`), then one bias-free Linear (`modality_projection.proj`) to the decoder
width. `adapter.kind` in the config picks it ("linear") or BlueLM's MLP adapter ("mlp").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from bluelm_edge.model.adapter import Adapter

if TYPE_CHECKING:
    from bluelm_edge.model.config import BlueLMConfig


class PixelShuffleConnector(nn.Module):
    """merge x merge pixel shuffle (space-to-depth), then one bias-free Linear."""

    def __init__(self, vision_width: int, merge: int, out_dim: int) -> None:
        super().__init__()
        self.vision_width, self.merge = vision_width, merge
        self.proj = nn.Linear(vision_width * merge * merge, out_dim, bias=False)

    merge_tokens = Adapter.merge_tokens  # [T, P, W] -> [T, P / merge^2, merge^2 * W]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: [T, P, W] -> [T, N, D]."""
        return self.proj(self.merge_tokens(tokens))


def build_adapter(cfg: BlueLMConfig) -> nn.Module:
    """The adapter `cfg.adapter.kind` names, from the vision width to the decoder width."""
    a, width, dim = cfg.adapter, cfg.vision.width, cfg.decoder.dim
    if a.kind == "linear":
        return PixelShuffleConnector(width, a.merge, dim)
    return Adapter(width, a.merge, a.hidden_dim or dim, dim)
