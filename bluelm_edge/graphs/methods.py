"""Exportable methods: one small `nn.Module` per contract method, all over the same source.

A source is the eager `BlueLM` or a backend's graph form of it (`graphs.xnnpack.XnnpackForm`):
anything with `cfg`, `reset_cache()` and the contract methods. Every wrapper holds the source
under the same attribute, so the KV-cache buffers have the same
names in each exported method and `MemoryPlanningPass(share_mutable_buffers=True)` gives them one
allocation (prefill, decode and `forward` then see one cache). `export_methods` runs
`torch.export` per method with the dynamic shapes of the runner convention (see
`../shared/EXECUTORCH-NOTES.md`): fixed tile batch for vision, dynamic L for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from bluelm_edge import contract
from bluelm_edge.errors import UsageError
from bluelm_edge.model.vlm import BlueLM

Source = nn.Module  # BlueLM or a graph form: cfg, reset_cache(), vision_encoder, token_embedding, text_decoder


class VisionEncoder(nn.Module):
    def __init__(self, model: Source) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # [T, 3, S, S] -> [1, T*N, D]
        return self.model.vision_encoder(pixels)


class TokenEmbedding(nn.Module):
    def __init__(self, model: Source) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # [1, L] -> [1, L, D]
        return self.model.token_embedding(ids)


class TextDecoder(nn.Module):
    def __init__(self, model: Source) -> None:
        super().__init__()
        self.model = model

    def forward(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:  # -> [1, V]
        return self.model.text_decoder(embeds, positions)


class Forward(nn.Module):
    """`forward(tokens, positions)` for TextLLMRunner: embedding then decoder, same KV buffers."""

    def __init__(self, model: Source) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.text_decoder(self.model.token_embedding(ids), positions)


def set_max_context(model: BlueLM, max_context: int) -> None:
    """Resize the static KV cache (and RoPE tables) to `max_context` positions, zeroed."""
    if max_context < 2:
        raise UsageError(f"--max-context {max_context} is too small; use at least 2 (e.g. 512)")
    model.cfg.decoder.max_seq_len = max_context
    for layer in model.decoder.layers:
        layer.attn.max_seq_len = max_context
    dtype = model.decoder.layers[0].attn.k_cache.dtype
    model.decoder.init_buffers(dtype, None)


def example_inputs(model: Source, prefill_chunk: int, vision_batch: int) -> dict[str, tuple]:
    """Example inputs per method (a dynamic L is traced at 2 so it stays symbolic; static chunk 1 at 1)."""
    cfg = model.cfg
    s, d = cfg.vision.image_size if cfg.vision else 1, cfg.decoder.dim
    n = 2 if prefill_chunk > 1 else 1
    ids = torch.tensor([[cfg.tokens.bos, cfg.tokens.eos][:n]], dtype=torch.long)
    pos = torch.arange(n, dtype=torch.long)
    return {
        contract.VISION_ENCODER: (torch.zeros(vision_batch, 3, s, s),),
        contract.TOKEN_EMBEDDING: (ids,),
        contract.TEXT_DECODER: (torch.zeros(1, n, d), pos),
        contract.FORWARD: (ids, pos),
    }


def dynamic_shapes(prefill_chunk: int) -> dict[str, object]:
    """The runner convention's dynamic L (1..chunk); chunk 1 means static one-token methods (NPUs)."""
    if prefill_chunk <= 1:
        return dict.fromkeys(contract.METHODS)
    seq = Dim("seq", min=1, max=prefill_chunk)
    return {
        contract.VISION_ENCODER: None,
        contract.TOKEN_EMBEDDING: ({1: Dim("tokens", min=1, max=prefill_chunk)},),
        contract.TEXT_DECODER: ({1: seq}, {0: seq}),
        contract.FORWARD: ({1: seq}, {0: seq}),
    }


def wrappers(source: Source, names: Sequence[str] = contract.METHODS) -> dict[str, nn.Module]:
    """{method name: exportable module} over `source`, for the contract methods in `names`."""
    kinds = {contract.VISION_ENCODER: VisionEncoder, contract.TOKEN_EMBEDDING: TokenEmbedding,
             contract.TEXT_DECODER: TextDecoder, contract.FORWARD: Forward}
    return {name: kinds[name](source) for name in names}


def export_methods(
    source: Source,
    prefill_chunk: int = contract.DEFAULT_PREFILL_CHUNK,
    vision_batch: int = contract.DEFAULT_VISION_BATCH,
    modules: dict[str, nn.Module] | None = None,
) -> dict[str, ExportedProgram]:
    """`torch.export` each contract method (under no_grad, cache zeroed) -> {name: program}.

    `modules` replaces the wrappers (e.g. vendor-quantized GraphModules of the same methods, or
    wrappers over a graph form); `source` gives the shapes and the cache to zero.
    """
    prefill_chunk = min(prefill_chunk, source.cfg.decoder.max_seq_len)
    inputs = example_inputs(source, prefill_chunk, vision_batch)
    shapes = dynamic_shapes(prefill_chunk)
    modules = modules or wrappers(source)
    out = {}
    with torch.no_grad():
        for name, module in modules.items():
            source.reset_cache()
            out[name] = torch.export.export(module, inputs[name], dynamic_shapes=shapes[name], strict=False)
    source.reset_cache()
    return out
