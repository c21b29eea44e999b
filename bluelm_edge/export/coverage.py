"""Operator coverage: every op of a lowering-ready graph checked against a backend's op builders.

For Qualcomm the check is against the QNN operator builders executorch registers
(`builders.node_visitor_manager._node_visitor_dict`, what `get_node_visitors()` instantiates),
on the edge graph after the QNN pass pipeline, which is exactly what `QnnPartitioner` will see.
MediaTek's check lives in the `mtk_converter` SDK (`importer_v2.is_fx_node_supported`); without it
the ops are listed but marked unchecked. The report is `coverage.json` in the bundle.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from bluelm_edge.errors import FallbackError
from bluelm_edge.export.shards import FALLBACK

# Graph plumbing that never reaches an operator builder.
_PLUMBING = {"getitem", "_operator.getitem"}


def op_name(node: torch.fx.Node) -> str:
    """`aten.add.Tensor`-style name of a call_function node (the builders' key format)."""
    target = node.target
    name = getattr(target, "_name", None) or getattr(target, "__name__", str(target))
    if hasattr(target, "_overloadname") and "::" in name:
        ns, base = name.split("::", 1)
        return f"{ns}.{base.split('.')[0]}.{target._overloadname}"
    return name


def graph_ops(program: torch.export.ExportedProgram) -> Counter:
    return Counter(op_name(n) for n in program.graph.nodes
                   if n.op == "call_function" and op_name(n) not in _PLUMBING)


def qnn_supported_ops() -> set[str]:
    from bluelm_edge.quant.vendor import prepare_qnn_env

    prepare_qnn_env()
    import executorch.backends.qualcomm.builders  # noqa: F401  (registers every builder)
    from executorch.backends.qualcomm.builders.node_visitor_manager import _node_visitor_dict

    return set(_node_visitor_dict)


def qnn_folded_ops() -> set[str]:
    """The quantize/dequantize ops QNN's `FoldQDQ` turns into tensor encodings (never CPU work)."""
    from executorch.backends.qualcomm.builders.node_visitor import dq_ops, q_ops

    return {op_name_of(t) for t in (*q_ops, *dq_ops)}


def op_name_of(target: Any) -> str:
    class _N:  # op_name reads only .target
        pass

    node = _N()
    node.target = target
    return op_name(node)  # type: ignore[arg-type]


def partitions(program: Any, delegable: set[str]) -> int:
    """The partitions a capability-based partitioner (what QnnPartitioner and NeuropilotPartitioner
    run) cuts from the delegable call_function nodes: a CPU op between two groups, or a shard
    boundary, splits them, and no partition may depend on itself through a CPU op."""
    from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
    from torch.fx.passes.operator_support import OperatorSupportBase

    class Delegable(OperatorSupportBase):
        def is_node_supported(self, submodules, node: torch.fx.Node) -> bool:
            return node.op == "call_function" and (op_name(node) in delegable or op_name(node) in _PLUMBING)

    found = CapabilityBasedPartitioner(program.graph_module, Delegable(),
                                       allows_single_node_partition=True).propose_partitions()
    return sum(1 for p in found if any(op_name(n) not in _PLUMBING for n in p.nodes))


DECODER_METHODS = ("text_decoder", "forward", "prefill", "decode")


def report(backend: str, edge_programs: dict[str, Any], supported: set[str] | None,
           folded: set[str] | None = None) -> dict[str, Any]:
    """Per method: ops the backend runs, ops that fall back to CPU, q/dq folded into encodings, the
    expected partition count (one per shard in a split decoder); `cpu_fallbacks_in_decoder` sums
    the CPU ops of the decoder methods (shard boundaries are not CPU work: an identity between two
    contexts)."""
    folded = folded or set()
    methods, missing, total, ok = {}, set(), 0, 0
    for name, program in edge_programs.items():
        ops = graph_ops(program)
        boundaries = ops.pop(FALLBACK, 0)  # intended cuts between shards, not CPU work
        bad = sorted(op for op in ops if supported is not None and op not in supported and op not in folded)
        entry = {"ops": dict(sorted(ops.items())), "unsupported": bad, "shard_boundaries": boundaries}
        if supported is not None:
            entry.update(npu_ops=sum(c for op, c in ops.items() if op in supported and op not in folded),
                         cpu_ops=sum(ops[op] for op in bad),
                         folded_qdq=sum(c for op, c in ops.items() if op in folded),
                         partitions=partitions(program, supported | folded))
        methods[name] = entry
        missing.update(bad)
        total += sum(c for op, c in ops.items() if op not in folded)
        ok += sum(c for op, c in ops.items() if op not in bad and op not in folded)
    checked = supported is not None
    return {
        "backend": backend,
        "checked": checked,
        "checked_against": "executorch QNN operator builders, after QNN's pass pipeline, skip-decomposition "
                           "table and FoldQDQ" if backend == "qnn" else None,
        "methods": methods,
        "unsupported": sorted(missing),
        "supported_fraction": round(ok / total, 4) if total and checked else None,
        "cpu_fallbacks_in_decoder": sum(m.get("cpu_ops", 0) for n, m in methods.items() if n in DECODER_METHODS)
        if checked else None,
    }


def require_decoder_on_npu(cov: dict[str, Any], soc: str | None) -> None:
    """Refuse a program whose decoder methods hold ops the backend leaves to the CPU: each splits the
    graph and sends activations through the CPU every token (counted as the backend partitions)."""
    if not cov.get("cpu_fallbacks_in_decoder"):
        return
    where = {n: m["unsupported"] for n, m in cov["methods"].items() if n in DECODER_METHODS and m.get("cpu_ops")}
    ops = sorted({op for bad in where.values() for op in bad})
    n = cov["cpu_fallbacks_in_decoder"]
    raise FallbackError(f"the {cov['backend']} decoder would fall back to the CPU for {n} "
                        f"op(s) ({', '.join(ops[:4])}{' ...' if len(ops) > 4 else ''}) in {', '.join(sorted(where))} "
                        f"on {soc or 'this SoC'}; the backend cannot run this graph whole: use a recipe or model "
                        "form it supports, or --backend xnnpack")
