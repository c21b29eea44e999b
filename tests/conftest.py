"""Test-wide settings. Fixtures that several test files share live here (session scope)."""

from __future__ import annotations

import os

import pytest

# The executorch wheel tries to DOWNLOAD the QNN SDK when QNN_SDK_ROOT is unset; tests never
# touch the network. A real SDK for the lowering tests can be given as BLUELM_TEST_QNN_SDK_ROOT.
os.environ["QNN_SDK_ROOT"] = os.environ.get("BLUELM_TEST_QNN_SDK_ROOT", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fp32_export(tmp_path_factory):
    """ONE fp32 XNNPACK export of the seeded tiny preset (context 256), shared by every test file:
    (ExportResult, eager model with the same weights, config, tokenizer). Lowering takes minutes."""
    from bluelm_edge.export import programs
    from bluelm_edge.export.pipeline import ExportOptions, load_source, run_export

    out = tmp_path_factory.mktemp("export") / "bundle"
    opts = ExportOptions(preset="tiny", recipe="fp32", max_context=256, out=out, benchmark=False)
    result = run_export(opts, show=False)
    model, config, tokenizer, _ = load_source(ExportOptions(preset="tiny"))  # the same seeded weights
    programs.set_max_context(model, 256)
    return result, model, config, tokenizer
