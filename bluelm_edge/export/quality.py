"""How closely an exported program follows fp32: last-position logits on calibration prefixes
(top-1 agreement, mean cosine, max abs difference), measured on the lowered `.pte` where there is
one (and against its own quantized eager graph), else on the quantized graphs; the NPU programs
through the host NPU runner. What `export` reports as the bundle's `quality`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bluelm_edge import contract

QUALITY_SAMPLES = 8
QUALITY_TOKENS = 48  # prompt prefix compared at its last position


@torch.no_grad()
def _last_logits(run: Any, embeds: torch.Tensor, chunk: int) -> torch.Tensor:
    """Feed embeds [1, L, D] at positions 0.. in chunks; the last position's logits [V]."""
    for lo in range(0, embeds.shape[1], chunk):
        piece = embeds[:, lo : lo + chunk].contiguous()
        logits = run(piece, torch.arange(lo, lo + piece.shape[1]))
    return logits.reshape(-1).float()


@torch.no_grad()
def fp32_reference(model: Any, calib: Any, chunk: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(embeds [1, L, D], fp32 logits [V])] for the first QUALITY_SAMPLES samples (L <= QUALITY_TOKENS)."""
    out = []
    for sample in calib.samples[:QUALITY_SAMPLES]:
        embeds = sample["embeds"][:, :QUALITY_TOKENS]
        model.reset_cache()
        out.append((embeds, _last_logits(model.text_decoder, embeds, chunk)))
    model.reset_cache()
    return out


@torch.no_grad()
def measure_quality(folder: Path, reference: list, modules: Any, chunk: int) -> dict[str, Any]:
    """Top-1 agreement and mean cosine of the quantized program's last logits vs fp32; with a
    lowered .pte, also how closely it follows its own quantized eager graph (`vs_quantized_eager`)."""
    eager = modules[contract.TEXT_DECODER] if modules else None
    if (folder / contract.MODEL_PTE).is_file():
        from bluelm_edge.export.host import PteDecoder

        run, source = PteDecoder(folder / contract.MODEL_PTE).text_decoder, "lowered .pte"
    else:
        run, source, eager = eager, "quantized eager graph", None
    got = [_last_logits(run, embeds, chunk) for embeds, _ in reference]
    out = {"measured_on": source, "samples": len(reference), "prefix_tokens": QUALITY_TOKENS,
           **_agreement(got, [ref for _, ref in reference])}
    if eager is not None:
        out["vs_quantized_eager"] = _agreement(got, [_last_logits(eager, e, chunk) for e, _ in reference])
    return out


def _agreement(got: list[torch.Tensor], ref: list[torch.Tensor]) -> dict[str, Any]:
    """Top-1 agreement, mean cosine and max abs difference of paired logits [V]."""
    if not ref:
        return {"top1_agreement": None, "mean_cosine": None, "max_abs_diff": None}
    pairs = list(zip(got, ref, strict=True))
    cos = [float(torch.nn.functional.cosine_similarity(g, r, dim=0)) for g, r in pairs]
    return {
        "top1_agreement": sum(int(g.argmax() == r.argmax()) for g, r in pairs) / len(pairs),
        "mean_cosine": sum(cos) / len(cos),
        "max_abs_diff": max(float((g - r).abs().max()) for g, r in pairs),
    }


@torch.no_grad()
def npu_quality(modules: dict, meta: dict, reference: list) -> dict[str, Any]:
    """Last-position logits of the quantized static graphs, driven by the host NPU runner, vs fp32."""
    from bluelm_edge.export.npu_host import NpuDecoder

    runner, got = NpuDecoder.folded(modules, meta), []
    for embeds, _ in reference:
        runner.reset()
        got.append(runner.text_decoder(embeds, torch.arange(embeds.shape[1])).reshape(-1).float())
    return {"measured_on": "quantized static graphs (host NPU runner)", "samples": len(reference),
            "prefix_tokens": QUALITY_TOKENS, **_agreement(got, [ref for _, ref in reference])}
