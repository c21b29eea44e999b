"""Decoder sharding for the NPU backends: N contexts (QNN) or chunks (MediaTek) of whole layers.

A compiled NPU context has a memory limit (Qualcomm HTP: 4 GB per context, upstream's "Failed to
find available PD ... context size estimate" error), so a 3B decoder is cut into shards of
consecutive layers, as upstream's Llama scripts do (`num_sharding`; Llama-3.2-3B: 3, SmolLM3-3B: 4,
Qwen3-1.7B: 1). The cut is ExecuTorch's own mechanism: after the backend's q/dq folding, an identity
`llama.fallback` op (`executorch.extension.llm.custom_ops.op_fallback`) is inserted before the first
node of each shard's first layer, and the partitioner is told to skip it, so each shard becomes its
own delegate (QNN: its own context, with `use_multi_contexts` and a shared spill-fill buffer).
The saved program stays whole; the split happens in the lowering passes, where both
`coverage.json` and `bluelm-edge lower` apply it.

`auto` picks the fewest shards whose every context holds at most the SoC's per-context budget of
quantized weights (`context_budget_mb` in the catalogue), counting each weight at its real width
(4-bit codes as half a byte) and the output head in the last shard.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch.export import ExportedProgram

from bluelm_edge.errors import UsageError

FALLBACK = "llama.fallback.default"  # the boundary op, as the partitioners name it
LAYER = re.compile(r"layers\.(\d+)")
AUTO = "auto"


def parse(value: str | int | None) -> str | int:
    """`--shards` as given: "auto" or a positive count."""
    if value is None or value == AUTO:
        return AUTO
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--shards {value!r}: give a positive number of shards or 'auto'")
    return n


def layer_counts(n_layers: int, shards: int) -> list[int]:
    """Layers per shard, as even as they go (the first shards take the remainder)."""
    return [n_layers // shards + (i < n_layers % shards) for i in range(shards)]


def first_layers(n_layers: int, shards: int) -> list[int]:
    """Index of the first layer of each shard after the first: where the boundaries go."""
    counts = layer_counts(n_layers, shards)
    return [sum(counts[:i]) for i in range(1, shards)]


def check(shards: int, n_layers: int) -> None:
    if shards > n_layers:
        raise UsageError(f"--shards {shards}: the decoder has {n_layers} layers; a shard holds at least one, "
                         f"use at most {n_layers}")


def split_pass_args(n_layers: int, shards: int) -> dict[str, Any]:
    """Arguments of ExecuTorch's `SplitGraph` pass for these boundaries."""
    return {"shard_layers": first_layers(n_layers, shards), "pattern": LAYER.pattern}


def split_pass(n_layers: int, shards: int) -> Any:
    """ExecuTorch's `SplitGraph` pass placing the boundaries (registers the `llama.fallback` op)."""
    from executorch.extension.llm.custom_ops.model_sharding import SplitGraph

    return SplitGraph(**split_pass_args(n_layers, shards))


def layer_of(node: torch.fx.Node) -> int | None:
    """The decoder layer a node was traced from (its innermost module path), or None."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    m = LAYER.search(list(stack.values())[-1][0])
    return int(m.group(1)) if m else None


def _bits(node: torch.fx.Node) -> int | None:
    """Stored bits of a constant a dequantize node reads (from its quant_min/quant_max)."""
    qmin, qmax = _qrange(node)
    return None if qmin is None else max(1, math.ceil(math.log2(qmax - qmin + 1)))


def _qrange(node: torch.fx.Node) -> tuple[int | None, int | None]:
    """quant_min/quant_max of a dequantize node: by keyword, else its last two int arguments."""
    ints = [a for a in node.args[1:] if isinstance(a, int) and not isinstance(a, bool)]
    qmin, qmax = node.kwargs.get("quant_min"), node.kwargs.get("quant_max")
    if qmin is None and len(ints) >= 2:
        qmin, qmax = ints[-2], ints[-1]
    return qmin, qmax


def _reader_layers(node: torch.fx.Node, depth: int = 4) -> set[int | None]:
    """Layers of the nearest nodes that read a weight (q/dq nodes carry no module path: look
    through them to the linear that consumes the dequantized weight)."""
    layers: set[int | None] = set()
    for user in node.users:
        layer = layer_of(user)
        if layer is not None or depth == 0:
            layers.add(layer)
        else:
            layers |= _reader_layers(user, depth - 1)
    return layers or {None}


def weight_bytes_by_layer(program: ExportedProgram) -> dict[int | None, int]:
    """Bytes of every weight tensor the graph holds (scalars aside), by decoder layer (None:
    outside the layers), quantized codes at the width their dequantize reads them with."""
    tensors = {**program.state_dict, **program.constants}
    by_input = {s.arg.name: s.target for s in program.graph_signature.input_specs if s.target in tensors}
    width: dict[str, int] = {}
    for node in program.graph.nodes:
        if node.op == "call_function" and "dequantize" in str(node.target) and node.args:
            src = node.args[0]
            bits = _bits(node)
            if isinstance(src, torch.fx.Node) and src.name in by_input and bits:
                width[src.name] = bits
    out: dict[int | None, int] = defaultdict(int)
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in by_input:
            continue
        t = tensors[by_input[node.name]]
        if t.numel() <= 1:  # scalar quantization parameters and lifted constants, not weights
            continue
        layers = _reader_layers(node)
        bits = width.get(node.name, t.element_size() * 8)
        out[layers.pop() if len(layers) == 1 else None] += math.ceil(t.numel() * bits / 8)
    return dict(out)


def shard_bytes(by_layer: dict[int | None, int], n_layers: int, shards: int) -> list[int]:
    """Weight bytes of each shard (what is outside the layers, the head, goes in the last)."""
    sizes, start = [], 0
    for count in layer_counts(n_layers, shards):
        sizes.append(sum(by_layer.get(i, 0) for i in range(start, start + count)))
        start += count
    sizes[-1] += by_layer.get(None, 0)
    return sizes


def auto(program: ExportedProgram, n_layers: int, budget_mb: float | None) -> int:
    """The fewest shards with every shard's weights within `budget_mb` (None: no known limit, 1)."""
    if not budget_mb:
        return 1
    by_layer = weight_bytes_by_layer(program)
    for shards in range(1, n_layers + 1):
        if max(shard_bytes(by_layer, n_layers, shards)) <= budget_mb * 2**20:
            return shards
    return n_layers


def resolve(value: str | int, program: ExportedProgram, n_layers: int, soc: str | None) -> int:
    """The shard count for `--shards value` on `soc` (auto: from the catalogue's context budget)."""
    if value != AUTO:
        check(int(value), n_layers)
        return int(value)
    from bluelm_edge.socs import load_socs

    entry = load_socs().get(soc or "")
    return auto(program, n_layers, entry.context_budget_mb if entry else None)


def boundaries(programs: Iterable[ExportedProgram]) -> list[int]:
    """Boundary ops per program (what a split graph carries)."""
    from bluelm_edge.export.coverage import op_name

    return [sum(1 for n in p.graph.nodes if n.op == "call_function" and op_name(n) == FALLBACK) for p in programs]
