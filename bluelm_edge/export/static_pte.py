"""The static NPU program as a CPU `.pte`: its graph-I/O contract checked in ExecuTorch's runtime.

Without the vendor SDK a QNN / MediaTek bundle holds the lowering-ready `program.pt2` (fake-quant
graphs), not a `.pte`. `write_cpu_pte` turns those graphs into a `.pte` that ExecuTorch's own
runtime runs on the CPU with its portable and quantized kernels, with the I/O the lowered program
has: the decoder steps behind `quant_io.IntegerIo` (e.g. uint8 KV caches in and out with
`--graph-io kv`), `token_embedding` / `vision_encoder` behind `IntegerOutput`, the weights'
dequantization folded to fp32 constants, and the program's metadata as constant methods. The
runners (the host `NpuDecoder`, the app's Java `StaticKvRunner`) then drive a real program through
the real runtime, method by method, as they would the lowered one; the logits equal the fake-quant
graphs' (`tests/test_static_kv_runtime.py`). It is not fast: a check, not a deployment target.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from bluelm_edge import contract
from bluelm_edge.export import quant_io


class _Step(torch.nn.Module):
    """A decoder step with the lowered program's integer I/O (the exported module's signature)."""

    def __init__(self, gm: torch.fx.GraphModule, meta: dict[str, Any]) -> None:
        super().__init__()
        self.gm = gm
        self.io = quant_io.IntegerIo(gm, meta)

    def forward(self, x, cos, sin, mask, k_caches, v_caches):
        return self.io(x, cos, sin, mask, k_caches, v_caches)


class _Output(torch.nn.Module):
    """`token_embedding` / `vision_encoder` returning its output at the method's output encoding."""

    def __init__(self, gm: torch.fx.GraphModule, encoding: quant_io.Encoding | None) -> None:
        super().__init__()
        self.gm = gm
        self.io = quant_io.IntegerOutput(gm, encoding)

    def forward(self, *args):
        return self.io(*args)


def _folded(program: Any) -> torch.fx.GraphModule:
    """A copy of the method's module with its weights' dequantization evaluated once (fp32 constants)."""
    from torch._inductor.constant_folding import constant_fold

    gm = copy.deepcopy(program.module())
    _fold_dequantized_constants(gm)
    constant_fold(gm)
    return gm


def _fold_dequantized_constants(gm: torch.fx.GraphModule) -> int:
    """Replace each dequantize node whose tensor inputs are all constants by its fp32 value. (Inductor's
    `constant_fold` leaves some, e.g. a conv's per-channel weight whose one-element scale the eager
    op broadcasts and ExecuTorch's kernel rejects.)"""
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or "dequantize" not in str(node.target):
            continue
        tensors = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if not tensors or any(a.op != "get_attr" for a in tensors):
            continue
        args = [_attr(gm, a.target) if isinstance(a, torch.fx.Node) else a for a in node.args]
        name = f"_folded_{folded}"
        gm.register_buffer(name, node.target(*args, **node.kwargs))
        with gm.graph.inserting_before(node):
            node.replace_all_uses_with(gm.graph.get_attr(name))
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return folded


def _attr(gm: torch.fx.GraphModule, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _example(program: Any, name: str, enc: dict, layers: int) -> tuple:
    """The method's example inputs as the lowered program takes them (caches in their encodings)."""
    args = torch.utils._pytree.tree_leaves(program.example_inputs[0])  # the caches arrive as two lists
    if name not in contract.DECODER_STEPS:
        return tuple(args)
    x, cos, sin, mask = (quant_io.quantize(enc[r], t) for r, t in zip(quant_io.DECODER_INPUTS, args[:4], strict=True))
    ks = [quant_io.quantize(enc[f"k_{i}"], t) for i, t in enumerate(args[4:4 + layers])]
    vs = [quant_io.quantize(enc[f"v_{i}"], t) for i, t in enumerate(args[4 + layers:4 + 2 * layers])]
    return x, cos, sin, mask, ks, vs


@torch.no_grad()
def write_cpu_pte(programs: dict[str, Any], meta: dict[str, Any], path: Path) -> int:
    """`programs` (the bundle's `program.pt2` methods) as a portable-kernel `.pte` at `path`, written
    atomically; returns its size."""
    import executorch.kernels.quantized  # noqa: F401  (registers quantized_decomposed's out variants)
    from executorch.exir import EdgeCompileConfig, to_edge

    from bluelm_edge.io import atomic_path

    enc, layers = quant_io.runner_encodings(meta), int(meta["get_n_layers"])
    exported = {}
    for name in (m for m in contract.NPU_METHODS if m in programs):
        gm = _folded(programs[name])
        module = _Step(gm, meta) if name in contract.DECODER_STEPS else _Output(gm, enc[quant_io.OUTPUT_ROLES[name]])
        exported[name] = torch.export.export(module, _example(programs[name], name, enc, layers), strict=False)
    edge = to_edge(exported, constant_methods=meta, compile_config=EdgeCompileConfig(_check_ir_validity=False))
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        edge.to_executorch().write_to_file(f)
    return Path(path).stat().st_size
