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
    from bluelm_edge.export.pipeline import ExportOptions, load_source, run_export
    from bluelm_edge.graphs import methods

    out = tmp_path_factory.mktemp("export") / "bundle"
    opts = ExportOptions(preset="tiny", recipe="fp32", max_context=256, out=out, benchmark=False)
    result = run_export(opts, show=False)
    model, config, tokenizer, _ = load_source(ExportOptions(preset="tiny"))  # the same seeded weights
    methods.set_max_context(model, 256)
    return result, model, config, tokenizer


@pytest.fixture(scope="session")
def geometry_export(tmp_path_factory):
    """ONE fp32 XNNPACK export of the seeded `geometry` preset (the 3B model's 378-px tiles, 196
    image tokens a tile, 1024-token context): (ExportResult, eager model, config, tokenizer)."""
    from bluelm_edge.export.pipeline import ExportOptions, load_source, run_export

    out = tmp_path_factory.mktemp("geometry") / "bundle"
    result = run_export(ExportOptions(preset="geometry", recipe="fp32", out=out, benchmark=False), show=False)
    model, config, tokenizer, _ = load_source(ExportOptions(preset="geometry"))
    return result, model, config, tokenizer


def runner_pieces(run, tokenizer, ours: list[int]) -> list[str]:
    """The pieces ExecuTorch's runner streams through `run(callback)`. Random weights can sample a
    lone UTF-8 lead byte, which the runner's Python callback cannot pass as str (UnicodeDecodeError):
    then the runner must have agreed with us up to that token, and our token there must be such a
    byte (decodes to U+FFFD)."""
    pieces: list[str] = []
    try:
        run(pieces.append)
    except UnicodeDecodeError:
        assert "\ufffd" in tokenizer.decode([ours[len(pieces)]]), (pieces, ours)
    return pieces


@pytest.fixture(scope="session")
def collect_pieces():
    return runner_pieces


@pytest.fixture(scope="session")
def qnn_bundle(tmp_path_factory):
    """ONE QNN export of the seeded tiny preset: static prefill (16 tokens) + decode, context 64;
    no socket is opened (the wheel must not download an SDK)."""
    import socket

    from bluelm_edge.export.pipeline import ExportOptions, run_export

    out = tmp_path_factory.mktemp("qnn") / "qnn"
    opts = ExportOptions(preset="tiny", backend="qnn", soc="SM8650", max_context=64, out=out, samples=2,
                         prefill_chunk=16)
    attempts = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QNN_SDK_ROOT", "")
        mp.setattr(socket.socket, "connect", lambda self, addr: attempts.append(addr))
        mp.setattr(socket, "create_connection", lambda addr, *a, **k: attempts.append(addr))
        result = run_export(opts, show=False)
    assert attempts == []
    return out, result
