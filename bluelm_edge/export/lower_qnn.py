"""Qualcomm lowering: SDK check, offline QNN edge graphs (for coverage), and the real lowering.

Nothing here touches the network: `QNN_SDK_ROOT` is set to "" when unset (the wheel would
otherwise download an SDK), and lowering is only attempted after `missing_sdk()` found the
libraries. Without an SDK the export writes the lowering-ready program and the coverage report,
and `bluelm-edge lower BUNDLE` finishes on a machine that has one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.export import ExportedProgram

from bluelm_edge.quant import vendor

HOST_LIB_DIR = "lib/x86_64-linux-clang"
REQUIRED_LIBS = (f"{HOST_LIB_DIR}/libQnnHtp.so", f"{HOST_LIB_DIR}/libQnnSystem.so")


def missing_sdk() -> str | None:
    """None when the QNN SDK is usable here, else one line saying what is missing and what to do."""
    vendor.prepare_qnn_env()
    root = os.environ["QNN_SDK_ROOT"]
    if not root:
        return ("Qualcomm QNN SDK not found (QNN_SDK_ROOT is not set): install Qualcomm AI Engine Direct, "
                "export QNN_SDK_ROOT=<sdk>, then run `bluelm-edge lower BUNDLE`")
    for lib in REQUIRED_LIBS:
        if not (Path(root) / lib).is_file():
            return (f"QNN SDK at {root} is missing {lib}: point QNN_SDK_ROOT at a full Qualcomm AI Engine "
                    "Direct SDK, then run `bluelm-edge lower BUNDLE`")
    return None


def compile_spec(soc: str) -> list:
    """HTP (quantized) compile spec for a Qualcomm SoC; building it needs no SDK."""
    from executorch.backends.qualcomm.utils.utils import (
        generate_htp_compiler_spec,
        generate_qnn_executorch_compiler_spec,
    )

    backend = generate_htp_compiler_spec(use_fp16=False, use_multi_contexts=True)
    return generate_qnn_executorch_compiler_spec(vendor.qnn_chipset(soc), backend)


def _pass_manager(program: ExportedProgram):
    from executorch.backends.qualcomm._passes.qnn_pass_manager import QnnPassManager

    pm = QnnPassManager()
    return pm, pm.transform_for_export_pipeline(program)


def _offline_partitioner() -> Any:
    """A partitioner that keeps what QnnPartitioner keeps from decomposition (its skip table and
    filter) and delegates nothing: `to_edge` then yields the graph QnnPartitioner would tag."""
    from executorch.backends.qualcomm.partition.utils import filter_fn, get_skip_decomp_table
    from executorch.exir.backend.partitioner import Partitioner, PartitionResult

    class OfflineQnn(Partitioner):
        asked = False

        def partition(self, exported_program: ExportedProgram) -> PartitionResult:
            return PartitionResult(tagged_exported_program=exported_program, partition_tags={})

        def ops_to_not_decompose(self, ep: ExportedProgram):
            # asked twice by to_edge_transform_and_lower: before decomposing (QNN's table) and after
            # delegating, to insist the kept ops were delegated; nothing is here, so say none were kept
            first, self.asked = not self.asked, True
            return (get_skip_decomp_table(), filter_fn) if first else ([], None)

    return OfflineQnn()


def edge_programs(programs: dict[str, ExportedProgram], soc: str) -> dict[str, ExportedProgram]:
    """The QNN pass pipeline + `to_edge` with QNN's skip-decomposition table, no delegation: what
    QnnPartitioner would see (so `_safe_softmax`, `linear`, `rms_norm` stay whole as on device)."""
    from executorch.backends.qualcomm.utils.utils import qnn_edge_config
    from executorch.exir import to_edge_transform_and_lower

    spec = compile_spec(soc)
    out = {}
    with torch.no_grad():
        for name, ep in programs.items():
            pm, aten = _pass_manager(ep)
            passes = pm.get_to_edge_transform_passes(aten, compiler_specs=spec)
            edge = to_edge_transform_and_lower({name: aten}, transform_passes={name: passes},
                                               partitioner={name: [_offline_partitioner()]},
                                               compile_config=qnn_edge_config())
            out[name] = edge.exported_program(name)
    return out


def lower(programs: dict[str, ExportedProgram], metadata: dict[str, Any], soc: str) -> bytes:
    """QnnPartitioner lowering of every method -> `.pte` bytes (needs the SDK; check first)."""
    from executorch.backends.qualcomm.partition.qnn_partitioner import QnnPartitioner
    from executorch.backends.qualcomm.utils.utils import QnnManagerContext, qnn_edge_config
    from executorch.exir import to_edge_transform_and_lower

    from bluelm_edge.export.lower_xnnpack import backend_config

    spec = compile_spec(soc)
    aten, passes = {}, {}
    for name, ep in programs.items():
        pm, aten[name] = _pass_manager(ep)
        passes[name] = pm.get_to_edge_transform_passes(aten[name], compiler_specs=spec)
    with torch.no_grad(), QnnManagerContext({n: spec for n in programs}):
        edge = to_edge_transform_and_lower(
            aten, transform_passes=passes, partitioner={n: [QnnPartitioner(spec)] for n in programs},
            constant_methods=metadata, compile_config=qnn_edge_config(),
        )
        return edge.to_executorch(backend_config()).buffer
