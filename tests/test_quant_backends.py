"""XNNPACK (torchao), Qualcomm (QnnQuantizer) and MediaTek (NeuropilotQuantizer) quantization of the
tiny model, with no vendor SDK and no network: any connection attempt fails the test."""

from __future__ import annotations

import socket
import sys
import urllib.request

import pytest
import torch
import torch.nn.functional as F

from bluelm_edge.quant.api import quantize_for_backend
from bluelm_edge.quant.calibration import load_set
from bluelm_edge.quant.capture import calibrate_in_memory
from bluelm_edge.quant.recipes import get_recipe
from bluelm_edge.quant.recovery import choose_fallback, fake_quant_weight, layer_sensitivity


class NetworkAttempt(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail on any network attempt (socket connect, create_connection, urlopen)."""

    def refuse(*args, **kwargs):
        raise NetworkAttempt(f"network attempt: {args[1:] if args else kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("QNN_SDK_ROOT", "")


def test_network_guard_is_armed():
    with pytest.raises(NetworkAttempt):
        socket.create_connection(("example.com", 80))


@pytest.fixture(scope="module")
def tiny():
    from bluelm_edge.model.seeded import seeded_model

    model, tok, cfg = seeded_model("tiny", 0)
    calib = calibrate_in_memory(model, tok, cfg, load_set(samples=2))
    return model, cfg, calib


def _last_logits(run, calib):
    s = calib.samples[0]
    with torch.no_grad():
        return run(s["embeds"][:, :32], torch.arange(32))


def _ops(gm) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in gm.graph.nodes:
        if n.op == "call_function":
            out[str(n.target)] = out.get(str(n.target), 0) + 1
    return out


def _reference(model, calib):
    model.reset_cache()
    ref = _last_logits(model.text_decoder, calib)
    model.reset_cache()
    return ref


@pytest.mark.slow
def test_qnn_16a4w_block_quant_kv8_and_sensitive_layers(tiny):
    model, cfg, calib = tiny
    ref = _reference(model, calib)
    q = quantize_for_backend(model, cfg, "qnn-16a4w", calib, soc="SM8650", prefill_chunk=32,
                             methods=["text_decoder"], fallback=["decoder.layers.3.mlp.up"])
    gm = q.modules["text_decoder"]
    ops = _ops(gm)
    # 4 layers x 7 linears = 28: 26 LPBQ blocks, layer 0 down (sensitive) + layer 3 up (fallback) + head per-channel
    assert ops["torchao.dequantize_affine"] == 26
    assert ops["quantized_decomposed.dequantize_per_channel.default"] == 3
    kv8 = [n for n in gm.graph.nodes if n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default
           and n.args[-1] == torch.uint8]
    written = [n for n in kv8 if n.args[0].target == torch.ops.aten.index_copy_.default]
    assert len(written) == 8  # the k and v caches of 4 layers are read back as 8-bit
    assert len(kv8) == 40  # ... and stay 8-bit through the GQA unsqueeze/expand/reshape (+ the value written)
    assert "executorch.backends.mediatek" not in sys.modules or sys.modules["executorch.backends.mediatek"].__doc__
    model.reset_cache()
    out = _last_logits(gm, calib)
    assert F.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.9


def test_qnn_old_htp_falls_back_to_per_channel(tiny):
    from bluelm_edge.quant.pt2e import quantize_graph

    model, _, calib = tiny
    from bluelm_edge.graphs.methods import TextDecoder

    e, p = calib.samples[0]["embeds"][:, :8], torch.arange(8)
    gm = quantize_graph(TextDecoder(model), (e, p), get_recipe("qnn-16a4w"), lambda g: g(e, p), soc="SM8350")
    ops = _ops(gm)
    assert "torchao.dequantize_affine" not in ops
    assert ops["quantized_decomposed.dequantize_per_channel.default"] == 29  # every decoder linear + head
    model.reset_cache()


@pytest.mark.slow
def test_mediatek_a16w4_without_the_sdk_package(tiny):
    model, cfg, calib = tiny
    ref = _reference(model, calib)
    q = quantize_for_backend(model, cfg, "mediatek-a16w4", calib, prefill_chunk=32, methods=["text_decoder"],
                             fallback=[])
    assert "mtk_converter" not in sys.modules
    gm = q.modules["text_decoder"]
    weights = [n for n in gm.graph.nodes
               if n.target == torch.ops.quantized_decomposed.dequantize_per_channel.default]
    ranges = sorted((n.args[4], n.args[5]) for n in weights)
    assert ranges.count((-8, 7)) == 28 and ranges.count((-128, 127)) == 1  # A16W4 linears, A16W8 head
    model.reset_cache()
    out = _last_logits(gm, calib)
    assert F.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.9


def test_xnnpack_8da4w_torchao_in_place(tiny):
    import copy

    from torchao.quantization import quantize_  # noqa: F401  (torchao present)

    model, cfg, calib = tiny
    qmodel = copy.deepcopy(model)
    ref = _reference(model, calib)
    q = quantize_for_backend(qmodel, cfg, "xnnpack-8da4w", calib)
    assert set(q.modules) == {"vision_encoder", "token_embedding", "text_decoder", "forward"}
    w = qmodel.decoder.layers[0].mlp.gate.weight
    assert type(w).__name__ != "Parameter" or type(w.data).__name__ != "Tensor"
    assert "IntxUnpacked" in type(w.data).__name__ or "Intx" in type(w).__name__
    assert qmodel.decoder.layers[0].mlp.gate.weight.block_size[-1] == 32
    qmodel.reset_cache()
    out = _last_logits(qmodel.text_decoder, calib)
    assert F.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.9


def test_fake_quant_matches_int4_rounding():
    w = torch.tensor([[0.7, -0.35, 0.1, 0.0]])
    q = fake_quant_weight(w, 4, None)
    scale = 0.7 / 7
    torch.testing.assert_close(q, torch.tensor([[7, -4, 1, 0]]) * scale)  # round(-3.5) = -4


@pytest.mark.slow
def test_sensitivity_fallback_reduces_the_loss(tiny):
    model, _, calib = tiny
    recipe = get_recipe("mediatek-a16w4")
    ranked = layer_sensitivity(model, recipe, calib, max_samples=2)
    assert len(ranked) == 28 and list(ranked.values()) == sorted(ranked.values(), reverse=True)
    fallback = choose_fallback(model, recipe, calib)
    assert fallback == list(ranked)[:4]
    top, rest = sum(list(ranked.values())[:4]), sum(list(ranked.values())[4:8])
    assert top > rest > 0
