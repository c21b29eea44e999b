"""The vision-to-language adapter: merge x merge token downsampling, then a 2-layer MLP.

`Adapter(tokens[T, P, W]) -> [T, N, D]`: the P = g*g patch tokens are laid back on their g x g
grid, zero-padded to a multiple of `merge`, folded space-to-depth (each merge x merge block
becomes one token of merge*merge*W features, row-major within the block), then
Linear -> GELU -> Linear to the decoder width. N = ceil(g / merge)^2 =
`BlueLMConfig.image_tokens_per_tile`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Adapter(nn.Module):
    """Space-to-depth token merge + Linear-GELU-Linear projection."""

    def __init__(self, vision_width: int, merge: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.vision_width, self.merge = vision_width, merge
        self.fc1 = nn.Linear(vision_width * merge * merge, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def merge_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """[T, P, W] -> [T, (g'/m)^2, m*m*W] with g = sqrt(P), g' = g padded to a multiple of m."""
        t, p, w = tokens.shape
        g, m = math.isqrt(p), self.merge
        pad = (-g) % m
        x = tokens.reshape(t, g, g, w)
        if pad:
            x = F.pad(x, (0, 0, 0, pad, 0, pad))  # zero rows/cols at the bottom/right
        n = (g + pad) // m
        x = x.reshape(t, n, m, n, m, w).permute(0, 1, 3, 2, 4, 5)  # [T, n, n, m, m, W]
        return x.reshape(t, n * n, m * m * w)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: [T, P, W] -> [T, N, D]."""
        return self.fc2(F.gelu(self.fc1(self.merge_tokens(tokens))))
