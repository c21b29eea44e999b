"""Qualcomm / MediaTek export without vendor SDKs: clear messages, no network, lowering-ready output."""

from __future__ import annotations

import json

import pytest
import torch

from bluelm_edge import contract
from bluelm_edge.export import archive, lower_mediatek, lower_qnn
from bluelm_edge.export.bundle import verify_bundle


def test_qnn_sdk_folder_without_libraries_names_the_library(tmp_path, monkeypatch):
    monkeypatch.setenv("QNN_SDK_ROOT", str(tmp_path))
    msg = lower_qnn.missing_sdk()
    assert msg.startswith(f"QNN SDK at {tmp_path} is missing lib/x86_64-linux-clang/libQnnHtp.so")
    lib = tmp_path / "lib" / "x86_64-linux-clang"
    lib.mkdir(parents=True)
    (lib / "libQnnHtp.so").write_bytes(b"")
    assert "missing lib/x86_64-linux-clang/libQnnSystem.so" in lower_qnn.missing_sdk()
    (lib / "libQnnSystem.so").write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/lib")
    assert lower_qnn.missing_sdk().startswith(f"QNN SDK at {tmp_path} is not on the library path: "
                                              f"export LD_LIBRARY_PATH={lib}:$LD_LIBRARY_PATH")
    monkeypatch.setenv("LD_LIBRARY_PATH", f"/usr/lib:{lib}")
    assert lower_qnn.missing_sdk() is None


def test_qnn_sdk_unset_message(monkeypatch):
    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)
    assert lower_qnn.missing_sdk().startswith("Qualcomm QNN SDK not found (QNN_SDK_ROOT is not set)")
    import os

    assert os.environ["QNN_SDK_ROOT"] == ""  # set so the wheel never downloads an SDK


def test_mediatek_message_names_the_packages():
    assert lower_mediatek.missing_sdk().startswith(
        "MediaTek NeuroPilot SDK not found (python package mtk_converter and mtk_neuron not importable)")


def _tiny_archive(path, **info):
    ep = torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),))
    base = {"backend": "qnn", "soc": "SM8650", **archive.versions(contract.NPU_GRAPH_CONTRACT)}
    archive.save_programs(path, {"decode": ep}, {"get_max_seq_len": 8}, {**base, **info})
    return path


def test_archive_refuses_other_contracts_and_versions(tmp_path):
    progs, info = archive.load_programs(_tiny_archive(tmp_path / "ok.pt2"))
    assert set(progs) == {"decode"} and info["graph_contract"] == contract.NPU_GRAPH_CONTRACT
    with pytest.raises(archive.ArchiveError, match="graph contract bluelm-static-kv/1 is not bluelm-static-kv/2"):
        archive.load_programs(_tiny_archive(tmp_path / "old.pt2", graph_contract="bluelm-static-kv/1"))
    with pytest.raises(archive.ArchiveError, match=r"written for ExecuTorch 0\.7\.0, this is 1\.5"):
        archive.load_programs(_tiny_archive(tmp_path / "et.pt2", executorch="0.7.0"))
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    with pytest.raises(archive.ArchiveError, match="not a lowering-ready program archive"):
        archive.load_programs(tmp_path / "junk.pt2")


@pytest.mark.slow
def test_qnn_export_without_sdk(qnn_bundle):
    """Quantize the static program with QnnQuantizer, save program.pt2 + coverage.json, clear message."""
    out, result = qnn_bundle
    assert result.missing.startswith("Qualcomm QNN SDK not found")
    assert verify_bundle(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["lowered"], manifest["soc"], manifest["recipe"]) == (False, "SM8650", "qnn-16a4w")
    assert (manifest["runner"], manifest["graph_contract"], manifest["prefill_chunk"]) == (
        contract.NPU_RUNNER, contract.NPU_GRAPH_CONTRACT, 16)
    cov = json.loads((out / contract.COVERAGE_JSON).read_text())
    assert cov["checked"] is True and set(cov["methods"]) == set(contract.NPU_METHODS)
    ops = cov["methods"][contract.DECODE]["ops"]
    assert not [op for op in ops if "index_copy" in op or "index_put" in op]  # the cache is graph I/O
    assert ops.get("aten.cat.default", 0) >= 8  # cache + new, k and v x 4 layers (+ RoPE's rotate-half)
    assert any(op.startswith("quantized_decomposed.") for op in ops)
    progs, info = archive.load_programs(out / contract.PROGRAM_PT2)
    assert set(progs) == set(contract.NPU_METHODS) and info["soc"] == "SM8650"
    assert info["constants"]["get_prefill_chunk"] == 16 and info["constants"]["get_cache_len"] == 64
    emb = progs["token_embedding"].module()(torch.zeros(1, 16, dtype=torch.long))
    assert emb.shape == (1, 16, 256) and info["constants"]["enable_dynamic_shape"] is False
    q = result.quality
    assert q["samples"] >= 1 and q["mean_cosine"] > 0.98, q


@pytest.mark.slow
def test_program_holds_no_fp32_copies(qnn_bundle):
    """Unused fp32 weights are stripped: every state tensor of the decoder graphs is read by a node."""
    out, _ = qnn_bundle
    progs, _ = archive.load_programs(out / contract.PROGRAM_PT2)
    for name in (contract.PREFILL, contract.DECODE):
        ep = progs[name]
        used = {n.name for n in ep.graph.nodes if n.op == "placeholder" and n.users}
        state = [s for s in ep.graph_signature.input_specs if s.kind.name != "USER_INPUT"]
        assert state and all(s.arg.name in used for s in state)
        floats = [k for k, t in {**ep.state_dict, **ep.constants}.items()
                  if t.dtype == torch.float32 and t.dim() == 2 and not k.startswith(("_scale", "_zero_point"))]
        assert not floats, floats  # the linears are stored quantized; 2-D floats are block scales only


@pytest.mark.slow
def test_archive_stores_the_decoder_weights_once(qnn_bundle):
    """decode reads prefill's weight tensors: the archive holds them once (decode's member has
    one-element placeholders, `shared` names the source) and loading restores the sharing."""
    import zipfile

    out, _ = qnn_bundle
    progs, info = archive.load_programs(out / contract.PROGRAM_PT2)
    shared = info["shared"][contract.DECODE]
    prefill = {t.data_ptr() for t in progs[contract.PREFILL].state_dict.values()}
    decode = progs[contract.DECODE].state_dict
    assert set(shared) == set(decode) and all(src == contract.PREFILL for src, _ in shared.values())
    assert all(t.data_ptr() in prefill and t.stride() == t.contiguous().stride() for t in decode.values())
    codes = sum(t.numel() for t in decode.values() if t.dtype == torch.int8)
    with zipfile.ZipFile(out / contract.PROGRAM_PT2) as zf:
        size = {i.filename: i.file_size for i in zf.infolist()}
    assert size["decode.pt2"] < size["prefill.pt2"] - codes  # not one int8 weight stored twice


@pytest.mark.slow
def test_lower_from_a_fresh_process_runs_the_passes_then_names_the_sdk(qnn_bundle, tmp_path):
    """`bluelm-edge lower` in another process: program.pt2 loads (quantized ops registered), the QNN
    passes run, and the run ends with one line naming what is missing (exit 3, no traceback)."""
    import os
    import shutil
    import subprocess
    import sys

    out, _ = qnn_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(out, copy)
    env = {**os.environ, "QNN_SDK_ROOT": ""}
    proc = subprocess.run([sys.executable, "-m", "bluelm_edge", "lower", str(copy)], env=env,
                          capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode == 3, lines[-5:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "qnn passes up to the SDK done" in proc.stdout + proc.stderr
    assert lines[-1] == ("error: Qualcomm QNN SDK not found (QNN_SDK_ROOT is not set): install Qualcomm AI Engine "
                         f"Direct, export QNN_SDK_ROOT=<sdk>, then run `bluelm-edge lower {copy}`")


def test_qnn_coverage_counts_the_way_qnn_partitions():
    """A QnnQuantizer-quantized linear + cat + softmax: QNN's passes turn the linear into a 1x1
    convolution (HTP's faster form, as upstream) between its reshapes, the q/dq pairs are folded
    (FoldQDQ), every op has a QNN builder: one partition, no CPU fallback."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from bluelm_edge.export import coverage
    from bluelm_edge.quant import vendor

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, x, cache):
            return torch.softmax(torch.cat([cache, self.lin(x)], 1) * 2.0, -1)

    args = (torch.randn(1, 4, 8), torch.randn(1, 4, 8))
    quantizer = vendor.qnn_quantizer_module().QnnQuantizer(soc_model=vendor.qnn_chipset("SM8650"), strict=False)
    prepared = prepare_pt2e(torch.export.export(Step(), args).module(), quantizer)
    prepared(*args)
    ep = torch.export.export(convert_pt2e(prepared), args)
    edge = lower_qnn.edge_programs({"decode": ep}, "SM8650")
    cov = coverage.report("qnn", edge, coverage.qnn_supported_ops(), coverage.qnn_folded_ops())
    m = cov["methods"]["decode"]
    assert m["ops"]["aten.convolution.default"] == 1 and m["folded_qdq"] == 3  # the linear as a 1x1 conv
    assert m["ops"]["aten.view_copy.default"] == 3 and m["ops"]["aten.permute_copy.default"] == 2
    assert (m["npu_ops"], m["cpu_ops"], m["partitions"]) == (9, 0, 1)
    assert cov["cpu_fallbacks_in_decoder"] == 0 and cov["supported_fraction"] == 1.0
    delegable = coverage.qnn_supported_ops() | coverage.qnn_folded_ops()
    cpu_split = coverage.partitions(edge["decode"], delegable - {"aten.mul.Tensor"})
    assert cpu_split > 1  # a CPU op between linear/cat and softmax cuts the graph


@pytest.mark.slow
def test_a_cpu_fallback_inside_the_decoder_is_an_export_error(qnn_bundle, tmp_path, monkeypatch):
    """Were QNN unable to run one decoder op (here: its concatenation), the export stops with one
    line naming the op and the methods, and writes nothing, instead of reporting a percentage."""
    from bluelm_edge.errors import FallbackError
    from bluelm_edge.export import coverage
    from bluelm_edge.export.pipeline import ExportOptions, lower_into

    out, _ = qnn_bundle
    progs, info = archive.load_programs(out / contract.PROGRAM_PT2)
    real = coverage.qnn_supported_ops()
    assert "aten.cat.default" in real
    monkeypatch.setenv("QNN_SDK_ROOT", "")
    monkeypatch.setattr(coverage, "qnn_supported_ops", lambda: real - {"aten.cat.default"})
    folder = tmp_path / "lowering"
    folder.mkdir()
    opts = ExportOptions(preset="tiny", backend="qnn", soc="SM8650", max_context=64, prefill_chunk=16)
    with pytest.raises(FallbackError) as err:
        lower_into(folder, opts, progs, info["constants"])
    msg = str(err.value)
    assert "\n" not in msg and "aten.cat.default" in msg and "decode" in msg and "prefill" in msg
    assert "SM8650" in msg and not any(folder.iterdir())
