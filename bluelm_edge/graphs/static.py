"""The static NPU graph form (QNN / MediaTek): fixed-shape prefill and decode steps, KV cache as I/O.

One `StaticStep(model)` module is exported twice, at `C = prefill_chunk` tokens (`prefill`) and at
`C = 1` (`decode`), over the SAME parameter tensors as the eager `BlueLM` (so pt2e sees the eager
module paths, `decoder.layers.N.attn.q`, and both graphs carry identical weights). As upstream's
static Llama (`examples/qualcomm/oss_scripts/llama/model/static_llama.py`) and MediaTek's chunked
Llama, the graph owns no state:

    inputs   embeds [1, C, D], rope_cos [C, hd], rope_sin [C, hd], mask [1, C, S + C],
             k_cache_0 .. k_cache_{n-1} [1, KV, S, hd], v_cache_0 .. v_cache_{n-1} [1, KV, S, hd]
    outputs  logits [1, C, V], k_new_0 .. k_new_{n-1} [1, KV, C, hd], v_new_0 .. [1, KV, C, hd]

Attention runs over `cat(cache, new)` (S + C keys) under the additive mask the runner builds
(0 where visible, `MASK_VALUE` where not: smart mask); only the C new keys/values come back and
the runner writes them into its cache (`export/npu_host.py`). The RoPE rows are inputs (the
runner slices them from `rope_tables`), so the graph has no gather and no integer arithmetic.
The whole contract (names, order, metadata) is `bluelm_edge/contract.py`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.export import ExportedProgram

from bluelm_edge import contract
from bluelm_edge.model.decoder import MASK_VALUE, _expand_kv, rope_tables

__all__ = ["MASK_VALUE", "StaticStep", "export_npu", "layer_step", "npu_modules", "rope_tables", "step_mask"]


def _attend(attn: nn.Module, x, cos, sin, mask, k_cache, v_cache):
    """One layer's attention over cache + new. x: [1, C, D] -> (out [1, C, D], k, v [1, KV, C, hd])."""
    q, k, v = attn._qkv(x, cos, sin)  # q: [1, H, C, hd]; k, v: [1, KV, C, hd]
    groups = attn.heads // attn.kv_heads
    keys = _expand_kv(torch.cat([k_cache, k], dim=2), groups)  # [1, H, S + C, hd]
    values = _expand_kv(torch.cat([v_cache, v], dim=2), groups)
    scores = (q @ keys.transpose(-1, -2)) * attn.head_dim**-0.5 + mask  # [1, H, C, S + C]
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return attn._merge(probs @ values), k, v


class StaticStep(nn.Module):
    """One static decoder step of the eager model's decoder (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.cfg = model.cfg
        self.decoder = model.decoder  # same attribute path as in BlueLM: recipes' patterns match

    def forward(self, embeds, rope_cos, rope_sin, mask, k_caches: list[torch.Tensor],
                v_caches: list[torch.Tensor]):
        x = embeds  # [1, C, D]
        new_k, new_v = [], []
        for i, layer in enumerate(self.decoder.layers):
            x, k, v = layer_step(layer, x, rope_cos, rope_sin, mask, k_caches[i], v_caches[i])
            new_k.append(k)
            new_v.append(v)
        return self.decoder.head(self.decoder.norm(x)), new_k, new_v


def layer_step(layer: nn.Module, x, cos, sin, mask, k_cache, v_cache):
    """One decoder layer of the static step: x [1, C, D] -> (x, k_new, v_new [1, KV, C, hd])."""
    h, k, v = _attend(layer.attn, layer.attn_norm(x), cos, sin, mask, k_cache, v_cache)
    x = x + h
    return x + layer.mlp(layer.mlp_norm(x)), k, v


def npu_modules(model: nn.Module, names=None) -> dict[str, nn.Module]:
    """{method: module} of the static NPU program over `model` (`contract.NPU_METHODS`, or `names`)."""
    from bluelm_edge.graphs.methods import TokenEmbedding, VisionEncoder

    kinds = {contract.VISION_ENCODER: VisionEncoder, contract.TOKEN_EMBEDDING: TokenEmbedding,
             contract.PREFILL: StaticStep, contract.DECODE: StaticStep}
    return {name: kinds[name](model) for name in names or contract.NPU_METHODS}


def npu_inputs(cfg, name: str, chunk: int, vision_batch: int) -> tuple:
    """Example inputs of one static NPU method (every shape fixed)."""
    if name == contract.VISION_ENCODER:
        s = cfg.vision.image_size
        return (torch.zeros(vision_batch, 3, s, s),)
    if name == contract.TOKEN_EMBEDDING:
        return (torch.full((1, chunk), cfg.tokens.pad, dtype=torch.long),)
    return example_inputs(cfg, chunk if name == contract.PREFILL else 1, cfg.decoder.max_seq_len)


def export_npu(modules: dict[str, nn.Module], cfg, chunk: int, vision_batch: int) -> dict[str, ExportedProgram]:
    """`torch.export` every static method (fp32 modules or their quantized GraphModules), unused
    parameters and buffers stripped (the eager cache buffers, fp32 weights a quantized graph dropped)."""
    out = {}
    with torch.no_grad():
        for name, module in modules.items():
            ep = torch.export.export(module, npu_inputs(cfg, name, chunk, vision_batch), strict=False)
            out[name] = strip_unused(ep)
    return out


def example_inputs(cfg, chunk: int, cache_len: int) -> tuple:
    """Zeros of the step's input shapes at `chunk` tokens (mask all visible: slot values do not matter)."""
    d = cfg.decoder
    hd = int(d.head_dim)
    cache = lambda: [torch.zeros(1, d.kv_heads, cache_len, hd) for _ in range(d.layers)]
    return (torch.zeros(1, chunk, d.dim), torch.ones(chunk, hd), torch.zeros(chunk, hd),
            torch.zeros(1, chunk, cache_len + chunk), cache(), cache())


def step_mask(start: int, valid: int, chunk: int, cache_len: int) -> torch.Tensor:
    """Smart mask [1, chunk, cache_len + chunk]: row i sees cache slots [0, start) and new rows <= i.

    Padding rows (i >= valid) see the same as the last valid row; their outputs are discarded."""
    mask = torch.full((chunk, cache_len + chunk), MASK_VALUE)
    mask[:, :start] = 0.0
    rows = torch.arange(chunk)
    seen = torch.minimum(rows, torch.tensor(max(valid - 1, 0)))
    new = rows[None, :] <= seen[:, None]  # [chunk, chunk]
    mask[:, cache_len:] = torch.where(new, 0.0, MASK_VALUE)
    return mask[None]


def strip_unused(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Drop parameters, buffers and constants no node reads (e.g. the eager cache buffers, or the fp32
    weights a quantized graph replaced by constants) from the graph, signature and state, in place."""
    from torch.export.exported_program import InputKind

    kinds = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    unused = [s for s in ep.graph_signature.input_specs
              if s.kind in kinds and not nodes[s.arg.name].users]
    for spec in unused:
        ep.graph_signature.input_specs.remove(spec)
        ep._state_dict.pop(spec.target, None)
        ep.constants.pop(spec.target, None)
        ep.graph.erase_node(nodes[spec.arg.name])
    ep.graph_module.recompile()
    return ep
