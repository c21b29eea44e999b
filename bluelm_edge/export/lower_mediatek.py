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


def edge_programs(programs: dict[str, ExportedProgram]) -> dict[str, ExportedProgram]:
    """Plain `to_edge` of every method: the graphs the NeuroPilot partitioner would see."""
    from executorch.exir import EdgeCompileConfig, to_edge

    with torch.no_grad():
        edge = to_edge(programs, compile_config=EdgeCompileConfig(_check_ir_validity=False))
    return {name: edge.exported_program(name) for name in programs}


def lower(programs: dict[str, ExportedProgram], metadata: dict[str, Any], soc: str) -> bytes:
    """NeuropilotPartitioner lowering for platform `soc` -> `.pte` bytes (needs the SDK)."""
    from executorch.backends.mediatek import NeuropilotPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    from executorch.exir.backend.backend_details import CompileSpec

    from bluelm_edge.export.lower_xnnpack import backend_config

    spec = [CompileSpec("platform-config", soc.lower().encode())]
    with torch.no_grad():
        edge = to_edge_transform_and_lower(
            programs, partitioner={n: [NeuropilotPartitioner(spec)] for n in programs},
            constant_methods=metadata, compile_config=EdgeCompileConfig(_check_ir_validity=False),
        )
        return edge.to_executorch(backend_config()).buffer
