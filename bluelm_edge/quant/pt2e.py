"""Vendor quantizers from recipes: QnnQuantizer and NeuropilotQuantizer, and the pt2e flow.

Owns the mapping from a recipe's sub-models to graph nodes (by the deepest `nn_module_stack` path,
so any wrapper that holds the model under some attribute works) and
`quantize_graph(module, example_inputs, recipe, calibrate)`:
`torch.export.export(...).module()` -> `prepare_pt2e(gm, quantizer)` -> calibrate -> `convert_pt2e`.

- Qualcomm: a `QuantRecipe` with one strategy per sub-model (weighted ops at the recipe's
  granularity: per-channel or LPBQ per-block), `sensitive_layers` (+ any mixed-precision fallback)
  at a higher priority, activations of everything else at the decoder's bit width, and an 8-bit
  annotation of the values written into the KV cache when `kv_cache.scheme` is "8bit".
- MediaTek: `NeuropilotQuantizer` has one precision per graph; the graph's precision comes from the
  sub-model that owns most of its weights, and the weight specs of other sub-models' and
  sensitive layers' nodes are replaced afterwards (activations stay at the graph's width).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from bluelm_edge.errors import BlueLMError
from bluelm_edge.quant import vendor
from bluelm_edge.quant.recipes import Recipe

SUBMODEL_PATTERNS = {
    "vision": r"(^|\.)vision(\.|$)",
    "adapter": r"(^|\.)adapter(\.|$)",
    "embeddings": r"(^|\.)decoder\.embed(_norm)?$",
    "output_head": r"(^|\.)decoder\.head$",
    "decoder_linears": r"(^|\.)decoder\.layers\.\d+\.(attn|mlp)\.[a-z_]+$",
}
WEIGHT_OPS = (torch.ops.aten.linear.default, torch.ops.aten.conv2d.default, torch.ops.aten.embedding.default)
KV_WRITE_OPS = (torch.ops.aten.index_copy_.default, torch.ops.aten.index_copy.default)
_QNN_DTYPES = {"16a4w": "use_16a4w", "16a8w": "use_16a8w", "16a16w": "use_16a16w", "8a8w": "use_8a8w",
               "8a4w": "use_8a4w"}


def module_path(node: torch.fx.Node) -> str:
    """Deepest module path of a node ('' for graph-level ops)."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def node_submodel(node: torch.fx.Node) -> str | None:
    path = module_path(node)
    for name, pattern in SUBMODEL_PATTERNS.items():
        if re.search(pattern, path):
            return name
    return None


# ---- Qualcomm --------------------------------------------------------------------------------
def _qnn_dtype(scheme: str) -> Any:
    q = vendor.qnn_quantizer_module()
    return getattr(q.QuantDtype, _QNN_DTYPES[scheme])


def _qnn_strategy(patterns: Iterable[str], part: dict[str, Any], priority: int) -> Any:
    """A QuantRecipe strategy: weighted ops whose deepest module path matches `patterns`."""
    R, q = vendor.qnn_recipe_module(), vendor.qnn_quantizer_module()
    patterns = [re.compile(p) for p in patterns]
    gran = {"per_tensor": R.QuantGranularity.PER_TENSOR, "per_channel": R.QuantGranularity.PER_CHANNEL,
            "per_block": R.QuantGranularity.PER_BLOCK}[part.get("granularity", "per_channel")]
    dtype = _qnn_dtype(part["scheme"])
    if gran == R.QuantGranularity.PER_BLOCK:
        dtype = q.QuantDtype.use_16a4w_block
    extra = {"block_size": (1, int(part["block_size"]))} if "block_size" in part else {}

    class _ByWeightedModule(R.QuantizationStrategy):
        def _matches(self, node: torch.fx.Node) -> bool:
            return node.target in WEIGHT_OPS and any(p.search(module_path(node)) for p in patterns)

    from torchao.quantization.pt2e import MinMaxObserver

    strategy = _ByWeightedModule(dtype, False, gran, MinMaxObserver, False, extra, "", priority)
    strategy.quant_config = q.ModuleQConfig(dtype, is_conv_per_channel=True, is_linear_per_channel=True,
                                            is_embedding_per_channel=True, act_observer=MinMaxObserver)
    return strategy


def qnn_quantizer(recipe: Recipe, soc: str | None = None, fallback: Sequence[str] = ()) -> Any:
    """A `QnnQuantizer` for `recipe` on `soc` (block quantization only where its HTP allows)."""
    q, R = vendor.qnn_quantizer_module(), vendor.qnn_recipe_module()
    from torchao.quantization.pt2e import MinMaxObserver

    soc = soc or recipe.default_soc or "SM8650"
    recipe = recipe.for_soc(vendor.qnn_htp_arch(soc))
    base = recipe.part("decoder_linears")["scheme"]
    qr = R.QuantRecipe(_qnn_dtype(base), False, act_observer=MinMaxObserver,
                       granularity=R.QuantGranularity.PER_TENSOR)
    for name, pattern in SUBMODEL_PATTERNS.items():
        part = recipe.part(name)
        if part["scheme"] != "fp32":
            qr._strategies.append(_qnn_strategy([pattern], part, priority=2))
    high = high_precision(recipe, fallback)
    if high:
        qr._strategies.append(_qnn_strategy(high[1], high[0], priority=3))
    kv = recipe.part("kv_cache")["scheme"]
    if kv == "8bit":
        qr.custom_quant_annotations.extend([annotate_kv_8bit, annotate_static_kv_8bit])
    elif kv == "16bit":  # the static cache still leaves the graph at its own (16-bit) encoding
        qr.custom_quant_annotations.append(functools.partial(annotate_static_kv, bits=16))
    quantizer = q.QnnQuantizer(soc_model=vendor.qnn_chipset(soc), strict=False)
    quantizer.set_recipe(qr)
    return quantizer


def annotate_kv_8bit(gm: torch.fx.GraphModule) -> None:
    """Quantize the keys/values written into the static cache (and the cache read back) to 8 bits."""
    from torchao.quantization.pt2e import MinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec, SharedQuantizationSpec
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    spec = QuantizationSpec(dtype=torch.uint8, quant_min=0, quant_max=255, qscheme=torch.per_tensor_affine,
                            observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-20))
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in KV_WRITE_OPS:
            value = node.args[3]
            node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
                input_qspec_map={value: spec}, output_qspec=SharedQuantizationSpec((value, node)), _annotated=True
            )


def annotate_static_kv_8bit(gm: torch.fx.GraphModule) -> None:
    """`annotate_static_kv` at 8 bits (the recipes' "8bit" KV cache)."""
    annotate_static_kv(gm, bits=8)


def annotate_static_kv(gm: torch.fx.GraphModule, bits: int) -> None:
    """The static NPU graphs (`graphs.static`): the cache inputs, the new keys/values joined to them
    (`cat(cache, new)`) and those new entries as graph outputs share one spec, so every cached
    entry is read at `bits` and the runner stores the returned bytes as they are (quantized I/O)."""
    from torchao.quantization.pt2e import MinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec, SharedQuantizationSpec
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.cat.default:
            continue
        parts = node.args[0]
        if len(parts) != 2 or parts[0].op != "placeholder":
            continue
        cache, new = parts
        spec = QuantizationSpec(dtype=torch.uint8 if bits == 8 else torch.int32, quant_min=0, quant_max=2**bits - 1,
                                qscheme=torch.per_tensor_affine,
                                observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-20))
        producer = new.meta.get(Q_ANNOTATION_KEY)
        if producer is not None:  # the new entries leave the graph at the cache's encoding
            producer.output_qspec, shared = spec, SharedQuantizationSpec(new)
            inputs = {cache: shared, new: shared}
        else:
            shared = SharedQuantizationSpec((cache, node))
            inputs = {cache: spec, new: shared}
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map=inputs, output_qspec=shared, _annotated=True)


def high_precision(recipe: Recipe, fallback: Sequence[str]) -> tuple[dict, list[str]] | None:
    """(part, patterns) for layers kept at higher precision: recipe's sensitive + fallback layers."""
    patterns = list((recipe.sensitive_layers or {}).get("patterns", []))
    part = dict(recipe.sensitive_layers or {})
    if fallback:
        rec = recipe.recovery
        part = {"scheme": rec.get("scheme", part.get("scheme")), "granularity": rec.get("granularity", "per_channel")}
        patterns += [rf"(^|\.){re.escape(name)}$" for name in fallback]
    return (part, patterns) if patterns else None


# ---- MediaTek --------------------------------------------------------------------------------
def mediatek_quantizer(recipe: Recipe, graph_part: str, fallback: Sequence[str] = ()) -> Any:
    """A NeuropilotQuantizer at the precision of `graph_part`; other parts' weight specs overridden."""
    mtk = vendor.mediatek_quantizer_module()
    qconfig = importlib_qconfig()
    precision = lambda scheme: getattr(mtk.Precision, scheme.upper())
    weight_spec = lambda scheme: qconfig.get_quant_config(precision(scheme), True, False).weight
    overrides: list[tuple[Callable[[torch.fx.Node], bool], Any]] = []
    high = high_precision(recipe, fallback)
    if high:
        pats = [re.compile(p) for p in high[1]]
        overrides.append((lambda n: any(p.search(module_path(n)) for p in pats), weight_spec(high[0]["scheme"])))
    for name in SUBMODEL_PATTERNS:
        scheme = recipe.part(name)["scheme"]
        if scheme != "fp32":
            overrides.append((lambda n, name=name: node_submodel(n) == name, weight_spec(scheme)))

    class _RecipeNeuropilotQuantizer(mtk.NeuropilotQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            super().annotate(model)
            _override_weights(model, overrides)
            return model

    quantizer = _RecipeNeuropilotQuantizer()
    quantizer.setup_precision(precision(recipe.part(graph_part)["scheme"]))
    return quantizer


def importlib_qconfig() -> Any:
    vendor.mediatek_quantizer_module()
    import importlib

    return importlib.import_module("executorch.backends.mediatek.quantizer.qconfig")


def _override_weights(gm: torch.fx.GraphModule, overrides: list) -> None:
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    for node in gm.graph.nodes:
        ann = node.meta.get(Q_ANNOTATION_KEY)
        if node.target not in WEIGHT_OPS or ann is None:
            continue
        weight = node.args[0] if node.target == torch.ops.aten.embedding.default else node.args[1]
        for match, spec in overrides:
            if match(node) and weight in ann.input_qspec_map:
                ann.input_qspec_map[weight] = spec
                break


# ---- the pt2e flow -----------------------------------------------------------------------------
def graph_part(module: torch.nn.Module, example_inputs: tuple) -> str:
    """Sub-model owning most weights in an exported graph (decides MediaTek's graph precision)."""
    del module, example_inputs
    return "decoder_linears"


def make_quantizer(recipe: Recipe, part: str, soc: str | None = None, fallback: Sequence[str] = ()) -> Any:
    if recipe.backend == "qnn":
        return qnn_quantizer(recipe, soc, fallback)
    if recipe.backend == "mediatek":
        return mediatek_quantizer(recipe, part, fallback)
    raise BlueLMError(f"recipe {recipe.name!r} is for {recipe.backend}; pt2e quantizers are qnn and mediatek")


def quantize_graph(
    module: torch.nn.Module,
    example_inputs: tuple,
    recipe: Recipe,
    calibrate: Callable[[torch.fx.GraphModule], None],
    *,
    part: str = "decoder_linears",
    soc: str | None = None,
    fallback: Sequence[str] = (),
    dynamic_shapes: Any = None,
) -> torch.fx.GraphModule:
    """Export `module`, prepare with the recipe's vendor quantizer, run `calibrate(prepared)`, convert.

    `part` is the sub-model whose precision a single-precision quantizer (MediaTek) uses for the
    graph: "vision" for vision_encoder, "embeddings" for token_embedding, else "decoder_linears".
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = make_quantizer(recipe, part, soc, fallback)
    with torch.no_grad():
        gm = torch.export.export(module, example_inputs, dynamic_shapes=dynamic_shapes, strict=False).module()
        prepared = prepare_pt2e(gm, quantizer)
        calibrate(prepared)
        return convert_pt2e(prepared)
