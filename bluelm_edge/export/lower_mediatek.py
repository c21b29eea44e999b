"""MediaTek lowering: NeuroPilot SDK check, offline edge graphs (coverage), the real lowering.

The NeuroPilot partitioner needs the `mtk_converter` and `mtk_neuron` packages (not on PyPI);
without them the export keeps the vendor-quantized, lowering-ready program and `bluelm-edge lower
BUNDLE` finishes on a machine that has them. Platforms: mt6989 (Dimensity 9300), mt6991 (9400),
mt6993.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from torch.export import ExportedProgram

SDK_MODULES = ("mtk_converter", "mtk_neuron")
PLATFORMS = ("mt6989", "mt6991", "mt6993")


def missing_sdk() -> str | None:
    """None when the NeuroPilot SDK is importable, else one line naming what is missing."""
    missing = [m for m in SDK_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"MediaTek NeuroPilot SDK not found (python package {' and '.join(missing)} not importable): "
            "install the NeuroPilot Express SDK wheels, then run `bluelm-edge lower BUNDLE`")


def _split(program: ExportedProgram, layers: int, shards: int) -> ExportedProgram:
    """Cut a decoder edge program into `shards` chunks of whole layers (the boundary op the
    partitioner skips): upstream's `num_chunks`, one delegate per chunk."""
    from bluelm_edge.export import shards as sharding

    sharding.split_pass(layers, shards)(program.graph_module)
    return program


def edge_programs(programs: dict[str, ExportedProgram], soc: str | None = None, layers: int = 0,
                  shards: int = 1, meta: dict[str, Any] | None = None) -> dict[str, ExportedProgram]:
    """Plain `to_edge` of every method: the graphs the NeuroPilot partitioner would see, the
    decoder methods cut into `shards` chunks (`meta` unused: NeuroPilot programs take fp32 I/O)."""
    from executorch.exir import EdgeCompileConfig, to_edge

    from bluelm_edge.export.coverage import DECODER_METHODS

    with torch.no_grad():
        edge = to_edge(programs, compile_config=EdgeCompileConfig(_check_ir_validity=False))
    out = {name: edge.exported_program(name) for name in programs}
    if shards > 1:
        out.update({n: _split(p, layers, shards) for n, p in out.items() if n in DECODER_METHODS})
    return out


def passes_up_to_sdk(programs: dict[str, ExportedProgram], soc: str, metadata: dict[str, Any]) -> None:
    """What `lower` runs before the NeuroPilot converter: the weights unfolded, `to_edge`, the
    chunk split."""
    edge_programs(unfold_all(programs), soc, int(metadata["get_n_layers"]), int(metadata.get("get_num_shards", 1)))


def compile_spec(soc: str, method: str, shards: int = 1) -> list:
    """NeuroPilot compile spec as upstream's Llama export passes it: the GNO LTS options, the
    platform, and a shared-blob key per method group, so the prompt (prefill) and generate
    (decode) shapes of the decoder share one copy of its weights. Upstream keys each chunk's own
    .pte; a compile spec here covers every partition of a method, so a chunked decoder goes
    without the key rather than give N different chunks one blob name."""
    import struct

    from executorch.exir.backend.backend_details import CompileSpec

    from bluelm_edge.export.coverage import DECODER_METHODS

    group = "decoder" if method in DECODER_METHODS else method
    spec = [CompileSpec("gno", b"LTS"), CompileSpec("gno-exp", b""), CompileSpec("gno-non-4d-tiling", b""),
            CompileSpec("ImportForever", struct.pack("?", True)), CompileSpec("platform-config", soc.lower().encode())]
    if shards == 1 or method not in DECODER_METHODS:
        spec.append(CompileSpec("ExtractSharedBlobKey", f"bluelm_{group}".encode()))
    return spec


def lower(programs: dict[str, ExportedProgram], metadata: dict[str, Any], soc: str) -> bytes:
    """NeuropilotPartitioner lowering for platform `soc` -> `.pte` bytes (needs the SDK): weights
    unfolded as upstream's `fold_quantize=False`, graph I/O left to the runner, as upstream does."""
    from executorch.backends.mediatek.partitioner import NeuropilotPartitioner
    from executorch.exir import EdgeCompileConfig, EdgeProgramManager, ExecutorchBackendConfig
    from executorch.exir.backend.backend_api import MethodProgramsPartitionerSpec, to_backend
    from executorch.exir.passes import MemoryPlanningPass

    from bluelm_edge.export import shards as sharding

    shards = int(metadata.get("get_num_shards", 1))
    edge = edge_programs(unfold_all(programs), soc, int(metadata["get_n_layers"]), shards)
    parts = {n: NeuropilotPartitioner(compile_spec(soc, n, shards), op_types_to_skip={sharding.FALLBACK})
             for n in edge}
    with torch.no_grad():
        delegated = to_backend(MethodProgramsPartitionerSpec(edge, parts))
        manager = EdgeProgramManager(delegated, constant_methods=metadata,
                                     compile_config=EdgeCompileConfig(_check_ir_validity=False))
        planning = MemoryPlanningPass(alloc_graph_input=False, alloc_graph_output=False)
        return manager.to_executorch(ExecutorchBackendConfig(memory_planning_pass=planning,
                                                             extract_delegate_segments=True)).buffer


def _requantize_ops() -> dict[Any, Any]:
    """Each weight dequantize op and the quantize op with the same argument layout."""
    import torchao.quantization.quant_primitives  # noqa: F401  (registers torchao's ops)

    qd, ao = torch.ops.quantized_decomposed, torch.ops.torchao
    return {qd.dequantize_per_channel.default: qd.quantize_per_channel.default,
            qd.dequantize_per_tensor.default: qd.quantize_per_tensor.default,
            ao.dequantize_affine.default: ao.quantize_affine.default}


def unfold_all(programs: dict[str, ExportedProgram]) -> dict[str, ExportedProgram]:
    """`unfold_weights` of every method; a code tensor two methods share (decode reads prefill's)
    gets one fp32 copy."""
    cache: dict[int, torch.Tensor] = {}
    return {name: unfold_weights(ep, cache) for name, ep in programs.items()}


def unfold_weights(program: ExportedProgram, cache: dict[int, torch.Tensor] | None = None) -> ExportedProgram:
    """The program as `convert_pt2e(fold_quantize=False)` leaves it, what upstream's MediaTek
    export hands the NeuroPilot converter: each stored weight code tensor becomes its fp32 value
    followed by a quantize node with the same parameters (exact: quantizing a dequantized code
    gives the code back), so the converter sees fp32 weight -> quantize -> dequantize. The saved
    archive keeps the folded codes (4x smaller); this runs only on the way into the SDK."""
    from bluelm_edge.graphs.static import strip_unused

    gm, pairs, cache = program.module(), _requantize_ops(), {} if cache is None else cache
    for node in list(gm.graph.nodes):
        src = node.args[0] if node.op == "call_function" and node.target in pairs and node.args else None
        if not (isinstance(src, torch.fx.Node) and src.op == "get_attr"):
            continue
        codes = _attr(gm, src.target)
        if codes.is_floating_point():
            continue
        args = [_attr(gm, a.target) if isinstance(a, torch.fx.Node) and a.op == "get_attr" else a for a in node.args]
        name = f"{src.target.replace('.', '_')}_fp32"
        key = codes.data_ptr()
        if key not in cache:
            cache[key] = node.target(*args, **node.kwargs).float()
        gm.register_buffer(name, cache[key])
        with gm.graph.inserting_before(node):
            weight = gm.graph.get_attr(name)
            requant = gm.graph.call_function(pairs[node.target], (weight, *node.args[1:]), dict(node.kwargs))
        node.replace_input_with(src, requant)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    flat = [_example(n.meta["val"]) for n in program.graph.nodes
            if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    args, kwargs = torch.utils._pytree.tree_unflatten(flat, program.call_spec.in_spec)
    return strip_unused(torch.export.export(gm, args, kwargs, strict=False))


def _attr(gm: torch.fx.GraphModule, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _example(val: Any) -> Any:
    if isinstance(val, torch.Tensor):
        return torch.zeros(val.shape, dtype=val.dtype)
    return val
