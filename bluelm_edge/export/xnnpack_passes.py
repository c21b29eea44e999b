"""XNNPACK's per-partition passes, minus the ones with nothing to do in the partition.

`XnnpackBackend.preprocess` runs 17 graph passes on every partition, and each one rebuilds the
partition's program whether it changed anything or not (every pass reports `modified=True`); for
a transformer partition about half of them look for ops it cannot contain (batch norm,
convolution, PReLU, concatenation, padding, decomposed bilinear upsampling, softmax-based
attention). `skip_idle_passes()` leaves out, per partition, exactly the passes whose trigger op
is absent from the graph at the moment the pass would run; every other pass runs as upstream
orders them. The lowered program is byte-identical (tests/test_export_compose.py checks it);
only the time goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# pass name -> op names (the edge op's `__name__` without overload, e.g. "aten.cat", or without
# namespace too, e.g. "quantize_affine") of which at least one must be in the graph for the pass to
# have work. Passes not named here always run.
TRIGGERS: dict[str, tuple[str, ...]] = {
    "ConvertToUpsampleBilinear2d": ("aten._unsafe_index", "aten.index", "aten.upsample_bilinear2d"),
    "ConvertToSDPAPass": ("aten._softmax", "aten.softmax"),
    "FuseBatchNormPass": ("aten.native_batch_norm", "aten._native_batch_norm_legit_no_training"),
    "DecomposeBatchNorm": ("aten.native_batch_norm", "aten._native_batch_norm_legit_no_training"),
    "DecomposeConcatenate": ("aten.cat",),
    "InsertPadQDQPass": ("aten.constant_pad_nd",),
    "Conv1dUnsqueezePass": ("aten.convolution",),
    "PReLUReshapePass": ("aten._prelu_kernel",),
    "RemoveGetItemPass": ("aten.max_pool2d_with_indices", "aten.max"),
    "FuseActivationPass": ("aten.relu", "aten.hardtanh"),
    "RemoveRedundantCopyPass": ("aten._to_copy",),
    "DimOrderOpsRevertPass": ("dim_order_ops._to_dim_order_copy", "dim_order_ops._empty_dim_order",
                              "dim_order_ops._clone_dim_order"),
    "PropagateCustomMetaPass": tuple(f"{d}quantize_{k}" for d in ("", "de") for k in
                                     ("per_tensor", "per_channel", "per_token", "affine", "per_channel_group")),
}


def graph_ops(graph: Any) -> set[str]:
    """The op names (namespace.name, no overload) of the graph's call_function nodes."""
    names = set()
    for node in graph.nodes:
        if node.op == "call_function":
            name = getattr(node.target, "__name__", str(node.target))
            name = name.rsplit(".", 1)[0] if name.count(".") >= 2 else name
            names.update((name, name.split(".", 1)[-1]))  # "aten.cat" and "cat"
    return names


def has_work(pass_name: str, ops: set[str]) -> bool:
    triggers = TRIGGERS.get(pass_name)
    return triggers is None or any(t in ops for t in triggers)


def _manager_class() -> type:
    from executorch.backends.xnnpack._passes import XNNPACKPass, XNNPACKPassManager, _transform
    from executorch.exir.pass_base import ExportPass

    class SkipIdlePassManager(XNNPACKPassManager):
        def transform(self) -> Any:
            ep = self.exported_program
            for pass_ in self.passes:
                if not has_work(pass_.__name__, graph_ops(ep.graph)):
                    continue
                if issubclass(pass_, XNNPACKPass):
                    ep = _transform(ep, pass_(ep))
                elif issubclass(pass_, ExportPass):
                    ep = _transform(ep, pass_())
                else:
                    raise RuntimeError(f"unexpected XNNPACK pass {pass_!r}")
            return ep

    return SkipIdlePassManager


@contextmanager
def skip_idle_passes() -> Iterator[None]:
    """Within the block, XNNPACK's preprocess skips passes with no trigger op in the partition."""
    from executorch.backends.xnnpack import xnnpack_preprocess

    original = xnnpack_preprocess.XNNPACKPassManager
    xnnpack_preprocess.XNNPACKPassManager = _manager_class()
    try:
        yield
    finally:
        xnnpack_preprocess.XNNPACKPassManager = original
