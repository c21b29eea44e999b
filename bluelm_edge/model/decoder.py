"""The LLaMA-style decoder: RMSNorm, RoPE, grouped-query attention, SwiGLU and a static KV cache.

Owns two forward paths over the same weights:
- `forward(embeds[1, L, D], positions[L])`: the cached path that export uses. Keys/values are
  written into per-layer cache buffers at explicit `positions` (index_copy_), and every query
  attends to the whole cache under a mask built from positions (a large finite negative, not
  -inf) so chunked prefill and one-token decoding are the same graph.
- `forward_full(embeds[B, L, D])`: causal attention without the cache, for training.

Parameter names follow `transformers`' LLaMA closely enough that `checkpoint.py` maps them with a
key table: rotate-half RoPE, q/k/v/o projections, gate/up/down MLP.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bluelm_edge.model.config import DecoderConfig

# Added to the scores of cache slots a query may not see. Finite (NPU quantizers and fp16 need it)
# and far below any real score, so softmax gives those slots exactly zero weight.
MASK_VALUE = -1.0e4


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 as in LLaMA; weight applied in the input dtype."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_tables(head_dim: int, max_seq_len: int, theta: float,
                scaling: tuple[float, float, float, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin: [max_seq_len, head_dim] in float32, rotate-half layout (each half repeated).

    `scaling`: Llama 3's (factor, low_freq_factor, high_freq_factor, original context)
    (`DecoderConfig.rope_scaling()`), as transformers' rope_type "llama3" computes it."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    if scaling is not None:
        inv_freq = _llama3_frequencies(inv_freq, *scaling)
    freqs = torch.arange(max_seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def _llama3_frequencies(inv_freq: torch.Tensor, factor: float, low: float, high: float, context: int
                        ) -> torch.Tensor:
    """Long wavelengths divided by `factor`, short ones kept, the band between interpolated."""
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > context / low, inv_freq / factor, inv_freq)
    smooth = (context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= context / high) & (wavelen <= context / low)
    return torch.where(medium, smoothed, scaled)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, H, L, hd]; cos, sin: [L, hd]
    return x * cos + _rotate_half(x) * sin


def _expand_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, KV, S, hd] -> [B, KV * groups, S, hd] by expand + reshape (no repeat_interleave)."""
    if groups == 1:
        return x
    b, kv, s, hd = x.shape
    return x[:, :, None].expand(b, kv, groups, s, hd).reshape(b, kv * groups, s, hd)


class Attention(nn.Module):
    """Grouped-query attention with RoPE, optional per-head qk RMSNorm and a static KV cache."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, int(cfg.head_dim)
        self.max_seq_len = cfg.max_seq_len
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.q = nn.Linear(cfg.dim, q_dim, bias=cfg.attn_bias)
        self.k = nn.Linear(cfg.dim, kv_dim, bias=cfg.attn_bias)
        self.v = nn.Linear(cfg.dim, kv_dim, bias=cfg.attn_bias)
        self.o = nn.Linear(q_dim, cfg.dim, bias=False)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, cfg.norm_eps)
            self.k_norm = RMSNorm(self.head_dim, cfg.norm_eps)
        self.qk_norm = cfg.qk_norm
        self.init_cache(torch.float32, None)

    def init_cache(self, dtype: torch.dtype, device: torch.device | str | None) -> None:
        """(Re)create the zeroed k/v cache buffers [1, kv_heads, max_seq_len, head_dim]."""
        shape = (1, self.kv_heads, self.max_seq_len, self.head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def _qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        b, seq, _ = x.shape
        q = self.q(x).view(b, seq, self.heads, self.head_dim).transpose(1, 2)  # [B, H, L, hd]
        k = self.k(x).view(b, seq, self.kv_heads, self.head_dim).transpose(1, 2)  # [B, KV, L, hd]
        v = self.v(x).view(b, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        b, _, seq, _ = out.shape  # out: [B, H, L, hd]
        return self.o(out.transpose(1, 2).reshape(b, seq, self.heads * self.head_dim))

    def forward(self, x, positions, cos, sin, mask) -> torch.Tensor:
        """Cached path. x: [1, L, D]; positions: [L]; mask: [L, S] additive."""
        q, k, v = self._qkv(x, cos, sin)
        self.k_cache.index_copy_(2, positions, k.to(self.k_cache.dtype))
        self.v_cache.index_copy_(2, positions, v.to(self.v_cache.dtype))
        groups = self.heads // self.kv_heads
        keys = _expand_kv(self.k_cache, groups).to(q.dtype)  # [1, H, S, hd]
        values = _expand_kv(self.v_cache, groups).to(q.dtype)
        scores = (q @ keys.transpose(-1, -2)) * self.head_dim**-0.5 + mask  # [1, H, L, S]
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        return self._merge(probs @ values)

    def forward_full(self, x, cos, sin) -> torch.Tensor:
        """Causal path without the cache. x: [B, L, D]."""
        q, k, v = self._qkv(x, cos, sin)
        groups = self.heads // self.kv_heads
        out = F.scaled_dot_product_attention(q, _expand_kv(k, groups), _expand_kv(v, groups), is_causal=True)
        return self._merge(out)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, ffn_dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, ffn_dim, bias=False)
        self.up = nn.Linear(dim, ffn_dim, bias=False)
        self.down = nn.Linear(ffn_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg.dim, cfg.ffn_dim)

    def forward(self, x, positions, cos, sin, mask) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), positions, cos, sin, mask)
        return x + self.mlp(self.mlp_norm(x))

    def forward_full(self, x, cos, sin) -> torch.Tensor:
        x = x + self.attn.forward_full(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nn.Module):
    """Token embedding (+ optional LayerNorm), decoder layers, final RMSNorm, output head."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        if cfg.embed_norm:
            self.embed_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.tie_weights()
        self.init_buffers(torch.float32, None)

    # ---- buffers (never in a checkpoint; rebuilt after loading on the meta device) ------------
    def tie_weights(self) -> None:
        if self.cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    def init_buffers(self, dtype: torch.dtype, device: torch.device | str | None) -> None:
        """Create the RoPE tables (float32) and zeroed KV caches (`dtype`) on `device`."""
        cos, sin = rope_tables(int(self.cfg.head_dim), self.cfg.max_seq_len, self.cfg.rope_theta,
                               self.cfg.rope_scaling())
        self.register_buffer("rope_cos", cos.to(device), persistent=False)
        self.register_buffer("rope_sin", sin.to(device), persistent=False)
        for layer in self.layers:
            layer.attn.init_cache(dtype, device)

    def reset_cache(self) -> None:
        for layer in self.layers:
            layer.attn.k_cache.zero_()
            layer.attn.v_cache.zero_()

    # ---- forward paths -------------------------------------------------------------------
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: [B, L] int64 -> [B, L, D]."""
        x = self.embed(ids)
        return self.embed_norm(x) if self.cfg.embed_norm else x

    def hidden(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Cached path up to the final norm. embeds: [1, L, D]; positions: [L] int64 -> [1, L, D]."""
        dtype = embeds.dtype
        cos = self.rope_cos.index_select(0, positions).to(dtype)  # [L, hd]
        sin = self.rope_sin.index_select(0, positions).to(dtype)
        slots = torch.arange(self.cfg.max_seq_len, device=positions.device)
        visible = slots[None, :] <= positions[:, None]  # [L, S]
        mask = torch.where(visible, 0.0, MASK_VALUE).to(dtype)
        x = embeds
        for layer in self.layers:
            x = layer(x, positions, cos, sin, mask)
        return self.norm(x)

    def forward(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Cached path: logits [1, L, V] for every position; writes the cache at `positions`."""
        return self.head(self.hidden(embeds, positions))

    def forward_full(self, embeds: torch.Tensor) -> torch.Tensor:
        """Causal path without the cache, for training. embeds: [B, L, D] -> logits [B, L, V]."""
        seq = embeds.shape[1]
        cos = self.rope_cos[:seq].to(embeds.dtype)
        sin = self.rope_sin[:seq].to(embeds.dtype)
        x = embeds
        for layer in self.layers:
            x = layer.forward_full(x, cos, sin)
        return self.head(self.norm(x))
