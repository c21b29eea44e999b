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


def report(backend: str, edge_programs: dict[str, Any], supported: set[str] | None) -> dict[str, Any]:
    """{backend, checked, methods: {name: {ops, unsupported}}, unsupported, supported_fraction}."""
    methods, missing, total, ok = {}, set(), 0, 0
    for name, program in edge_programs.items():
        ops = graph_ops(program)
        bad = sorted(op for op in ops if supported is not None and op not in supported)
        methods[name] = {"ops": dict(sorted(ops.items())), "unsupported": bad}
        missing.update(bad)
        total += sum(ops.values())
        ok += sum(c for op, c in ops.items() if op not in bad)
    return {
        "backend": backend,
        "checked": supported is not None,
        "checked_against": "executorch QNN operator builders" if backend == "qnn" else None,
        "methods": methods,
        "unsupported": sorted(missing),
        "supported_fraction": round(ok / total, 4) if total and supported is not None else None,
    }
