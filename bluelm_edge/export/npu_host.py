"""The host runner of the static NPU contract: drives `prefill` / `decode` as the vendor runners do.

`NpuDecoder(methods, meta)` is a `DecoderProtocol` over the static program's methods (callables:
the fp32 exported graphs, the vendor-quantized fake-quant graphs, or a lowered program's methods),
so `generate.py`'s one loop, and the thinking-budget controller on it, run unchanged. Like
upstream's Qualcomm runner (`prompt_processor` + `token_generator` with the smart-mask
`KVManager`) and MediaTek's `mtk_llama_runner`, it owns what the graph does not:

- the KV cache: one `[1, KV, S, hd]` buffer per layer for keys and values, shared by both methods;
  after each call the `valid` new rows the graph returned are written at slots `[pos, pos + valid)`
  (smart mask: entries never move, the mask says which slots are visible);
- prefill in chunks of `prefill_chunk`, the last one padded (zeros, RoPE rows zero), the logits
  read at the last valid row; one token at a time through `decode`;
- the mask and the RoPE rows of each call, from the metadata (`contract.NPU_METADATA_KEYS`);
- `token_embedding` and `vision_encoder` at their static shapes (ids padded with `<pad>`, tiles
  padded with the last tile), rows sliced back;
- quantized I/O, where the metadata declares it (`bluelm_edge/export/quant_io.py`): the cache held as the
  graph's integers (8-bit on QNN, 4x less than fp32) and stored as returned, embeddings, mask and
  RoPE rows quantized with the program's encodings, only the read logits row dequantized, and
  `token_embedding` / `vision_encoder` outputs dequantized (the prompt's embeddings are joined in
  fp32, then quantized at `embeds`' encoding for the step).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bluelm_edge import contract
from bluelm_edge.errors import ContextError
from bluelm_edge.export import quant_io
from bluelm_edge.graphs.static import rope_tables, step_mask

Method = Callable[..., Any]


class NpuDecoder:
    """`DecoderProtocol` over the static NPU methods (see the module docstring)."""

    def __init__(self, methods: dict[str, Method], meta: dict[str, Any]) -> None:
        self.methods, self.meta = methods, meta
        self.chunk, self.cache_len = int(meta["get_prefill_chunk"]), int(meta["get_cache_len"])
        self.layers, self.kv_heads = int(meta["get_n_layers"]), int(meta["get_kv_heads"])
        self.head_dim, self.pad_id = int(meta["get_head_dim"]), int(meta["get_pad_id"])
        self.vision_batch = int(meta["get_vision_batch"])
        self.max_context = self.cache_len
        self.max_prefill = self.cache_len  # the loop hands whole prompts; chunks are this runner's job
        self.rope_cos, self.rope_sin = rope_tables(self.head_dim, self.cache_len, float(meta["get_rope_theta"]),
                                                   contract.npu_rope_scaling(meta))
        self.io = quant_io.runner_encodings(meta)
        self.calls = {contract.PREFILL: 0, contract.DECODE: 0}
        self.reset()

    @classmethod
    def from_programs(cls, programs: dict[str, Any], meta: dict[str, Any]) -> NpuDecoder:
        """Over `torch.export` programs (fp32 or quantized) or GraphModules, keyed by method name; the
        decoder steps behind `quant_io.IntegerIo` when the metadata declares integer I/O."""
        methods = {k: p.module() if hasattr(p, "module") else p for k, p in programs.items()}
        return cls(quant_io.integer_methods(methods, meta), meta)

    @classmethod
    def folded(cls, modules: dict[str, Any], meta: dict[str, Any]) -> NpuDecoder:
        """Over copies of quantized GraphModules whose constant subgraphs (weight dequantization) are
        evaluated once: the same fp32 arithmetic per call (bit-identical logits), ~10x faster on the
        host. Only for measuring: the graphs to lower stay as they are."""
        import copy

        from torch._inductor.constant_folding import constant_fold

        copies = {k: copy.deepcopy(m.module() if hasattr(m, "module") else m) for k, m in modules.items()}
        for gm in copies.values():
            constant_fold(gm)
        return cls(quant_io.integer_methods(copies, meta), meta)

    @classmethod
    def from_archive(cls, path: Path) -> NpuDecoder:
        """Over a bundle's lowering-ready `program.pt2` (registers the quantized op libraries first)."""
        from bluelm_edge.export import archive

        programs, info = archive.load_programs(Path(path))
        return cls.from_programs(programs, info["constants"])

    # ---- DecoderProtocol ---------------------------------------------------------------------
    def reset(self) -> None:
        shape = (1, self.kv_heads, self.cache_len, self.head_dim)
        zeros = lambda e: torch.zeros(shape) if e is None else torch.full(shape, e.zero_point, dtype=e.dtype)
        self.k_cache = [zeros(self.io[f"k_{i}"]) for i in range(self.layers)]  # real 0 in each encoding
        self.v_cache = [zeros(self.io[f"v_{i}"]) for i in range(self.layers)]
        self.pos = 0

    @torch.no_grad()
    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [1, L] -> [1, L, D], through the static [1, chunk] method (padded with <pad>)."""
        out = []
        for lo in range(0, ids.shape[1], self.chunk):
            piece = ids[:, lo : lo + self.chunk]
            padded = torch.full((1, self.chunk), self.pad_id, dtype=torch.long)
            padded[:, : piece.shape[1]] = piece
            out.append(self._dequantize("token_embedding_out", self.methods[contract.TOKEN_EMBEDDING](padded))
                       [:, : piece.shape[1]])
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def vision_encoder(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [T, 3, S, S] -> [1, T * N, D], `vision_batch` tiles a call (last batch padded)."""
        rows, b = [], self.vision_batch
        for lo in range(0, pixels.shape[0], b):
            tiles = pixels[lo : lo + b]
            n = tiles.shape[0]
            if n < b:
                tiles = torch.cat([tiles, tiles[-1:].expand(b - n, *tiles.shape[1:])])
            feats = self._dequantize("vision_encoder_out", self.methods[contract.VISION_ENCODER](tiles.contiguous()))
            rows.append(feats[:, : feats.shape[1] * n // b])
        return torch.cat(rows, dim=1)

    @torch.no_grad()
    def text_decoder(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """embeds [1, L, D] at positions pos..pos+L-1 -> logits [1, V] of the last one."""
        start, total = int(positions[0]), embeds.shape[1]
        if start != self.pos:
            raise ContextError(f"the NPU runner is at position {self.pos}, not {start}; reset() before a new prompt")
        if start + total > self.cache_len:
            raise ContextError(f"{start + total} positions do not fit the {self.cache_len}-slot KV cache")
        logits = None
        lo = 0
        while lo < total:
            size = 1 if total - lo == 1 else min(self.chunk, total - lo)
            logits = self._step(embeds[:, lo : lo + size])
            lo += size
        return logits

    # ---- one graph call ------------------------------------------------------------------------
    def _step(self, embeds: torch.Tensor) -> torch.Tensor:
        """Run `decode` (1 token) or `prefill` (up to chunk, padded) at self.pos; update the cache."""
        valid = embeds.shape[1]
        name, chunk = (contract.DECODE, 1) if valid == 1 else (contract.PREFILL, self.chunk)
        x = torch.zeros(1, chunk, embeds.shape[2])
        x[:, :valid] = embeds
        cos, sin = torch.zeros(chunk, self.head_dim), torch.zeros(chunk, self.head_dim)
        cos[:valid] = self.rope_cos[self.pos : self.pos + valid]
        sin[:valid] = self.rope_sin[self.pos : self.pos + valid]
        mask = step_mask(self.pos, valid, chunk, self.cache_len)
        inputs = [self._quantize(r, t) for r, t in zip(quant_io.DECODER_INPUTS, (x, cos, sin, mask), strict=True)]
        logits, new_k, new_v = self.methods[name](*inputs, self.k_cache, self.v_cache)
        self.calls[name] += 1
        for cache, new in ((self.k_cache, new_k), (self.v_cache, new_v)):
            for layer in range(self.layers):  # the runner's cache update (outside the graph)
                cache[layer][:, :, self.pos : self.pos + valid] = new[layer][:, :, :valid]
        self.pos += valid
        return self._dequantize("logits", logits[:, valid - 1])

    def _dequantize(self, role: str, t: torch.Tensor) -> torch.Tensor:
        return quant_io.dequantize(self.io[role], t)

    def _quantize(self, role: str, t: torch.Tensor) -> torch.Tensor:
        return quant_io.quantize(self.io[role], t)
