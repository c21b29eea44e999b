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


@pytest.fixture(scope="module")
def quant_export(tmp_path_factory):
    opts = ExportOptions(preset="tiny", recipe="xnnpack-8da4w", max_context=128,
                         out=tmp_path_factory.mktemp("quant") / "b", samples=4, benchmark=False)
    return run_export(opts, show=False)


def test_plan_arithmetic_is_the_quantized_pte_but_its_graphs(quant_export):
    """`plan`'s bytes (4-bit + a 16-bit scale per 32, 8-bit parts) vs the file: graphs + metadata apart."""
    from bluelm_edge.cli.plan import plan_report

    r = plan_report(quant_export.out, None, None, None, ["cpu"])
    assert r["recipe"] == "xnnpack-8da4w"
    assert 0 < r["program_file_bytes"] - r["program_bytes"] < 600_000


def test_quantized_pte_matches_quantized_eager(quant_export):
    result = quant_export
    assert verify_bundle(result.out) == []
    quality = result.summary()["quality"]
    assert quality["measured_on"] == "lowered .pte" and quality["samples"] >= 4
    vs_eager = quality["vs_quantized_eager"]
    assert vs_eager["top1_agreement"] == 1.0
    assert vs_eager["mean_cosine"] >= 0.999
    # and quantization itself costs something measurable against fp32 (the check is not vacuous)
    assert quality["mean_cosine"] < vs_eager["mean_cosine"]
