"""The model modules: cached decoding vs full recomputation, chunked prefill, image splicing, export."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bluelm_edge.errors import DataError
from bluelm_edge.model.adapter import Adapter
from bluelm_edge.model.config import tiny
from bluelm_edge.model.decoder import MASK_VALUE
from bluelm_edge.model.vlm import BlueLM


@pytest.fixture(scope="module")
def model() -> BlueLM:
    torch.manual_seed(0)
    return BlueLM(tiny()).eval()


def _ids(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(11, 1024, (1, n), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_cached_decoding_equals_full_recomputation(model):
    embeds = model.token_embedding(_ids(20))
    full = model.decoder.forward_full(embeds)  # [1, 20, V]
    model.reset_cache()
    last = [model.text_decoder(embeds[:, :8], torch.arange(8))]
    last += [model.text_decoder(embeds[:, i : i + 1], torch.tensor([i])) for i in range(8, 20)]
    assert full.abs().max() > 0.1
    assert (torch.stack(last, 1) - full[:, 7:]).abs().max() <= 1e-5


@torch.no_grad()
def test_chunked_prefill_equals_one_prefill(model):
    embeds = model.token_embedding(_ids(15, seed=1))
    model.reset_cache()
    one = model.decoder(embeds, torch.arange(15))
    model.reset_cache()
    a = model.decoder(embeds[:, :9], torch.arange(9))
    b = model.decoder(embeds[:, 9:], torch.arange(9, 15))
    assert (torch.cat([a, b], 1) - one).abs().max() <= 1e-5


@torch.no_grad()
def test_stale_cache_slots_beyond_positions_are_masked(model):
    embeds = model.token_embedding(_ids(6, seed=2))
    model.reset_cache()
    clean = model.text_decoder(embeds, torch.arange(6))
    model.decoder(model.token_embedding(_ids(30, seed=3)), torch.arange(30))  # fill slots 0..29
    dirty = model.text_decoder(embeds, torch.arange(6))  # overwrites 0..5, 6..29 hold junk
    assert (clean - dirty).abs().max() <= 1e-5
    assert MASK_VALUE > -float("inf")


def test_vision_encoder_shape(model):
    cfg = model.cfg
    with torch.no_grad():
        out = model.vision_encoder(torch.randn(3, 3, 64, 64))
    assert cfg.image_tokens_per_tile == 16
    assert out.shape == (1, 3 * 16, cfg.decoder.dim)


def test_adapter_space_to_depth_layout_and_odd_grid_padding():
    ad = Adapter(vision_width=2, merge=2, hidden_dim=4, out_dim=4)
    tokens = torch.arange(3 * 3 * 2, dtype=torch.float32).reshape(1, 9, 2)  # 3x3 grid, W=2
    merged = ad.merge_tokens(tokens)  # grid padded to 4x4 -> 2x2 tokens of 4*2 features
    assert merged.shape == (1, 4, 8)
    # token 0 = patches (0,0),(0,1),(1,0),(1,1) = flat 0,1,3,4; token 1 = (0,2),pad,(1,2),pad
    assert merged[0, 0].tolist() == [0, 1, 2, 3, 6, 7, 8, 9]
    assert merged[0, 1].tolist() == [4, 5, 0, 0, 10, 11, 0, 0]
    assert merged[0, 3].tolist() == [16, 17, 0, 0, 0, 0, 0, 0]


@torch.no_grad()
def test_forward_train_with_image_equals_cached_path(model):
    cfg = model.cfg
    n = cfg.image_tokens_per_tile
    t = cfg.tokens
    ids = torch.cat([_ids(3, 4), torch.tensor([[t.im_start] + [t.image] * n + [t.im_end]]), _ids(5, 5)], 1)
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    train = model.forward_train(ids, pixels, ids == t.image)  # [1, L, V]
    embeds = model.token_embedding(ids)
    start = 4  # after 3 text tokens and <im_start>
    embeds[:, start : start + n] = model.vision_encoder(pixels)
    model.reset_cache()
    cached = model.decoder(embeds, torch.arange(ids.shape[1]))
    assert (train - cached).abs().max() <= 1e-5
    no_image = model.forward_train(ids)
    assert (no_image - train).abs().max() > 1e-3  # the image really changed the logits


def test_forward_train_rejects_a_placeholder_count_mismatch(model):
    ids = torch.full((1, 5), model.cfg.tokens.image)
    with pytest.raises(DataError, match="5 <image> placeholder tokens but 16 image features"):
        model.forward_train(ids, torch.zeros(1, 3, 64, 64))


def test_forward_train_batched_gradients_flow(model):
    ids = torch.cat([_ids(7, 7), _ids(7, 8)])
    train_model = BlueLM(model.cfg)
    logits = train_model.forward_train(ids)
    assert logits.shape == (2, 7, 1024)
    logits.logsumexp(-1).mean().backward()
    assert train_model.decoder.layers[0].attn.q.weight.grad.abs().sum() > 0


def test_export_text_decoder_and_vision_encoder():
    torch.manual_seed(0)
    cfg = tiny()
    cfg.decoder = dataclasses.replace(cfg.decoder, layers=1, max_seq_len=64)
    cfg.vision = dataclasses.replace(cfg.vision, layers=1)
    m = BlueLM(cfg).eval()

    class TextDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, embeds, positions):
            return self.m.text_decoder(embeds, positions)

    class VisionEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, pixels):
            return self.m.vision_encoder(pixels)

    seq = torch.export.Dim("seq", min=1, max=64)
    embeds = torch.randn(1, 5, cfg.decoder.dim)
    with torch.no_grad():
        ep = torch.export.export(
            TextDecoder(), (embeds, torch.arange(5)), dynamic_shapes=({1: seq}, {0: seq}), strict=False
        )
        m.reset_cache()
        eager = [m.text_decoder(embeds[:, :3], torch.arange(3)), m.text_decoder(embeds[:, 3:4], torch.tensor([3]))]
        m.reset_cache()
        run = ep.module()  # keeps the cache in its own buffers between calls
        exported = [run(embeds[:, :3], torch.arange(3)), run(embeds[:, 3:4], torch.tensor([3]))]
        assert max((a - b).abs().max() for a, b in zip(exported, eager, strict=True)) <= 1e-5
        pixels = torch.randn(1, 3, 64, 64)
        ev = torch.export.export(VisionEncoder(), (pixels,), strict=False)
        assert (ev.module()(pixels) - m.vision_encoder(pixels)).abs().max() <= 1e-5
        functional = ep.run_decompositions({})  # what to_edge sees: cache writes become mutations
    mutated = set(functional.graph_signature.buffers_to_mutate.values())
    assert {"m.decoder.layers.0.attn.k_cache", "m.decoder.layers.0.attn.v_cache"} <= mutated
    targets = {str(n.target) for n in functional.graph.nodes if n.op == "call_function"}
    assert not any("repeat_interleave" in t for t in targets)
