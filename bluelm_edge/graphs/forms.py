"""Which graph form each backend exports: the source-transform stage of the export.

XNNPACK runs `XnnpackForm` (ExecuTorch's LLM custom ops); the NPU backends export the static
prefill/decode program of `graphs.static` (`npu_modules`; the export pipeline calls it directly).
Every form shares the model's parameter tensors, so quantizing the model in place quantizes the form.
"""

from __future__ import annotations

from torch import nn

FORM_VERSION = 5  # bump when a form or the lowering changes the program (export cache key)


def graph_source(backend: str, model: nn.Module) -> nn.Module:
    """The module whose contract methods `backend` exports (see the module docstring)."""
    if backend == "xnnpack":
        from bluelm_edge.graphs.xnnpack import XnnpackForm

        return XnnpackForm(model)
    return model
