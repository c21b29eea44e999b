"""Piecewise materialisation + quantization (`export.scale`) against the whole-model path, on `tiny`."""

from __future__ import annotations

import pytest
import torch

from bluelm_edge.export.scale import materialize_, materialize_and_quantize, pieces
from bluelm_edge.model.checkpoint import build_model
from bluelm_edge.model.config import preset
from bluelm_edge.quant.recipes import get_recipe
from bluelm_edge.quant.xnnpack import quantize_xnnpack_

RECIPE = "xnnpack-8da4w"


def _config(tied: bool):
    cfg = preset("tiny")
    cfg.decoder.tie_embeddings = tied
    return cfg.validate()


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.dequantize() if type(t) is not torch.Tensor and type(t) is not torch.nn.Parameter else t.detach()


def test_pieces_cover_every_parameter_once():
    model = build_model(_config(False))
    names = [n for group in pieces(model) for n in group]
    assert len(names) == len(set(names))
    assert ["decoder.layers.0"] in pieces(model) and ["vision.layers.2"] in pieces(model)
    assert pieces(model)[-1] == ["decoder", "decoder.embed", "decoder.norm", "decoder.head"]
    params = dict(model.named_parameters())
    covered = {p for p in params if any(p.startswith(n + ".") for n in names if "." in n or n == "adapter")}
    covered |= {"vision.pos_embed"}  # a direct parameter of the vision part (its rest group)
    assert covered == set(params)


@pytest.mark.parametrize("tied", [True, False])
def test_piecewise_matches_whole_model(tied):
    recipe = get_recipe(RECIPE)
    whole = quantize_xnnpack_(materialize_(build_model(_config(tied)), seed=3), recipe)
    meta_left: list[int] = []

    def count(_names):
        meta_left.append(sum(p.is_meta for p in model.parameters()))

    model = build_model(_config(tied))
    materialize_and_quantize(model, recipe, seed=3, on_piece=count)
    # built piece by piece: after the first piece almost everything is still on meta, at the end nothing
    assert meta_left[0] > 0 and meta_left[-1] == 0 and meta_left == sorted(meta_left, reverse=True)
    assert len(meta_left) == len(pieces(model))
    a, b = whole.state_dict(), model.state_dict()
    assert a.keys() == b.keys()
    quantized = [k for k in a if type(a[k]) is not torch.Tensor]
    assert "decoder.layers.0.mlp.gate.weight" in quantized and "decoder.head.weight" in quantized
    assert "vision.layers.0.attn.q.weight" in quantized and "decoder.embed.weight" in quantized
    for k in a:
        assert type(a[k]) is type(b[k]), k
        assert torch.equal(_plain(a[k]), _plain(b[k])), k
    assert (model.decoder.head.weight is model.decoder.embed.weight) is False  # quantized separately
    embeds = torch.randn(1, 5, whole.cfg.decoder.dim, generator=torch.Generator().manual_seed(0))
    pos = torch.arange(5)
    with torch.no_grad():
        assert torch.equal(whole.text_decoder(embeds, pos), model.text_decoder(embeds, pos))


def test_init_is_seeded_and_shaped():
    a = materialize_(build_model(_config(True)), seed=0)
    b = materialize_(build_model(_config(True)), seed=1)
    assert not torch.equal(a.decoder.layers[0].attn.q.weight, b.decoder.layers[0].attn.q.weight)
    w = a.decoder.layers[0].mlp.up.weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001
    assert torch.equal(a.decoder.norm.weight, torch.ones_like(a.decoder.norm.weight))
    assert torch.equal(a.vision.layers[0].attn.q.bias, torch.zeros_like(a.vision.layers[0].attn.q.bias))
    assert a.decoder.head.weight is a.decoder.embed.weight  # tied preset stays tied
    assert not any(t.is_meta for t in list(a.parameters()) + list(a.buffers()))
