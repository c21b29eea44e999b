"""The XNNPACK graph form: the one `BlueLM` rewritten into what ExecuTorch's CPU runtime runs best.

`XnnpackForm(model)` exposes the contract methods (`vision_encoder`, `token_embedding`,
`text_decoder`) over the SAME parameter tensors as `model` (quantized in place or not), with:

- KV caches laid out `[1, S, KV, hd]` and written in place by `llama::update_cache` at the
  call's start position (no `index_put` + `copy_` of the whole buffer);
- attention by `llama::custom_sdpa`, causal from the start position: it reads only the filled
  slots `[0, start + L)` and handles grouped-query heads itself (no expanded copies of the cache,
  no mask tensor);
- RMSNorm's mean and RoPE's rotate-half as matmuls by constants, so no slice or reshape of the
  dynamic-length activations cuts the delegate between them;
- the output head applied to the last position only;
- the vision tower as `xnnpack_vision.VisionForm` (LayerNorm and attention the delegate takes whole).

Positions follow the runner convention (`positions[L]`, start..start+L-1, or `[start]`); only the
first is read. The eager model keeps its own form (and its own cache buffers); parity with it is
tested to 1e-4 in fp32 (`tests/test_graphs.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bluelm_edge.graphs.xnnpack_vision import VisionForm
from bluelm_edge.model.decoder import RMSNorm, rope_tables
from bluelm_edge.model.vlm import BlueLM


def load_custom_ops() -> None:
    """Register `llama::update_cache` / `llama::custom_sdpa` (AOT kernels + meta functions), their
    BLAS bound to ExecuTorch's own (`bind_executorch_blas`)."""
    bind_executorch_blas()
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401


_BLAS_BOUND: list[bool] = []


def bind_executorch_blas() -> bool:
    """Make ExecuTorch's own BLAS (Eigen's `sgemm_`, in `libexecutorch_kernels_optimized.so`) the one
    its kernels call in this process. Both the custom-ops library (`custom_sdpa`'s q@k and p@v) and
    the optimized kernels leave `sgemm_` undefined; in a process that imported torch first, the
    dynamic linker binds it to torch's MKL, which runs `custom_sdpa`'s small per-head products slowly
    from 128 keys on (decode 8.1 vs 6.4 ms/token at positions 132-163 of the ~250M peers model, and
    erratic half-speed runs) and is not what a phone runs (ExecuTorch's Android build links Eigen).
    Promoting the library to the global scope before the op library loads binds them to Eigen;
    torch's own calls keep MKL (bound inside libtorch). Returns whether the library was found.
    Must run before the first call into either library (lazy binding is fixed at first call)."""
    if not _BLAS_BOUND:
        import ctypes
        import os
        from pathlib import Path

        import executorch

        lib = Path(next(iter(executorch.__path__))) / "lib" / "libexecutorch_kernels_optimized.so"
        if lib.is_file():
            ctypes.CDLL(str(lib), mode=os.RTLD_GLOBAL | os.RTLD_LAZY)
        _BLAS_BOUND.append(lib.is_file())
    return _BLAS_BOUND[0]


class RmsLinear(nn.Module):
    """RMSNorm with the mean of squares as a matmul by a constant `[1, D]` row of 1/D: no reshape of
    the dynamic-length activation (XNNPACK delegates no reshape with a symbolic size, and its `mean`
    needs 4-D input), so a norm stays inside the partition around it."""

    def __init__(self, norm: RMSNorm) -> None:
        super().__init__()
        self.weight, self.eps = norm.weight, norm.eps
        dim = norm.weight.shape[0]
        self.register_buffer("mean_row", torch.full((1, dim), 1.0 / dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()  # [..., D]
        ms = F.linear(h * h, self.mean_row)  # [..., 1]
        return self.weight * (h * torch.rsqrt(ms + self.eps)).to(x.dtype)


def rotate_half_matrix(head_dim: int) -> torch.Tensor:
    """R with x @ R.T == rotate_half(x) = cat(-x[half:], x[:half]) over the last dim."""
    half = head_dim // 2
    eye = torch.eye(half)
    r = torch.zeros(head_dim, head_dim)
    r[:half, half:] = -eye  # out[:half] = -x[half:]
    r[half:, :half] = eye  # out[half:] = x[:half]
    return r


class SdpaAttention(nn.Module):
    """Grouped-query attention over an in-place `[1, S, KV, hd]` cache with ExecuTorch's custom ops."""

    def __init__(self, attn: nn.Module, max_seq_len: int) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = attn.heads, attn.kv_heads, attn.head_dim
        self.q, self.k, self.v, self.o = attn.q, attn.k, attn.v, attn.o
        self.qk_norm = attn.qk_norm
        if self.qk_norm:
            self.q_norm, self.k_norm = RmsLinear(attn.q_norm), RmsLinear(attn.k_norm)
        self.register_buffer("rotate", rotate_half_matrix(self.head_dim), persistent=False)
        shape = (1, max_seq_len, self.kv_heads, self.head_dim)
        self.register_buffer("k_cache", torch.zeros(shape), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape), persistent=False)

    def forward(self, x: torch.Tensor, start: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, seq, _ = x.shape  # x: [1, L, D]
        q = self.q(x).view(b, seq, self.heads, self.head_dim)  # [1, L, H, hd]
        k = self.k(x).view(b, seq, self.kv_heads, self.head_dim)  # [1, L, KV, hd]
        v = self.v(x).view(b, seq, self.kv_heads, self.head_dim)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        torch.ops.llama.update_cache(k, self.k_cache, start)
        torch.ops.llama.update_cache(v, self.v_cache, start)
        out = torch.ops.llama.custom_sdpa(q, self.k_cache, self.v_cache, start, None, 0.0, True)  # [1, L, H, hd]
        return self.o(out.reshape(b, seq, self.heads * self.head_dim))

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # x: [1, L, H, hd]; cos, sin: [L, 1, hd]. rotate_half as a matmul: slices of a dynamic-length
        # tensor would leave the delegate.
        return x * cos + F.linear(x, self.rotate) * sin


class Block(nn.Module):
    """One decoder layer in this form: the layer's own MLP, rewritten norms and attention."""

    def __init__(self, layer: nn.Module, max_seq_len: int) -> None:
        super().__init__()
        self.attn_norm, self.mlp_norm = RmsLinear(layer.attn_norm), RmsLinear(layer.mlp_norm)
        self.attn = SdpaAttention(layer.attn, max_seq_len)
        self.mlp = layer.mlp

    def forward(self, x: torch.Tensor, start: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), start, cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class XnnpackForm(nn.Module):
    """The contract methods of `model` in the XNNPACK form (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        load_custom_ops()
        self.cfg = model.cfg
        d = model.cfg.decoder
        self.max_seq_len = d.max_seq_len
        self.vision = VisionForm(model.vision) if model.vision is not None else None
        self.adapter = model.adapter
        self.embed = model.decoder.embed
        self.embed_norm = model.decoder.embed_norm if d.embed_norm else None
        self.layers = nn.ModuleList(Block(layer, d.max_seq_len) for layer in model.decoder.layers)
        self.norm, self.head = RmsLinear(model.decoder.norm), model.decoder.head
        cos, sin = rope_tables(int(d.head_dim), d.max_seq_len, d.rope_theta, d.rope_scaling())
        self.register_buffer("rope_cos", cos[:, None, :], persistent=False)  # [S, 1, hd]: no unsqueeze per call
        self.register_buffer("rope_sin", sin[:, None, :], persistent=False)

    # ---- the runtime contract -------------------------------------------------------------
    vision_encoder = BlueLM.vision_encoder  # the eager method, over the rewritten tower

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: [1, L] int64 -> [1, L, D]."""
        x = self.embed(ids)
        return self.embed_norm(x) if self.embed_norm is not None else x

    def text_decoder(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """embeds: [1, L, D], positions: [L] (or [1]) int64 from `start` -> logits [1, V] of the last one."""
        seq = embeds.shape[1]
        start = positions[0].item()
        torch._check(start >= 0)
        torch._check(start + seq <= self.max_seq_len)
        cos = self.rope_cos.narrow(0, start, seq).to(embeds.dtype)  # [L, 1, hd]
        sin = self.rope_sin.narrow(0, start, seq).to(embeds.dtype)
        x = embeds
        for block in self.layers:
            x = block(x, start, cos, sin)
        return self.head(self.norm(x[:, -1, :]))

    def reset_cache(self) -> None:
        for block in self.layers:
            block.attn.k_cache.zero_()
            block.attn.v_cache.zero_()
