"""Qualcomm / MediaTek export without vendor SDKs: clear messages, no network, lowering-ready output."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from bluelm_edge.export import archive, contract, lower_mediatek, lower_qnn
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
    assert lower_qnn.missing_sdk() is None


def test_qnn_sdk_unset_message(monkeypatch):
    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)
    assert lower_qnn.missing_sdk().startswith("Qualcomm QNN SDK not found (QNN_SDK_ROOT is not set)")
    import os

    assert os.environ["QNN_SDK_ROOT"] == ""  # set so the wheel never downloads an SDK


def test_mediatek_message_names_the_packages():
    assert lower_mediatek.missing_sdk().startswith(
        "MediaTek NeuroPilot SDK not found (python package mtk_converter and mtk_neuron not importable)")


@pytest.mark.slow
def test_qnn_export_without_sdk(tmp_path, monkeypatch):
    """Quantize with QnnQuantizer, save program.pt2 + coverage.json, no socket opened, clear message."""
    from bluelm_edge.export.pipeline import ExportOptions, run_export

    monkeypatch.setenv("QNN_SDK_ROOT", "")
    attempts = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: attempts.append(addr))
    monkeypatch.setattr(socket, "create_connection", lambda addr, *a, **k: attempts.append(addr))
    out = tmp_path / "qnn"
    opts = ExportOptions(preset="tiny", backend="qnn", soc="SM8650", max_context=128, out=out, samples=2)
    result = run_export(opts, show=False)
    assert attempts == []
    assert result.missing.startswith("Qualcomm QNN SDK not found")
    assert verify_bundle(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["lowered"], manifest["soc"], manifest["recipe"]) == (False, "SM8650", "qnn-16a4w")
    cov = json.loads((out / contract.COVERAGE_JSON).read_text())
    assert cov["checked"] is True and set(cov["methods"]) == set(contract.METHODS)
    ops = cov["methods"]["text_decoder"]["ops"]
    print("coverage:", cov["supported_fraction"], cov["unsupported"], sorted(ops))
    assert sum(c for op, c in ops.items() if "index_copy" in op or "index_put" in op) == 8  # k, v x 4 layers
    assert any(op.startswith("quantized_decomposed.") for op in ops)
    assert cov["unsupported"] == sorted({o for m in cov["methods"].values() for o in m["unsupported"]})
    progs, info = archive.load_programs(out / contract.PROGRAM_PT2)
    assert set(progs) == set(contract.METHODS) and info["soc"] == "SM8650"
    assert info["constants"]["get_max_seq_len"] == 128
    emb = progs["token_embedding"].module()(torch.tensor([[50]]))  # NPU graphs are static one-token
    assert emb.shape == (1, 1, 256) and info["constants"]["enable_dynamic_shape"] is False
