"""The SigLIP-style vision tower: conv patch embedding, learned positions, pre-LN blocks, post-LN.

`VisionTower(cfg)(pixels[T, 3, S, S]) -> [T, P, width]` for normalised pixels, one AnyRes tile a
row. Module names are chosen so a `transformers` `SiglipVisionModel` state dict maps onto them by
the key table in `checkpoint.py` (no pooling head: the adapter consumes every patch token).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bluelm_edge.model.config import VisionConfig


class VisionAttention(nn.Module):
    """Bidirectional multi-head self-attention with biased q/k/v/out projections."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, p, w = x.shape  # x: [T, P, W]
        shape = (t, p, self.heads, self.head_dim)
        q, k, v = (m(x).view(shape).transpose(1, 2) for m in (self.q, self.k, self.v))  # [T, H, P, hd]
        out = F.scaled_dot_product_attention(q, k, v)  # [T, H, P, hd]
        return self.out(out.transpose(1, 2).reshape(t, p, w))


class VisionMLP(nn.Module):
    """fc1 -> GELU (tanh approximation, as SigLIP's gelu_pytorch_tanh) -> fc2."""

    def __init__(self, width: int, mlp_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class VisionBlock(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = VisionAttention(cfg.width, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = VisionMLP(cfg.width, cfg.mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTower(nn.Module):
    """SigLIP-style ViT over square tiles; returns the post-LN patch tokens."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(cfg.channels, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(cfg.num_patches, cfg.width))
        nn.init.normal_(self.pos_embed, std=0.02)
        self.layers = nn.ModuleList(VisionBlock(cfg) for _ in range(cfg.layers))
        self.post_norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: [T, C, S, S] normalised -> [T, P, W]."""
        x = self.patch_embed(pixels.to(self.patch_embed.weight.dtype))  # [T, W, g, g]
        x = x.flatten(2).transpose(1, 2) + self.pos_embed  # [T, P, W]
        for layer in self.layers:
            x = layer(x)
        return self.post_norm(x)
