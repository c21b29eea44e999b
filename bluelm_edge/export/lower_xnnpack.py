"""XNNPACK lowering: exported contract methods + metadata -> one multi-method `.pte` (bytes).

The backend config follows `../shared/EXECUTORCH-NOTES.md`: one partitioner per method,
quant fusion and constant propagation on (quantized embeddings / torchao ops), and memory
planning with `share_mutable_buffers=True` so every method sees the same KV cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.export import ExportedProgram


def backend_config() -> Any:
    """The `ExecutorchBackendConfig` every backend's `to_executorch` uses here."""
    from executorch.exir import ExecutorchBackendConfig
    from executorch.exir.passes import MemoryPlanningPass

    return ExecutorchBackendConfig(
        extract_delegate_segments=True,
        do_quant_fusion_and_const_prop=True,
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False, share_mutable_buffers=True),
        emit_mutable_buffer_names=True,
    )


def lower(programs: dict[str, ExportedProgram], metadata: dict[str, Any], path: Path) -> int:
    """`to_edge_transform_and_lower` with the XNNPACK partitioner, then `to_executorch`, written
    atomically to `path` without first joining the program into one bytes object (at 3B that copy is
    gigabytes of peak memory). Returns the file's size."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from bluelm_edge.io import atomic_path

    with torch.no_grad():
        edge = to_edge_transform_and_lower(
            programs,
            partitioner={name: [XnnpackPartitioner()] for name in programs},
            constant_methods=metadata,
            compile_config=EdgeCompileConfig(_check_ir_validity=False),
        )
        program = edge.to_executorch(backend_config())
        del edge
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
            program.write_to_file(f)
    return Path(path).stat().st_size
