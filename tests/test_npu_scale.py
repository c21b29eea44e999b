"""Piece-by-piece NPU quantization (`export/npu_scale.py`) against the whole-model path, at the real
tile geometry (378-px tiles, 196 tokens a tile): a model built on the meta device and materialised
one piece at a time must give exactly the whole path's quantized program (same weights, same
quantization parameters, bit-identical logits through the host NPU runner), release every fp32
piece it quantized, and keep one copy of the decoder's weights for prefill and decode."""

from __future__ import annotations

import pytest
import torch

from bluelm_edge import contract
from bluelm_edge.export import quant_io
from bluelm_edge.export.npu_host import NpuDecoder
from bluelm_edge.export.npu_quant import quantize_npu
from bluelm_edge.export.npu_scale import quantize_npu_piecewise
from bluelm_edge.export.scale import materialize_, materialize_piece, pieces
from bluelm_edge.graphs.static import export_npu
from bluelm_edge.model.checkpoint import build_model
from bluelm_edge.model.config import preset
from bluelm_edge.quant.calibration import load_set
from bluelm_edge.quant.capture import calibrate_in_memory
from bluelm_edge.text.tokenizer import default_tokenizer

CHUNK, CONTEXT = 64, 320
RECIPES = {"qnn": ("qnn-16a4w", "SM8650"), "mediatek": ("mediatek-a16w4", "mt6989")}


def _config():
    cfg = preset("geometry")
    cfg.decoder.max_seq_len = CONTEXT
    return cfg.validate()


@pytest.fixture(scope="module", params=sorted(RECIPES))
def both(request):
    recipe, soc = RECIPES[request.param]
    cfg, tok, samples = _config(), default_tokenizer(), load_set(None, 6)  # 4 text + 2 image samples
    whole_model = materialize_(build_model(cfg, "meta"), seed=0)
    calib = calibrate_in_memory(whole_model, tok, cfg, samples)
    model = build_model(cfg, "meta")
    for names in pieces(model):
        if not names[0].startswith("decoder.layers."):
            materialize_piece(model, names, seed=0)
    # both captures before any quantizer exists: QnnQuantizer turns PyTorch's MKLDNN off on AMD hosts
    # (executorch's `disable_mkldnn_on_amd`), which moves the vision tower's conv by ~1e-7
    piece_calib = calibrate_in_memory(model.eval(), tok, cfg, samples)  # through the materialised rest only
    whole = quantize_npu(whole_model, recipe, calib, soc=soc, chunk=CHUNK, fallback=[])
    seen = []
    piece = quantize_npu_piecewise(model, recipe, piece_calib, soc=soc, chunk=CHUNK,
                                   materialize=lambda names: materialize_piece(model, names, seed=0),
                                   release=lambda names: [model.get_submodule(n).to("meta") for n in names],
                                   on_piece=seen.append)
    return cfg, calib, piece_calib, export_npu(whole, cfg, CHUNK, 1), export_npu(piece, cfg, CHUNK, 1), model, seen


def test_capture_through_the_materialised_rest_equals_the_whole_model(both):
    _, calib, piece_calib, *_ = both
    assert sum(s["pixels"] is not None for s in calib.samples) == 2
    for a, b in zip(calib.samples, piece_calib.samples, strict=True):
        assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["embeds"], b["embeds"])


@torch.no_grad()
def test_piecewise_program_equals_the_whole_path(both):
    """Same logits bit for bit through 3 prefill chunks (the last padded) and 6 decode steps, and the
    same vision features for a real-geometry tile (196 tokens)."""
    cfg, calib, _, whole, piece, *_ = both
    meta = contract.npu_metadata(cfg, CHUNK, 1, quant_io.fp32_metadata(cfg.decoder.layers))
    a, b = NpuDecoder.from_programs(whole, meta), NpuDecoder.from_programs(piece, meta)
    ids = torch.randint(11, cfg.decoder.vocab_size, (1, 150), generator=torch.Generator().manual_seed(1))
    emb = a.token_embedding(ids)
    assert torch.equal(emb, b.token_embedding(ids))
    la, lb = a.text_decoder(emb, torch.arange(150)), b.text_decoder(emb, torch.arange(150))
    assert a.calls[contract.PREFILL] == 3 and torch.equal(la, lb)
    for step in range(6):
        nxt = a.token_embedding(la.argmax(-1, keepdim=True))
        la, lb = a.text_decoder(nxt, torch.tensor([150 + step])), b.text_decoder(nxt, torch.tensor([150 + step]))
        assert torch.equal(la, lb)
    tile = next(s["pixels"][:1] for s in calib.samples if s["pixels"] is not None)
    fa, fb = a.vision_encoder(tile), b.vision_encoder(tile)
    assert fa.shape == (1, 196, cfg.decoder.dim) and torch.equal(fa, fb)


def test_piecewise_program_has_the_whole_paths_io_encodings(both, request):
    """Layer by layer, prefill's and decode's I/O ranges are joined exactly as in the whole static
    graph: the same encoding for every I/O tensor (QNN: 8-bit caches, 16-bit the rest), so both
    programs declare the same quantized-I/O metadata. (MediaTek programs take fp32 I/O.)"""

    if request.node.callspec.params["both"] != "qnn":
        pytest.skip("quantized graph I/O is QNN's")
    cfg, _, _, whole, piece, *_ = both
    a, b = quant_io.encodings(whole), quant_io.encodings(piece)
    assert a == b and len(a) == 4 + 1 + 4 * cfg.decoder.layers + 2  # + the embedding methods' outputs
    assert quant_io.metadata(a) == quant_io.metadata(b)


def test_every_quantized_piece_was_released(both):
    *_, model, seen = both
    assert seen[0] == [contract.VISION_ENCODER, contract.TOKEN_EMBEDDING]
    assert seen[1:] == [[f"decoder.layers.{i}"] for i in range(model.cfg.decoder.layers)] + [
        ["decoder.norm", "decoder.head"]]
    released = [model.vision, model.adapter, *model.decoder.layers]
    assert all(p.is_meta for m in released for p in m.parameters())


def _held(ep) -> dict[int, torch.Tensor]:
    return {t.data_ptr(): t for t in (*ep.state_dict.values(), *ep.constants.values()) if t.numel()}


def test_decode_reads_the_prefill_weights_and_no_fp32_copies(both):
    """One copy of the decoder's weights (decode's tensors are prefill's) in both paths; the linears
    are held quantized (int8 codes: 1 byte a weight), nothing holds a 2-D fp32 weight."""
    cfg, _, _, whole, piece, *_ = both
    for progs in (whole, piece):
        prefill, decode = _held(progs[contract.PREFILL]), _held(progs[contract.DECODE])
        assert set(decode) <= set(prefill)
        codes = sum(t.numel() for t in prefill.values() if t.dtype == torch.int8 and t.dim() == 2)
        d = cfg.decoder
        linears = d.layers * (d.dim * (d.heads + 2 * d.kv_heads) * d.head_dim + d.heads * d.head_dim * d.dim
                              + 3 * d.dim * d.ffn_dim) + d.vocab_size * d.dim
        assert codes == linears
        fp32 = [t.shape for t in prefill.values() if t.dtype == torch.float32 and t.dim() == 2
                and t.shape[-1] == d.dim]
        assert not fp32, fp32
    assert sum(t.numel() for t in _held(piece[contract.PREFILL]).values()) == sum(
        t.numel() for t in _held(whole[contract.PREFILL]).values())


@torch.no_grad()
def test_unfolded_weights_give_the_same_program(both):
    """`lower_mediatek.unfold_weights` (upstream's `fold_quantize=False` form for the NeuroPilot
    converter): no integer weight codes left, each weight an fp32 tensor re-quantized in the graph,
    decode's weights the same fp32 tensors as prefill's, and logits bit-identical to the folded program."""
    from bluelm_edge.export.lower_mediatek import unfold_all

    cfg, _, _, _, piece, *_ = both
    steps = {n: piece[n] for n in (contract.PREFILL, contract.DECODE)}
    unfolded = unfold_all(steps)
    for ep in unfolded.values():
        assert not [k for k, t in ep.state_dict.items() if not t.is_floating_point() and t.dim() >= 2]
    prefill_ptrs = {t.data_ptr() for t in unfolded[contract.PREFILL].state_dict.values() if t.dim() >= 2}
    assert {t.data_ptr() for t in unfolded[contract.DECODE].state_dict.values() if t.dim() >= 2} <= prefill_ptrs
    meta = contract.npu_metadata(cfg, CHUNK, 1, quant_io.fp32_metadata(cfg.decoder.layers))
    a, b = NpuDecoder.from_programs(piece, meta), NpuDecoder.from_programs({**piece, **unfolded}, meta)
    ids = torch.randint(11, cfg.decoder.vocab_size, (1, 80), generator=torch.Generator().manual_seed(2))
    emb = a.token_embedding(ids)
    la, lb = a.text_decoder(emb, torch.arange(80)), b.text_decoder(emb, torch.arange(80))
    assert torch.equal(la, lb)
    nxt = a.token_embedding(la.argmax(-1, keepdim=True))
    assert torch.equal(a.text_decoder(nxt, torch.tensor([80])), b.text_decoder(nxt, torch.tensor([80])))


def test_piecewise_program_splits_into_shards_like_the_whole_one(both):
    """The chained program names each node's layer as the whole one does: the same weight bytes
    per layer (what `--shards auto` sizes), and the shard cut lands after layer 0 of 2."""
    from bluelm_edge.export import coverage, shards
    from bluelm_edge.export.lower_mediatek import edge_programs

    cfg, _, _, whole, piece, *_ = both
    by_layer = shards.weight_bytes_by_layer(piece[contract.PREFILL])
    assert by_layer == shards.weight_bytes_by_layer(whole[contract.PREFILL])
    assert set(by_layer) == {*range(cfg.decoder.layers), None}
    edge = edge_programs({contract.DECODE: piece[contract.DECODE]}, None, cfg.decoder.layers, 2)[contract.DECODE]
    nodes = list(edge.graph.nodes)
    cut = [i for i, n in enumerate(nodes) if coverage.op_name(n) == shards.FALLBACK]
    first = shards.layer_counts(cfg.decoder.layers, 2)[0]
    assert len(cut) == 1 and shards.layer_of(nodes[cut[0]].args[0]) == first - 1
    assert {shards.layer_of(n) for n in nodes[cut[0]:]} - {None} == set(range(first, cfg.decoder.layers))
