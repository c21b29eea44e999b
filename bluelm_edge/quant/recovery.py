"""Accuracy recovery: automatic mixed-precision fallback from layer-by-layer sensitivity.

For each decoder linear, only that layer's weight is fake-quantized the way the recipe would
(symmetric, its bit width and granularity: per-channel, per-group or per-block); the fp32 model
then runs on the captured calibration inputs and the mean KL divergence of its next-token
distributions from the fp32 ones is that layer's sensitivity. The `max_layers` most sensitive
layers are kept at the recipe's `recovery.scheme` (e.g. 16a8w instead of 16a4w). The quality
report measures the loss with and without the fallback and reports the recovered fraction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bluelm_edge.quant.capture import Calibration
from bluelm_edge.quant.recipes import Recipe

_BITS = {"8da4w": 4, "4w": 4, "16a4w": 4, "8a4w": 4, "a16w4": 4, "a8w4": 4}


def weight_bits(scheme: str) -> int:
    return _BITS.get(scheme, 8)


def fake_quant_weight(w: torch.Tensor, bits: int, group: int | None) -> torch.Tensor:
    """Symmetric round-to-nearest of w [out, in] with one scale per row (group None) or per group."""
    qmax = 2 ** (bits - 1) - 1
    rows = w.reshape(-1, group) if group else w
    scale = rows.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / qmax
    q = torch.clamp(torch.round(rows / scale), -qmax - 1, qmax) * scale
    return q.reshape(w.shape)


def _group(part: dict) -> int | None:
    if part.get("granularity") not in ("per_group", "per_block"):
        return None
    return part.get("group_size") or part.get("block_size")


def decoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    return {n: m for n, m in model.named_modules() if n.startswith("decoder.layers.") and isinstance(m, nn.Linear)}


@torch.no_grad()
def _logprobs(model: nn.Module, calib: Calibration, max_samples: int) -> list[torch.Tensor]:
    return [F.log_softmax(model.decoder.forward_full(s["embeds"]).float(), -1) for s in calib.samples[:max_samples]]


def _kl(ref: list[torch.Tensor], out: list[torch.Tensor]) -> float:
    """Mean over tokens of KL(ref || out), both log-probabilities."""
    total = sum(float(F.kl_div(o, r, log_target=True, reduction="sum")) for r, o in zip(ref, out, strict=True))
    return total / sum(r.shape[0] * r.shape[1] for r in ref)


@torch.no_grad()
def layer_sensitivity(model: nn.Module, recipe: Recipe, calib: Calibration, max_samples: int = 16) -> dict[str, float]:
    """KL from fp32 when only that decoder linear is quantized as the recipe says, by layer name."""
    part = recipe.part("decoder_linears")
    bits, group = weight_bits(part["scheme"]), _group(part)
    ref = _logprobs(model, calib, max_samples)
    out = {}
    for name, lin in decoder_linears(model).items():
        original = lin.weight.data
        lin.weight.data = fake_quant_weight(original, bits, group)
        out[name] = _kl(ref, _logprobs(model, calib, max_samples))
        lin.weight.data = original
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def choose_fallback(model: nn.Module, recipe: Recipe, calib: Calibration | None) -> list[str]:
    """Names of the decoder linears the recipe's mixed-precision recovery keeps at higher precision."""
    rec = recipe.recovery or {}
    if rec.get("method") != "mixed_precision" or calib is None or not rec.get("max_layers"):
        return []
    ranked = layer_sensitivity(model, recipe, calib)
    return list(ranked)[: int(rec["max_layers"])]
