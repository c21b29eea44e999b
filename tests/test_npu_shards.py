"""Decoder shards (QNN contexts / MediaTek chunks): where the cuts go, how many `auto` picks from the
SoC catalogue, the compile specs upstream uses, and `lower` reaching the SDK's loader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from bluelm_edge import contract
from bluelm_edge.errors import UsageError
from bluelm_edge.export import archive, coverage, lower_mediatek, lower_qnn, shards


def test_layers_split_evenly_and_bad_counts_are_one_line():
    assert shards.layer_counts(28, 3) == [10, 9, 9] and shards.first_layers(28, 3) == [10, 19]
    assert shards.layer_counts(4, 2) == [2, 2] and shards.first_layers(4, 1) == []
    assert shards.parse("auto") == "auto" and shards.parse("3") == 3
    with pytest.raises(UsageError, match="give a positive number of shards or 'auto'"):
        shards.parse("0")
    with pytest.raises(UsageError, match="the decoder has 4 layers; a shard holds at least one, use at most 4"):
        shards.check(5, 4)


def test_catalogue_budgets_and_compile_specs():
    """HTP chips carry a per-context budget, MediaTek's is unknown (auto keeps one chunk); the QNN
    spec has multi contexts only when split, weight sharing from V73, shared buffers, MHA-to-SHA
    for the decoder; MediaTek's spec is upstream's GNO set with a shared-blob key per method group."""
    from executorch.backends.qualcomm.serialization.qc_schema_serialize import flatbuffer_to_option

    from bluelm_edge.socs import load_socs

    socs = load_socs()
    assert socs["SM8650"].context_budget_mb == 1024 and socs["mt6989"].context_budget_mb is None
    opt = flatbuffer_to_option(lower_qnn.compile_spec("SM8650", 2, decoder=True)[0].value)
    htp = opt.backend_options.htp_options
    assert (htp.use_multi_contexts, htp.use_weight_sharing, opt.shared_buffer, opt.use_mha2sha) == (True,) * 4
    opt = flatbuffer_to_option(lower_qnn.compile_spec("SM8450", 1)[0].value)  # V69: no weight sharing
    htp = opt.backend_options.htp_options
    assert (htp.use_multi_contexts, htp.use_weight_sharing, opt.use_mha2sha) == (False, False, False)
    spec = {s.key: s.value for s in lower_mediatek.compile_spec("mt6989", contract.DECODE)}
    assert spec["platform-config"] == b"mt6989" and spec["gno"] == b"LTS" and "gno-non-4d-tiling" in spec
    assert spec["ExtractSharedBlobKey"] == b"bluelm_decoder"
    assert "ExtractSharedBlobKey" not in {s.key for s in lower_mediatek.compile_spec("mt6989", contract.PREFILL, 2)}


@pytest.fixture(scope="module")
def qnn_program(qnn_bundle):
    out, _ = qnn_bundle
    return archive.load_programs(out / contract.PROGRAM_PT2)


@pytest.mark.slow
def test_weights_are_counted_at_their_stored_width_and_auto_fits_the_budget(qnn_program):
    """Per-layer bytes: layer 0's down projection is 16a8w (the recipe's sensitive layer), layers 1
    and 2 are alike; 4-bit codes held in int8 count half a byte. `auto` picks the fewest shards
    whose every shard fits the budget."""
    progs, info = qnn_program
    prefill = progs[contract.PREFILL]
    by = shards.weight_bytes_by_layer(prefill)
    assert set(by) == {0, 1, 2, 3, None} and by[1] == by[2] and by[0] > by[1]
    held = sum(t.numel() * t.element_size() for t in prefill.state_dict.values())
    codes = sum(t.numel() for t in prefill.state_dict.values() if t.dtype == torch.int8)
    assert held - codes / 2 <= sum(by.values()) < held  # most codes are 4-bit
    two = max(shards.shard_bytes(by, 4, 2))
    assert shards.shard_bytes(by, 4, 1) == [sum(by.values())]
    assert shards.auto(prefill, 4, two / 2**20) == 2 and shards.auto(prefill, 4, (two - 1) / 2**20) > 2
    assert shards.resolve("auto", prefill, 4, "SM8650") == 1  # 2 MB of weights: one context
    assert shards.resolve("auto", prefill, 4, "mt6989") == 1 and shards.resolve(3, prefill, 4, "SM8650") == 3


@pytest.mark.slow
def test_two_shards_cut_the_decoder_between_whole_layers(qnn_bundle, qnn_program, tmp_path, monkeypatch):
    """--shards 2 on the QNN export: the metadata and coverage say 2, each decoder method is two
    partitions with one boundary after layer 1 and no CPU op; the vision encoder stays whole. The
    same split on MediaTek's edge graphs. QNN's preprocess passes then split every attention into
    single heads (8 heads x 2 matmuls x 4 layers) with a builder for every op."""
    from bluelm_edge.export.pipeline import ExportOptions, lower_into

    progs, info = qnn_program
    monkeypatch.setenv("QNN_SDK_ROOT", "")
    opts = ExportOptions(preset="tiny", backend="qnn", soc="SM8650", max_context=64, prefill_chunk=16, shards=2)
    meta = dict(info["constants"])
    lower_into(tmp_path, opts, progs, meta)
    cov = json.loads((tmp_path / contract.COVERAGE_JSON).read_text())
    assert cov["shards"] == {"count": 2, "requested": 2, "layers_per_shard": [2, 2]}
    for name in (contract.PREFILL, contract.DECODE):
        m = cov["methods"][name]
        assert (m["partitions"], m["shard_boundaries"], m["cpu_ops"], m["unsupported"]) == (2, 1, 0, [])
    assert cov["methods"][contract.VISION_ENCODER]["partitions"] == 1 and cov["cpu_fallbacks_in_decoder"] == 0
    saved, saved_info = archive.load_programs(tmp_path / contract.PROGRAM_PT2)
    assert saved_info["constants"]["get_num_shards"] == 2
    decoder = {n: saved[n] for n in (contract.PREFILL, contract.DECODE)}
    edge = lower_qnn.edge_programs(decoder, "SM8650", 4, 2)
    for ep in edge.values():
        nodes = list(ep.graph.nodes)
        cut = [i for i, n in enumerate(nodes) if coverage.op_name(n) == shards.FALLBACK]
        assert len(cut) == 1 and shards.layer_of(nodes[cut[0]].args[0]) == 1
        assert {shards.layer_of(n) for n in nodes[:cut[0]]} - {None} == {0, 1}
        assert {shards.layer_of(n) for n in nodes[cut[0]:]} - {None} == {2, 3}
    for ep in lower_qnn.preprocess(edge).values():
        ops = coverage.graph_ops(ep)
        assert ops["aten.matmul.default"] == 8 * 2 * 4 and "aten.expand_copy.default" not in ops
        assert set(ops) - coverage.qnn_supported_ops() == {shards.FALLBACK}
    mtk = lower_mediatek.edge_programs(decoder, "mt6989", 4, 2)
    assert shards.boundaries(mtk.values()) == [1, 1]


@pytest.mark.slow
def test_lower_with_a_stand_in_sdk_reaches_the_sdk_loader(qnn_bundle, tmp_path):
    """`bluelm-edge lower` against an SDK folder whose libraries are empty files: every step up to
    the SDK runs, the QNN manager tries to load libQnnHtp.so, and the run ends with one line saying
    why it did not load (exit 3, no traceback, the bundle left as it was)."""
    out, _ = qnn_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(out, copy)
    sdk = tmp_path / "sdk"
    lib = sdk / lower_qnn.HOST_LIB_DIR
    lib.mkdir(parents=True)
    for name in ("libQnnHtp.so", "libQnnSystem.so"):
        (lib / name).write_bytes(b"")
    env = {**os.environ, "QNN_SDK_ROOT": str(sdk), "LD_LIBRARY_PATH": str(lib)}
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    proc = subprocess.run([sys.executable, "-m", "bluelm_edge", "lower", str(copy)], env=env,
                          capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode == 3, lines[-5:]
    assert "Traceback" not in proc.stderr and "qnn passes up to the SDK done" in proc.stdout + proc.stderr
    assert lines[-1].startswith(f"error: the QNN SDK at {sdk} did not load ({lib}/libQnnHtp.so: file too short)")
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


@pytest.mark.slow
def test_mediatek_export_in_two_chunks_then_lower_up_to_the_sdk(tmp_path, monkeypatch):
    """`export --backend mediatek --shards 2` then `lower`: the manifest and coverage say 2 chunks,
    each decoder method carries one boundary, and `lower` runs every step before the converter
    (weights unfolded as upstream's `fold_quantize=False`, `to_edge`, the chunk split) and ends
    with one line naming the missing SDK packages; the bundle is left as it was."""
    from bluelm_edge.export.finish import lower_bundle
    from bluelm_edge.export.pipeline import ExportOptions, SdkMissingError, run_export

    monkeypatch.setenv("QNN_SDK_ROOT", "")
    out = tmp_path / "mtk"
    result = run_export(ExportOptions(preset="tiny", backend="mediatek", max_context=64, out=out, samples=2,
                                      prefill_chunk=16, shards=2), show=False)
    assert result.missing.startswith("MediaTek NeuroPilot SDK not found")
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["soc"], manifest["shards"], manifest["runner"]) == ("mt6989", 2, contract.NPU_RUNNER)
    cov = json.loads((out / contract.COVERAGE_JSON).read_text())
    assert cov["checked"] is False and cov["shards"]["layers_per_shard"] == [2, 2]
    assert {n: m["shard_boundaries"] for n, m in cov["methods"].items()} == {
        contract.VISION_ENCODER: 0, contract.TOKEN_EMBEDDING: 0, contract.PREFILL: 1, contract.DECODE: 1}
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SdkMissingError, match=r"mtk_converter and mtk_neuron not importable.*bluelm-edge lower "):
        lower_bundle(out, show=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
