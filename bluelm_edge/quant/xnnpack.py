"""XNNPACK recipes: torchao `quantize_` on the eager `BlueLM`, in place, per sub-model.

Schemes (as executorch's own `extension/llm/export/quantize.py` builds them): "8da4w" / "8da8w" =
`Int8DynamicActivationIntxWeightConfig` (int4 / int8 weights), "4w" / "8w" =
`IntxWeightOnlyConfig` (linears or embeddings), granularity per-group (`group_size`, 32 for
int4: XNNPACK rejects 16) or per-channel (`PerAxis(0)`). The vision patch-embedding conv and the
norms stay in float (XNNPACK runs them in fp32). The KV cache stays float.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from bluelm_edge.errors import BlueLMError
from bluelm_edge.quant.recipes import Recipe

_PARTS = {
    "vision": r"^vision\.",
    "adapter": r"^adapter\.",
    "decoder_linears": r"^decoder\.layers\.\d+\.(attn|mlp)\.[a-z_]+$",
    "output_head": r"^decoder\.head$",
    "embeddings": r"^decoder\.embed$",
}


def torchao_config(part: dict[str, Any]) -> Any:
    """The torchao config of one recipe part (None for fp32)."""
    from torchao.quantization import (
        Int8DynamicActivationIntxWeightConfig,
        IntxWeightOnlyConfig,
        PerAxis,
        PerGroup,
    )

    scheme = part["scheme"]
    if scheme in ("fp32", "8bit", "16bit"):
        return None
    gran = PerGroup(part["group_size"]) if part.get("granularity") == "per_group" else PerAxis(0)
    bits = torch.int4 if scheme in ("8da4w", "4w") else torch.int8
    if scheme.startswith("8da"):
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=bits, weight_granularity=gran)
    return IntxWeightOnlyConfig(weight_dtype=bits, granularity=gran)


def _fits(module: nn.Module, part: dict[str, Any], fqn: str) -> bool:
    size = part.get("group_size") if part.get("granularity") == "per_group" else None
    cols = module.weight.shape[-1]
    if size and cols % size:
        raise BlueLMError(f"{fqn}: {cols} columns are not a multiple of group_size {size}; "
                          "edit the recipe's group_size")
    return True


def quantize_xnnpack_(
    model: nn.Module, recipe: Recipe, fallback: Sequence[str] = (), only: Sequence[str] | None = None
) -> nn.Module:
    """Quantize `model` (a BlueLM) in place with torchao per the recipe; `fallback` layers use the
    recovery scheme. `only` limits it to modules under these names (one piece of a model being
    materialised piece by piece, see `export.scale`). Returns the model."""
    from torchao.quantization import quantize_

    if recipe.backend != "xnnpack":
        raise BlueLMError(f"recipe {recipe.name!r} is for {recipe.backend}, not xnnpack")
    inside = _within(only)
    high = set(fallback) | _sensitive(model, recipe)
    if high:
        hp = {"scheme": recipe.recovery.get("scheme", "8da8w"), "granularity": "per_channel"}
        quantize_(model, torchao_config(hp),
                  filter_fn=lambda m, fqn: fqn in high and isinstance(m, nn.Linear) and inside(fqn))
    for name, pattern in _PARTS.items():
        part = recipe.part(name)
        config = torchao_config(part)
        if config is None:
            continue
        kind = nn.Embedding if name == "embeddings" else nn.Linear

        def keep(m, fqn, pattern=pattern, kind=kind, part=part):
            return (type(m) is kind and fqn not in high and inside(fqn) and bool(re.search(pattern, fqn))
                    and _fits(m, part, fqn))

        quantize_(model, config, filter_fn=keep)
    return model


def _sensitive(model: nn.Module, recipe: Recipe) -> set[str]:
    pats = [re.compile(p) for p in (recipe.sensitive_layers or {}).get("patterns", [])]
    return {n for n, m in model.named_modules() if isinstance(m, nn.Linear) and any(p.search(n) for p in pats)}


def _within(only: Sequence[str] | None):
    """fqn -> whether it is one of the `only` modules or inside one (everything when None)."""
    if only is None:
        return lambda fqn: True
    names = tuple(only)
    return lambda fqn: any(fqn == n or fqn.startswith(n + ".") for n in names)
