"""XNNPACK lowering: exported contract methods + metadata -> one multi-method `.pte` (bytes).

The backend config follows `../shared/EXECUTORCH-NOTES.md`: one partitioner per method,
quant fusion and constant propagation on (quantized embeddings / torchao ops), and memory
planning with `share_mutable_buffers=True` so every method sees the same KV cache. The decoder
is lowered once: `forward` is composed from the lowered `token_embedding` and `text_decoder`.
"""

from __future__ import annotations

from collections.abc import Callable
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


def lower(programs: dict[str, ExportedProgram], metadata: dict[str, Any], path: Path, parallel: bool = True,
          note: Callable[[str], None] | None = None) -> int:
    """`to_edge_transform_and_lower` with the XNNPACK partitioner, then `to_executorch`, written
    atomically to `path` without first joining the program into one bytes object (at 3B that copy is
    gigabytes of peak memory). When `token_embedding` and `text_decoder` are there, `forward` is
    composed from them once lowered (`export.compose`; a `forward` in `programs` is not used, so
    callers need not export it): one lowering of the decoder. `parallel`: lower a small vision
    encoder in a forked worker when a core is free (`export.lower_worker`). `note(text)` hears each
    step (for the progress display). Returns the file's size."""
    from executorch.exir import EdgeProgramManager

    from bluelm_edge.io import atomic_path

    note = note or (lambda text: None)
    with torch.no_grad():
        edge = _lowered(programs, parallel, note)
        note(f"to_executorch: memory planning and emitting {len(edge)} methods")
        program = EdgeProgramManager(edge, constant_methods=metadata, compile_config=_compile_config())
        program = program.to_executorch(backend_config())
        del edge
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
            program.write_to_file(f)
    return Path(path).stat().st_size


def _compile_config() -> Any:
    from executorch.exir import EdgeCompileConfig

    return EdgeCompileConfig(_check_ir_validity=False)


def _lower_here(programs: dict[str, ExportedProgram]) -> dict[str, ExportedProgram]:
    """{method: lowered edge program} for `programs`, in this process."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from bluelm_edge.export.xnnpack_passes import skip_idle_passes

    with skip_idle_passes():
        edge = to_edge_transform_and_lower(
            programs,
            partitioner={name: [XnnpackPartitioner()] for name in programs},
            compile_config=_compile_config(),
        )
    return {name: edge.exported_program(name) for name in programs}


def _lowered(programs: dict[str, ExportedProgram], parallel: bool,
             note: Callable[[str], None]) -> dict[str, ExportedProgram]:
    """{method: lowered edge program}, in the contract's method order. `forward` is composed when its
    parts are there; the vision encoder is lowered in a forked worker beside the rest when a
    second core is free (`export.lower_worker`)."""
    from bluelm_edge import contract
    from bluelm_edge.export import lower_worker
    from bluelm_edge.export.compose import compose_forward

    composed = {contract.TOKEN_EMBEDDING, contract.TEXT_DECODER} <= programs.keys()
    todo = {k: v for k, v in programs.items() if not (composed and k == contract.FORWARD)}
    vision = contract.VISION_ENCODER
    if parallel and vision in todo and len(todo) > 1 and lower_worker.worth_it(todo[vision]):
        with lower_worker.aside(vision, todo.pop(vision), _lower_here) as vision_result:
            note(f"partitioning and lowering {', '.join(todo)} (and {vision} in a worker process)")
            out = _lower_here(todo)
            note(f"waiting for {vision} from the worker")
            out[vision] = vision_result()
    else:
        note(f"partitioning and lowering {', '.join(todo)}")
        out = _lower_here(todo)
    if composed:
        note("composing forward from the lowered token_embedding + text_decoder")
        out[contract.FORWARD] = compose_forward(out[contract.TOKEN_EMBEDDING], out[contract.TEXT_DECODER])
    order = [*(m for m in contract.METHODS if m in out), *(m for m in programs if m not in contract.METHODS)]
    return {name: out[name] for name in order}
