"""Qualcomm lowering: SDK check, offline QNN edge graphs (for coverage), and the real lowering.

Nothing here touches the network: `QNN_SDK_ROOT` is set to "" when unset (the wheel would
otherwise download an SDK), and lowering is only attempted after `missing_sdk()` found the
libraries. Without an SDK the export writes the lowering-ready program and the coverage report,
and `bluelm-edge lower BUNDLE` finishes on a machine that has one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.export import ExportedProgram

from bluelm_edge.errors import SdkLoadError
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
    lib_dir = Path(root) / HOST_LIB_DIR
    on_path = [Path(p).resolve() for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    if lib_dir.resolve() not in on_path:  # the QNN manager dlopens its libraries by name
        return (f"QNN SDK at {root} is not on the library path: export LD_LIBRARY_PATH={lib_dir}:$LD_LIBRARY_PATH, "
                "then run `bluelm-edge lower BUNDLE`")
    return None


# HTP generation from which prefill and decode may share one copy of the weights (upstream README).
WEIGHT_SHARING_MIN_HTP = 73


def compile_spec(soc: str, shards: int = 1, decoder: bool = False) -> list:
    """HTP (quantized) compile spec for a Qualcomm SoC as upstream's Llama export builds it: one
    context per shard (`use_multi_contexts` only when split), prefill/decode weight sharing from
    V73, shared (RPC) buffers for the I/O, and for the decoder multi-head attention split into
    single heads (`use_mha2sha`); building it needs no SDK."""
    from executorch.backends.qualcomm.utils.utils import (
        generate_htp_compiler_spec,
        generate_qnn_executorch_compiler_spec,
    )

    backend = generate_htp_compiler_spec(
        use_fp16=False, use_multi_contexts=shards > 1,
        use_weight_sharing=vendor.qnn_htp_arch(soc) >= WEIGHT_SHARING_MIN_HTP)
    return generate_qnn_executorch_compiler_spec(vendor.qnn_chipset(soc), backend, shared_buffer=True,
                                                 use_mha2sha=decoder)


def _pass_manager(program: ExportedProgram):
    from executorch.backends.qualcomm._passes.qnn_pass_manager import QnnPassManager

    pm = QnnPassManager()
    return pm, pm.transform_for_export_pipeline(program)


def edge_passes(pm: Any, aten: ExportedProgram, spec: list, split: tuple[int, int] | None,
                io: tuple[str, dict[str, Any]] | None = None) -> list:
    """QNN's to-edge passes with linear-as-conv2d (HTP's faster form, as upstream); for a sharded
    decoder (`split` = (layers, shards)) ExecuTorch's `SplitGraph` after `FoldQDQ`; for a decoder
    method whose metadata declares integer I/O (`io` = (method, metadata)), `TagQuantIO` on those
    tensors (and on the shard boundaries), so the lowered method takes and returns them quantized
    (`bluelm_edge/export/quant_io.py`)."""
    from executorch.backends.qualcomm._passes import FoldQDQ, TagQuantIO
    from executorch.backends.qualcomm.utils.constants import (
        QCOM_PASS_ACTIVATE_KEY,
        QCOM_PASS_ARGS_KWARGS_DEFAULTS_KEY,
    )
    from executorch.extension.llm.custom_ops.model_sharding import SplitGraph

    from bluelm_edge.export import quant_io, shards

    jobs, deps = pm.get_capture_program_passes(), pm.get_passes_dependency_for_capture_program()
    if split is not None and split[1] > 1:
        jobs[SplitGraph] = {QCOM_PASS_ACTIVATE_KEY: True,
                            QCOM_PASS_ARGS_KWARGS_DEFAULTS_KEY: shards.split_pass_args(*split)}
        deps[SplitGraph] = [FoldQDQ]
        deps[TagQuantIO] = [SplitGraph]
    if io is not None and quant_io.quantized(io[1]):
        jobs[TagQuantIO][QCOM_PASS_ACTIVATE_KEY] = True
        jobs[TagQuantIO][QCOM_PASS_ARGS_KWARGS_DEFAULTS_KEY]["get_quant_io_dtype_fn"] = quant_io.tag_fn(
            io[1], io[0], shards.FALLBACK)
    return pm.get_to_edge_transform_passes(aten, passes_job=jobs, dep_table=deps, compiler_specs=spec,
                                           skip_node_op_set={shards.FALLBACK}, convert_linear_to_conv2d=True)


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


@contextmanager
def _sdk_loads() -> Iterator[None]:
    """The QNN manager's failure to load the SDK's libraries as one line naming the reason."""
    try:
        yield
    except RuntimeError as err:
        if "Failed to initialize QNN backend" not in str(err):
            raise
        import executorch.version

        root = os.environ.get("QNN_SDK_ROOT", "")
        raise SdkLoadError(f"the QNN SDK at {root} did not load ({_load_problem(root)}): use a complete x86_64 "
                           f"Qualcomm AI Engine Direct SDK matching ExecuTorch {executorch.version.__version__}, "
                           f"with {root}/{HOST_LIB_DIR} on LD_LIBRARY_PATH") from None


def _load_problem(root: str) -> str:
    """Why the dynamic loader refuses the SDK's libraries (what the QNN manager hit)."""
    import ctypes

    for lib in REQUIRED_LIBS:
        try:
            ctypes.CDLL(str(Path(root) / lib))
        except OSError as err:
            return str(err)
    return "its libraries load, the QNN backend did not initialise"


def _is_decoder(name: str) -> bool:
    from bluelm_edge.export.coverage import DECODER_METHODS

    return name in DECODER_METHODS


def _split(name: str, layers: int, shards: int) -> tuple[int, int] | None:
    return (layers, shards) if _is_decoder(name) and shards > 1 else None


def _io(name: str, meta: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    return None if meta is None else (name, meta)


def edge_programs(programs: dict[str, ExportedProgram], soc: str, layers: int = 0,
                  shards: int = 1, meta: dict[str, Any] | None = None) -> dict[str, ExportedProgram]:
    """The QNN pass pipeline + `to_edge` with QNN's skip-decomposition table, no delegation: what
    QnnPartitioner would see (so `_safe_softmax`, `linear`, `rms_norm` stay whole as on device),
    the decoder methods cut into `shards` contexts of whole layers, their I/O tagged as `meta` says."""
    from executorch.backends.qualcomm.utils.utils import qnn_edge_config
    from executorch.exir import to_edge_transform_and_lower

    out = {}
    with torch.no_grad():
        for name, ep in programs.items():
            pm, aten = _pass_manager(ep)
            spec = compile_spec(soc, shards, _is_decoder(name))
            passes = edge_passes(pm, aten, spec, _split(name, layers, shards), _io(name, meta))
            edge = to_edge_transform_and_lower({name: aten}, transform_passes={name: passes},
                                               partitioner={name: [_offline_partitioner()]},
                                               compile_config=qnn_edge_config())
            out[name] = edge.exported_program(name)
    return out


def preprocess(edge: dict[str, ExportedProgram]) -> dict[str, ExportedProgram]:
    """QNN's preprocess passes, in place, as `QnnBackend.preprocess` runs them on each partition
    right before the SDK builds its graph (q/dq folded into encodings, I/O q/dq, requantize,
    layout, and for the decoder multi-head attention split into single heads)."""
    from executorch.backends.qualcomm._passes.qnn_pass_manager import QnnPassManager

    with torch.no_grad():
        for name, ep in edge.items():
            QnnPassManager().transform_for_preprocess_pipeline(ep, use_mha2sha=_is_decoder(name))
    return edge


def passes_up_to_sdk(programs: dict[str, ExportedProgram], soc: str, metadata: dict[str, Any]) -> None:
    """Every step `lower` takes before the SDK builds a graph: the QNN to-edge passes (sharded as
    the metadata says), the preprocess passes, and an operator builder for every op that results
    (the boundary between shards aside); a missing builder is one line, not an SDK crash."""
    from bluelm_edge.errors import FallbackError
    from bluelm_edge.export import coverage, shards

    edge = preprocess(edge_programs(programs, soc, int(metadata["get_n_layers"]),
                                    int(metadata.get("get_num_shards", 1)), metadata))
    known = coverage.qnn_supported_ops() | {shards.FALLBACK}
    for name, ep in edge.items():
        missing = sorted(set(coverage.graph_ops(ep)) - known)
        if missing:
            raise FallbackError(f"{name}: QNN has no operator builder for {', '.join(missing)} after its preprocess "
                                f"passes on {soc}; re-export with --backend xnnpack or report the op")


def lower(programs: dict[str, ExportedProgram], metadata: dict[str, Any], soc: str) -> bytes:
    """QnnPartitioner lowering of every method -> `.pte` bytes (needs the SDK; check first). The
    decoder is cut into `get_num_shards` contexts sharing one spill-fill buffer; graph I/O is left
    to the runner (shared buffers) and, where tagged, typed as the integers it is (`BuildQuantIo`),
    as upstream's Llama export does."""
    from executorch.backends.qualcomm._passes.build_quant_io import BuildQuantIo
    from executorch.backends.qualcomm.partition.qnn_partitioner import QnnPartitioner
    from executorch.backends.qualcomm.utils.utils import (
        QnnManagerContext,
        qnn_edge_config,
        update_spill_fill_size,
    )
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass

    from bluelm_edge.export import shards as sharding

    layers, shards = int(metadata["get_n_layers"]), int(metadata.get("get_num_shards", 1))
    specs = {name: compile_spec(soc, shards, _is_decoder(name)) for name in programs}
    aten, passes = {}, {}
    for name, ep in programs.items():
        pm, aten[name] = _pass_manager(ep)
        passes[name] = edge_passes(pm, aten[name], specs[name], _split(name, layers, shards), _io(name, metadata))
    skip = {sharding.FALLBACK}
    with torch.no_grad(), _sdk_loads(), QnnManagerContext(specs):
        edge = to_edge_transform_and_lower(
            aten, transform_passes=passes,
            partitioner={n: [QnnPartitioner(specs[n], skip_node_op_set=skip)] for n in programs},
            constant_methods=metadata, compile_config=qnn_edge_config(),
        )
        if shards > 1:
            update_spill_fill_size([edge.exported_program(n) for n in programs])
        planning = MemoryPlanningPass(alloc_graph_input=False, alloc_graph_output=False)
        config = ExecutorchBackendConfig(memory_planning_pass=planning, passes=[BuildQuantIo()])
        return edge.to_executorch(config).buffer
