"""The vendor quantizers (QnnQuantizer, NeuropilotQuantizer) on the static NPU program.

`quantize_npu(model, recipe, calibration, soc=..., chunk=...)` exports each static method
(`graphs.static.npu_modules`), prepares it with the recipe's quantizer (`quant.pt2e.make_quantizer`:
sub-model strategies, sensitive layers, the mixed-precision fallback, the 8-bit KV annotation),
calibrates the prepared graphs by running the host NPU runner over them (so `prefill` sees padded
chunks and `decode` single tokens, each against a real cache, exactly the I/O the phone feeds),
and converts. The result is {method: converted GraphModule}; `graphs.static.export_npu` exports
them into the lowering-ready program, and `NpuDecoder(result, meta)` runs them for quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bluelm_edge.export import contract
from bluelm_edge.export.npu_host import NpuDecoder
from bluelm_edge.graphs.static import npu_inputs, npu_modules
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
            gm = torch.export.export(module, npu_inputs(cfg, name, chunk, vision_batch), strict=False).module()
            prepared[name] = prepare_pt2e(gm, quantizer)
        calibrate(NpuDecoder(prepared, contract.npu_metadata(cfg, chunk, vision_batch)), calib)
        return {name: convert_pt2e(gm) for name, gm in prepared.items()}


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
