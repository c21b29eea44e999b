"""The vision tower in the XNNPACK form: the same weights, written so every op stays in the delegate.

XNNPACK delegates neither `native_layer_norm` nor the `_safe_softmax` / `expand_copy` that
`scaled_dot_product_attention` decomposes into, so the eager tower lowers in ~5 partitions a layer.
Here LayerNorm's two means are matmuls by a constant row of 1/W and attention is
`softmax(q @ k^T * scale) @ v` on static shapes: one partition for the whole tower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bluelm_edge.model.vision import VisionTower


class LayerNormLinear(nn.Module):
    """LayerNorm over the last dim with both means as matmuls by a constant `[1, W]` row of 1/W."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps
        width = norm.weight.shape[0]
        self.register_buffer("mean_row", torch.full((1, width), 1.0 / width), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - F.linear(x, self.mean_row)  # [..., W]
        var = F.linear(centred * centred, self.mean_row)  # [..., 1]
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias


class VisionAttentionForm(nn.Module):
    """Bidirectional attention as explicit matmuls + softmax over the same q/k/v/out linears."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.heads, self.head_dim = attn.heads, attn.head_dim
        self.q, self.k, self.v, self.out = attn.q, attn.k, attn.v, attn.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, p, w = x.shape  # x: [T, P, W]
        shape = (t, p, self.heads, self.head_dim)
        flat = (t * self.heads, p, self.head_dim)  # bmm on 3-D: 4-D matmul adds expand copies
        q, k, v = (m(x).view(shape).transpose(1, 2).reshape(flat) for m in (self.q, self.k, self.v))  # [T*H, P, hd]
        scores = torch.bmm(q, k.transpose(1, 2)) * self.head_dim**-0.5  # [T*H, P, P]
        out = torch.bmm(torch.softmax(scores, dim=-1), v).view(t, self.heads, p, self.head_dim)
        return self.out(out.transpose(1, 2).reshape(t, p, w))


class VisionBlockForm(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.norm1, self.norm2 = LayerNormLinear(block.norm1), LayerNormLinear(block.norm2)
        self.attn, self.mlp = VisionAttentionForm(block.attn), block.mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionForm(nn.Module):
    """`VisionTower` in this form: pixels [T, C, S, S] normalised -> [T, P, W]."""

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.patch_embed, self.pos_embed = tower.patch_embed, tower.pos_embed
        self.layers = nn.ModuleList(VisionBlockForm(block) for block in tower.layers)
        self.post_norm = LayerNormLinear(tower.post_norm)

    forward = VisionTower.forward  # the eager tower's computation, over the rewritten blocks
