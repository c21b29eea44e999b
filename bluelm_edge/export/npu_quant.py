"""The vendor quantizers (QnnQuantizer, NeuropilotQuantizer) on the static NPU program.

`quantize_npu(model, recipe, calibration, soc=..., chunk=...)` exports each static method
(`graphs.static.npu_modules`), prepares it with the recipe's quantizer (`quant.pt2e.make_quantizer`:
sub-model strategies, sensitive layers, the mixed-precision fallback, the 8-bit KV annotation),
calibrates the prepared graphs by running the host NPU runner over them (so `prefill` sees padded
chunks and `decode` single tokens, each against a real cache, exactly the I/O the phone feeds),
gives the two steps' I/O tensors one range each (`quant_io.unify`: one cache, one mask encoding),
and converts (the decode graph then reads the prefill graph's equal weight tensors: one copy, as
upstream's weight sharing). The result is {method: converted GraphModule}; `graphs.static.export_npu` exports
them into the lowering-ready program, and `NpuDecoder(result, meta)` runs them for quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bluelm_edge import contract
from bluelm_edge.export import quant_io
from bluelm_edge.export.npu_host import NpuDecoder
from bluelm_edge.graphs.static import npu_inputs, npu_modules, strip_unused
from bluelm_edge.quant.capture import Calibration
from bluelm_edge.quant.recipes import Recipe, get_recipe

PART = {contract.VISION_ENCODER: "vision", contract.TOKEN_EMBEDDING: "embeddings"}
DECODE_TAIL = 8  # the last tokens of each calibration sample go through `decode`, one at a time


def quantize_npu(model: torch.nn.Module, recipe: Recipe | str, calib: Calibration, *, soc: str | None,
                 chunk: int, vision_batch: int = contract.DEFAULT_VISION_BATCH,
                 names: Sequence[str] | None = None, fallback: Sequence[str] | None = None) -> dict[str, Any]:
    """{method: converted GraphModule} of the static program (see the module docstring)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from bluelm_edge.quant.pt2e import make_quantizer
    from bluelm_edge.quant.recovery import choose_fallback

    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    fallback = list(fallback) if fallback is not None else choose_fallback(model, recipe, calib)
    cfg = model.cfg
    prepared = {}
    with torch.no_grad():
        for name, module in npu_modules(model, names).items():
            quantizer = make_quantizer(recipe, PART.get(name, "decoder_linears"), soc, fallback)
            ep = torch.export.export(module, npu_inputs(cfg, name, chunk, vision_batch), strict=False)
            gm = strip_unused(ep).module()  # nothing it does not read (a piecewise model's meta layers)
            prepared[name] = prepare_pt2e(gm, quantizer)
        fp32_io = quant_io.fp32_metadata(cfg.decoder.layers)
        calibrate(NpuDecoder(prepared, contract.npu_metadata(cfg, chunk, vision_batch, fp32_io)), calib)
        quant_io.unify([prepared[n] for n in contract.DECODER_STEPS if n in prepared])  # one encoding per I/O
        out = {name: drop_unread(convert_pt2e(gm)) for name, gm in prepared.items()}
        forget_prepared()
    if contract.PREFILL in out and contract.DECODE in out:  # one copy of the decoder's weights
        share_constants(out[contract.DECODE], out[contract.PREFILL])
    return out


def calibrate(runner: NpuDecoder, calib: Calibration) -> None:
    """Run every captured sample through the runner: tiles, ids, then the embeddings as prefill
    chunks followed by `DECODE_TAIL` decode steps (methods the runner lacks are skipped)."""
    has = runner.methods.__contains__
    for sample in calib.samples:
        if sample["pixels"] is not None and has(contract.VISION_ENCODER):
            runner.vision_encoder(sample["pixels"])
        if has(contract.TOKEN_EMBEDDING):
            runner.token_embedding(sample["ids"])
        if not has(contract.PREFILL):
            continue
        embeds = sample["embeds"][:, : runner.cache_len]
        runner.reset()
        tail = min(DECODE_TAIL, embeds.shape[1] // 4) if has(contract.DECODE) else 0
        head = embeds.shape[1] - tail
        runner.text_decoder(embeds[:, :head], torch.arange(head))
        for i in range(head, embeds.shape[1]):
            runner.text_decoder(embeds[:, i : i + 1], torch.tensor([i]))
    runner.reset()


def _tensor_attrs(gm: torch.fx.GraphModule) -> dict[str, torch.Tensor]:
    return {n.target: _get(gm, n.target) for n in gm.graph.nodes if n.op == "get_attr"
            and isinstance(_get(gm, n.target), torch.Tensor)}


def _get(gm: torch.nn.Module, target: str) -> Any:
    owner, _, leaf = target.rpartition(".")
    return getattr(gm.get_submodule(owner) if owner else gm, leaf)


def drop_unread(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Remove the parameters and buffers no node reads (a converted graph keeps the fp32 weights it
    replaced by quantized constants), so releasing the eager module frees them."""
    read = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name in [n for n, _ in (*gm.named_parameters(), *gm.named_buffers()) if n not in read]:
        owner, _, leaf = name.rpartition(".")
        delattr(gm.get_submodule(owner) if owner else gm, leaf)
    return gm


def share_constants(gm: torch.fx.GraphModule, like: torch.fx.GraphModule) -> int:
    """Point `gm`'s tensor constants at `like`'s equal tensors (same shape, dtype and values);
    returns how many now share. The two graphs of one piece quantize the same weights identically."""
    pool: dict[tuple, list[torch.Tensor]] = {}
    for t in _tensor_attrs(like).values():
        pool.setdefault((tuple(t.shape), t.dtype), []).append(t)
    shared = 0
    for target, t in _tensor_attrs(gm).items():
        match = next((c for c in pool.get((tuple(t.shape), t.dtype), []) if c is t or torch.equal(c, t)), None)
        if match is not None and match is not t:
            owner, _, leaf = target.rpartition(".")
            mod = gm.get_submodule(owner) if owner else gm
            if leaf in mod._buffers:
                mod._buffers[leaf] = match
            elif leaf in mod._parameters:
                mod._parameters[leaf] = torch.nn.Parameter(match, requires_grad=False)
            else:
                setattr(mod, leaf, match)
            shared += 1
    return shared


def forget_prepared() -> None:
    """Clear the device checks' caches: torchao's and torch.ao's `lru_cache`d
    `assert_and_get_unique_device` are keyed by the module, so they keep every prepared graph (and
    the fp32 weights it reads) alive after conversion; a piecewise export would hold them all."""
    import torch.ao.quantization.fx.utils as ao_fx
    import torchao.utils

    for fn in (torchao.utils._assert_and_get_unique_device, ao_fx.assert_and_get_unique_device):
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()
