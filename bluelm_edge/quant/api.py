"""`quantize_for_backend`: what the export step calls to quantize before lowering.

    quantize_for_backend(model, config, recipe, calibration, *, soc=None,
                         prefill_chunk=128, vision_batch=1, methods=contract.METHODS)
        -> QuantizedMethods(modules={method name: module}, fallback=[...], recipe=Recipe)

- xnnpack: torchao `quantize_` on the eager `model` IN PLACE; `modules` are the export wrappers
  (`graphs.methods.wrappers`) over the XNNPACK graph form of the quantized model.
- qnn / mediatek: each contract method's wrapper is exported with the runner's dynamic shapes,
  prepared with the vendor quantizer, calibrated with the captured inputs (text_decoder and
  forward in chunks of `prefill_chunk` at their real positions; vision in batches of
  `vision_batch` tiles) and converted; `modules` are those converted GraphModules.

Either way, pass `modules` to `graphs.methods.export_methods(model, ..., modules=modules)`.
`fallback` lists the decoder linears the mixed-precision recovery kept at higher precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bluelm_edge.model.config import BlueLMConfig
from bluelm_edge.quant.capture import Calibration
from bluelm_edge.quant.recipes import Recipe, get_recipe

# which sub-model decides a single-precision quantizer's graph precision (MediaTek)
METHOD_PART = {"vision_encoder": "vision", "token_embedding": "embeddings"}


@dataclass
class QuantizedMethods:
    modules: dict[str, nn.Module]
    recipe: Recipe
    fallback: list[str] = field(default_factory=list)


def quantize_for_backend(
    model: nn.Module,
    config: BlueLMConfig,
    recipe: Recipe | str,
    calibration: Calibration | None,
    *,
    soc: str | None = None,
    prefill_chunk: int | None = None,
    vision_batch: int | None = None,
    methods: Sequence[str] | None = None,
    fallback: Sequence[str] | None = None,
) -> QuantizedMethods:
    """Quantize every contract method of `model` per `recipe` (see the module docstring)."""
    from bluelm_edge import contract
    from bluelm_edge.graphs import methods as graph
    from bluelm_edge.quant.recovery import choose_fallback

    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    chunk = min(prefill_chunk or contract.DEFAULT_PREFILL_CHUNK, config.decoder.max_seq_len)
    vbatch = vision_batch or contract.DEFAULT_VISION_BATCH
    methods = list(methods or contract.METHODS)
    fallback = list(fallback) if fallback is not None else choose_fallback(model, recipe, calibration)
    wrappers = {k: v for k, v in graph.wrappers(model).items() if k in methods}
    if recipe.backend == "xnnpack":
        from bluelm_edge.graphs.forms import graph_source
        from bluelm_edge.quant.xnnpack import quantize_xnnpack_

        quantize_xnnpack_(model, recipe, fallback)
        return QuantizedMethods(graph.wrappers(graph_source("xnnpack", model), methods), recipe, fallback)
    if calibration is None:
        from bluelm_edge.errors import UsageError

        raise UsageError(f"recipe {recipe.name} needs calibration data; run bluelm-edge calibrate first")
    inputs = graph.example_inputs(model, chunk, vbatch)
    shapes = graph.dynamic_shapes(chunk)
    out = {}
    for name, module in wrappers.items():
        feed = calibration_feed(name, calibration, chunk, vbatch)
        out[name] = _quantize_method(model, module, inputs[name], shapes[name], recipe, feed, name, soc, fallback)
    model.reset_cache()
    return QuantizedMethods(out, recipe, fallback)


def _quantize_method(model, module, example, shapes, recipe, feed, name, soc, fallback) -> Any:
    from bluelm_edge.quant.pt2e import quantize_graph

    def calibrate(prepared: torch.fx.GraphModule) -> None:
        for args in feed:
            prepared(*args)

    model.reset_cache()
    return quantize_graph(module, example, recipe, calibrate, part=METHOD_PART.get(name, "decoder_linears"),
                          soc=soc, fallback=fallback, dynamic_shapes=shapes)


def calibration_feed(method: str, calib: Calibration, chunk: int, vision_batch: int) -> list[tuple]:
    """Argument tuples to run a method's prepared graph on, from the captured inputs."""
    if method == "vision_encoder":
        tiles = torch.cat(calib.pixels()) if calib.pixels() else None
        if tiles is None:
            return []
        pad = (-tiles.shape[0]) % vision_batch
        if pad:
            tiles = torch.cat([tiles, tiles[-1:].expand(pad, *tiles.shape[1:])])
        return [(tiles[i : i + vision_batch],) for i in range(0, tiles.shape[0], vision_batch)]
    if method == "token_embedding":
        return [(ids,) for ids, _ in calib.chunks("ids", chunk)]
    if method == "text_decoder":
        return calib.chunks("embeds", chunk)
    return calib.chunks("ids", chunk)  # forward(ids, positions)
