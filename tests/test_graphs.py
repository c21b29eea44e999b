"""Graph forms against the eager model: the XNNPACK form (custom_sdpa / update_cache, 4-D-mean
RMSNorm) must give the eager logits to 1e-4 in fp32 and the same greedy tokens, prefilled whole or
in chunks, on every decoder variant the loader accepts and at the real tile geometry."""

from __future__ import annotations

import pytest
import torch

from bluelm_edge.generate import Sampling, generate
from bluelm_edge.graphs.xnnpack import XnnpackForm
from bluelm_edge.model.checkpoint import build_model
from bluelm_edge.model.config import preset
from bluelm_edge.session import EagerDecoder


def _model(name: str = "tiny", seed: int = 0, **decoder):
    cfg = preset(name)
    for key, value in decoder.items():
        setattr(cfg.decoder, key, value)
    torch.manual_seed(seed)
    model = build_model(cfg.validate(), "cpu").eval()
    model.decoder.init_buffers(torch.float32, None)
    return model


VARIANTS = {
    "tiny": {},
    "qk_norm+bias": {"qk_norm": True, "attn_bias": True},
    "embed_norm+mha": {"embed_norm": True, "kv_heads": 8},
    "llama3_rope": {"rope_original_context": 8, "rope_factor": 8.0, "rope_theta": 1e4},
}


@torch.no_grad()
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_xnnpack_form_logits_match_eager(variant):
    model = _model(**VARIANTS[variant])
    form = XnnpackForm(model)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(11, model.cfg.decoder.vocab_size, (1, 37), generator=gen)
    pixels = torch.randn(2, 3, 64, 64, generator=gen)
    assert (form.vision_encoder(pixels) - model.vision_encoder(pixels)).abs().max() < 1e-4
    emb = model.token_embedding(ids)
    assert torch.equal(form.token_embedding(ids), emb)
    ref = model.text_decoder(emb, torch.arange(37))
    got = form.text_decoder(emb, torch.arange(37))
    assert (got - ref).abs().max() < 1e-4
    for step in range(6):  # one-token decode on the in-place cache, positions given as [start]
        nxt = torch.tensor([[int(ref.argmax())]])
        ref = model.text_decoder(model.token_embedding(nxt), torch.tensor([37 + step]))
        got = form.text_decoder(form.token_embedding(nxt), torch.tensor([37 + step]))
        assert (got - ref).abs().max() < 1e-4


@torch.no_grad()
def test_xnnpack_form_chunked_prefill_equals_whole():
    """Chunks of 5 over a filled cache read only [0, start + L): same logits as one call."""
    model = _model()
    form = XnnpackForm(model)
    emb = model.token_embedding(torch.randint(11, 300, (1, 23), generator=torch.Generator().manual_seed(4)))
    whole = form.text_decoder(emb, torch.arange(23))
    form.reset_cache()
    for lo in range(0, 23, 5):
        part = form.text_decoder(emb[:, lo : lo + 5], torch.arange(lo, min(lo + 5, 23)))
    assert (part - whole).abs().max() < 1e-5


@torch.no_grad()
def test_xnnpack_form_greedy_equals_eager_at_real_tile_geometry():
    """One 378-px tile (196 tokens) + text through the form and the eager model: same 16 tokens."""
    model = _model("geometry")
    cfg = model.cfg
    assert cfg.image_tokens_per_tile == 196
    pixels = torch.randn(1, 3, 378, 378, generator=torch.Generator().manual_seed(5))
    ids = [cfg.tokens.bos, cfg.tokens.human, cfg.tokens.im_start] + [cfg.tokens.image] * 196 + [
        cfg.tokens.im_end, 40, 41, 42, cfg.tokens.ai]
    kw = dict(stop_ids=[], images=[pixels], image_token=cfg.tokens.image, sampling=Sampling(max_new_tokens=16))
    eager = generate(EagerDecoder(model), ids, **kw).tokens
    ours = generate(EagerDecoder(XnnpackForm(model), max_prefill=cfg.decoder.max_seq_len), ids, **kw).tokens
    assert ours == eager and len(ours) == 16


@torch.no_grad()
def test_xnnpack_form_shares_the_quantized_tensors():
    """Quantized in place (8da4w), the form runs the same quantized linears: same greedy tokens."""
    from bluelm_edge.quant.recipes import get_recipe
    from bluelm_edge.quant.xnnpack import quantize_xnnpack_

    model = _model()
    quantize_xnnpack_(model, get_recipe("xnnpack-8da4w"))
    form = XnnpackForm(model)
    assert form.layers[0].attn.q is model.decoder.layers[0].attn.q and form.head is model.decoder.head
    ids = list(range(11, 51))
    kw = dict(stop_ids=[], sampling=Sampling(max_new_tokens=12))
    eager = generate(EagerDecoder(model), ids, **kw).tokens
    assert generate(EagerDecoder(form), ids, **kw).tokens == eager
