"""A quantized XNNPACK export (xnnpack-8da4w) follows its own quantized eager graph.

The export's quality stage runs the lowered `.pte` and the torchao-quantized eager model on the
same calibration prefixes. Stated tolerance: the same next token on every prefix, logit cosine
>= 0.999 (XNNPACK's int8 dynamic-activation kernels round differently from torchao's reference).
"""

from __future__ import annotations

import pytest

from bluelm_edge.export.bundle import verify_bundle
from bluelm_edge.export.pipeline import ExportOptions, run_export

pytestmark = pytest.mark.slow


def test_quantized_pte_matches_quantized_eager(tmp_path):
    opts = ExportOptions(preset="tiny", recipe="xnnpack-8da4w", max_context=128, out=tmp_path / "b",
                         samples=4, benchmark=False)
    result = run_export(opts, show=False)
    assert verify_bundle(result.out) == []
    quality = result.summary()["quality"]
    assert quality["measured_on"] == "lowered .pte" and quality["samples"] >= 4
    vs_eager = quality["vs_quantized_eager"]
    assert vs_eager["top1_agreement"] == 1.0
    assert vs_eager["mean_cosine"] >= 0.999
    # and quantization itself costs something measurable against fp32 (the check is not vacuous)
    assert quality["mean_cosine"] < vs_eager["mean_cosine"]
