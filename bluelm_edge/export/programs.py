"""Exportable programs: one small `nn.Module` per contract method, all over the same `BlueLM`.

Every wrapper holds the model under the same attribute, so the KV-cache buffers have the same
names in each exported method and `MemoryPlanningPass(share_mutable_buffers=True)` gives them one
allocation (prefill, decode and `forward` then see one cache). `export_methods` runs
`torch.export` per method with the dynamic shapes of the runner convention (see
`../shared/EXECUTORCH-NOTES.md`): fixed tile batch for vision, dynamic L for the rest.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from bluelm_edge.errors import UsageError
from bluelm_edge.export import contract
from bluelm_edge.model.vlm import BlueLM


class VisionEncoder(nn.Module):
    def __init__(self, model: BlueLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # [T, 3, S, S] -> [1, T*N, D]
        return self.model.vision_encoder(pixels)


class TokenEmbedding(nn.Module):
    def __init__(self, model: BlueLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # [1, L] -> [1, L, D]
        return self.model.token_embedding(ids)


class TextDecoder(nn.Module):
    def __init__(self, model: BlueLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:  # -> [1, V]
        return self.model.text_decoder(embeds, positions)


class Forward(nn.Module):
    """`forward(tokens, positions)` for TextLLMRunner: embedding then decoder, same KV buffers."""

    def __init__(self, model: BlueLM) -> None:
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


def example_inputs(model: BlueLM, prefill_chunk: int, vision_batch: int) -> dict[str, tuple]:
    """Example inputs per method (a dynamic L is traced at 2 so it stays symbolic; static chunk 1 at 1)."""
    cfg = model.cfg
    s, d = cfg.vision.image_size, cfg.decoder.dim
    n = 2 if prefill_chunk > 1 else 1
    ids = torch.tensor([[cfg.tokens.bos, cfg.tokens.human][:n]], dtype=torch.long)
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


def wrappers(model: BlueLM) -> dict[str, nn.Module]:
    return {
        contract.VISION_ENCODER: VisionEncoder(model),
        contract.TOKEN_EMBEDDING: TokenEmbedding(model),
        contract.TEXT_DECODER: TextDecoder(model),
        contract.FORWARD: Forward(model),
    }


def export_methods(
    model: BlueLM,
    prefill_chunk: int = contract.DEFAULT_PREFILL_CHUNK,
    vision_batch: int = contract.DEFAULT_VISION_BATCH,
    modules: dict[str, nn.Module] | None = None,
) -> dict[str, ExportedProgram]:
    """`torch.export` each contract method (under no_grad, cache zeroed) -> {name: program}.

    `modules` replaces the wrappers (e.g. vendor-quantized GraphModules of the same methods).
    """
    prefill_chunk = min(prefill_chunk, model.cfg.decoder.max_seq_len)
    inputs = example_inputs(model, prefill_chunk, vision_batch)
    shapes = dynamic_shapes(prefill_chunk)
    modules = modules or wrappers(model)
    out = {}
    with torch.no_grad():
        for name, module in modules.items():
            model.reset_cache()
            out[name] = torch.export.export(module, inputs[name], dynamic_shapes=shapes[name], strict=False)
    model.reset_cache()
    return out


# ---- the lowering-ready archive (program.pt2) ------------------------------------------------
def save_programs(path, programs: dict[str, ExportedProgram], metadata: dict, info: dict) -> None:
    """One zip: `<method>.pt2` (`torch.export.save`) per method + `metadata.json` (constants, soc, ...)."""
    import io
    import json
    import zipfile

    from bluelm_edge.io import atomic_path

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, program in programs.items():
            buf = io.BytesIO()
            torch.export.save(program, buf)
            zf.writestr(f"{name}.pt2", buf.getvalue())
        zf.writestr("metadata.json", json.dumps({"constants": metadata, **info}, indent=2))


def load_programs(path) -> tuple[dict[str, ExportedProgram], dict]:
    """(programs, {"constants": ..., ...}) from a `save_programs` archive."""
    import io
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = json.loads(zf.read("metadata.json"))
        programs = {n[:-4]: torch.export.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".pt2")}
    return programs, info
