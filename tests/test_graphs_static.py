"""The static NPU form (`graphs/static.py`) through its host runner (`export/npu_host.py`) against the
eager model: fp32 `torch.export`ed prefill/decode graphs with the KV cache as graph I/O must give
the eager logits to 1e-4 and the same greedy tokens, through several padded prefill chunks and
decode steps, on the shipped stand-in (whatever checkpoint is shipped) and at the real tile geometry."""

from __future__ import annotations

import pytest
import torch

from bluelm_edge import contract
from bluelm_edge.errors import ContextError
from bluelm_edge.export import quant_io
from bluelm_edge.export.npu_host import NpuDecoder
from bluelm_edge.generate import Sampling, generate
from bluelm_edge.graphs.methods import set_max_context
from bluelm_edge.graphs.static import MASK_VALUE, export_npu, npu_modules, step_mask
from bluelm_edge.model.checkpoint import build_model, load_checkpoint
from bluelm_edge.model.config import preset
from bluelm_edge.paths import DEFAULT_MODEL_DIR
from bluelm_edge.session import ChatSession, EagerDecoder

CHUNK = 16  # small chunks so every prompt takes several, the last one padded


def _static(model, chunk: int) -> NpuDecoder:
    progs = export_npu(npu_modules(model), model.cfg, chunk, 1)
    meta = contract.npu_metadata(model.cfg, chunk, 1, quant_io.fp32_metadata(model.cfg.decoder.layers))
    return NpuDecoder.from_programs(progs, meta)


@pytest.fixture(scope="module")
def shipped():
    model, cfg = load_checkpoint(DEFAULT_MODEL_DIR)
    model.eval()
    set_max_context(model, 192)
    return model, cfg, _static(model, CHUNK)


def test_step_mask_is_the_smart_mask():
    """start 2, 3 valid of 4, cache 5: cache slots 0-1 visible, new rows causal, pad row like the last."""
    m = step_mask(2, 3, 4, 5)[0]
    visible = (m == 0).int().tolist()
    assert visible == [[1, 1, 0, 0, 0, 1, 0, 0, 0],
                       [1, 1, 0, 0, 0, 1, 1, 0, 0],
                       [1, 1, 0, 0, 0, 1, 1, 1, 0],
                       [1, 1, 0, 0, 0, 1, 1, 1, 0]]
    assert set(m.unique().tolist()) == {0.0, MASK_VALUE}


def test_programs_hold_only_what_they_read(shipped):
    """No eager cache buffers or RoPE tables in the graphs; the decoder's I/O is the contract's."""
    model, cfg, _ = shipped
    progs = export_npu(npu_modules(model), cfg, CHUNK, 1)
    for name in (contract.PREFILL, contract.DECODE):
        ep = progs[name]
        users = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        n = cfg.decoder.layers
        assert len(users) == 4 + 2 * n
        assert not [s for s in ep.graph_signature.input_specs if s.kind.name == "BUFFER"]
        c = CHUNK if name == contract.PREFILL else 1
        outs = [tuple(o.meta["val"].shape) for o in list(ep.graph.nodes)[-1].args[0]]
        kv = (1, cfg.decoder.kv_heads, c, cfg.decoder.head_dim)
        assert outs == [(1, c, cfg.decoder.vocab_size)] + [kv] * (2 * n)
    assert len(progs[contract.TOKEN_EMBEDDING].state_dict) == 1  # the (tied) embedding only


@torch.no_grad()
def test_logits_match_eager_through_chunks_and_decode(shipped):
    model, cfg, npu = shipped
    ids = torch.randint(11, cfg.decoder.vocab_size, (1, 53), generator=torch.Generator().manual_seed(3))
    model.reset_cache()
    npu.reset()
    emb = model.token_embedding(ids)
    assert torch.equal(npu.token_embedding(ids), emb)
    ref, got = model.text_decoder(emb, torch.arange(53)), npu.text_decoder(emb, torch.arange(53))
    assert npu.calls[contract.PREFILL] == 4  # 16 + 16 + 16 + 5 padded
    assert (got - ref).abs().max() < 1e-4
    for step in range(8):
        nxt = torch.tensor([[int(ref.argmax())]])
        assert int(got.argmax()) == int(nxt)
        pos = torch.tensor([53 + step])
        ref = model.text_decoder(model.token_embedding(nxt), pos)
        got = npu.text_decoder(npu.token_embedding(nxt), pos)
        assert (got - ref).abs().max() < 1e-4
    assert npu.calls[contract.DECODE] == 8


@torch.no_grad()
def test_greedy_replies_equal_eager_on_held_out_prompts(shipped):
    """Held-out prompts of every task (images included), thinking budget 8 and unlimited: the
    static graphs answer token for token like the eager model through the one generation loop."""
    from bluelm_edge.datasets.tasks import TASKS, eval_examples
    from bluelm_edge.text.tokenizer import Tokenizer

    model, cfg, npu = shipped
    tok = Tokenizer.from_file(DEFAULT_MODEL_DIR / contract.TOKENIZER_JSON)
    eager, ours = ChatSession(EagerDecoder(model), tok, cfg), ChatSession(npu, tok, cfg)
    checked = 0
    for task in TASKS:
        ex = eval_examples(task, 1)[0]
        images = [ex.image()] if ex.image_spec is not None else []
        for budget in (8, None):
            eager.reset()
            ours.reset()
            kw = dict(think=True, budget=budget, sampling=Sampling(max_new_tokens=48))
            a, b = eager.ask(ex.question, images, **kw), ours.ask(ex.question, images, **kw)
            assert (b.tokens, b.forced) == (a.tokens, a.forced), (task, budget)
            checked += len(a.tokens)
    assert checked > 200


@torch.no_grad()
def test_greedy_equals_eager_at_real_tile_geometry():
    """One 378-px tile (196 image tokens) + text: chunks of 64 (the last padded), then 12 decode steps."""
    cfg = preset("geometry")
    torch.manual_seed(0)
    model = build_model(cfg.validate(), "cpu").eval()
    model.decoder.init_buffers(torch.float32, None)
    set_max_context(model, 256)
    assert cfg.image_tokens_per_tile == 196
    npu = _static(model, 64)
    pixels = torch.randn(1, 3, 378, 378, generator=torch.Generator().manual_seed(5))
    t = cfg.tokens
    ids = [t.bos, t.human, t.im_start] + [t.image] * 196 + [t.im_end, 40, 41, 42, t.ai]
    kw = dict(stop_ids=[], images=[pixels], image_token=t.image, sampling=Sampling(max_new_tokens=12))
    eager = generate(EagerDecoder(model), ids, **kw).tokens
    assert generate(npu, ids, **kw).tokens == eager and len(eager) == 12
    assert npu.calls[contract.PREFILL] == 4  # 204 tokens in chunks of 64
    model.reset_cache()
    npu.reset()
    emb = model.token_embedding(torch.tensor([ids]))
    emb[0, 3:199] = model.vision_encoder(pixels)[0]
    assert (npu.vision_encoder(pixels) - model.vision_encoder(pixels)).abs().max() < 1e-4
    ref, got = model.text_decoder(emb, torch.arange(204)), npu.text_decoder(emb, torch.arange(204))
    assert (got - ref).abs().max() < 1e-4


def test_runner_refuses_a_position_it_is_not_at(shipped):
    _, cfg, npu = shipped
    npu.reset()
    with pytest.raises(ContextError, match="at position 0, not 5"):
        npu.text_decoder(torch.zeros(1, 2, cfg.decoder.dim), torch.arange(5, 7))
    with pytest.raises(ContextError, match="do not fit the 192-slot KV cache"):
        npu.text_decoder(torch.zeros(1, 193, cfg.decoder.dim), torch.arange(193))


@torch.no_grad()
def test_llama3_rope_scaling_reaches_the_npu_runner():
    """A Llama 3.1+-style scaled RoPE: the metadata carries it, the runner's RoPE rows follow it, and
    the static graphs give the eager logits past the original context."""
    cfg = preset("tiny")
    cfg.decoder.rope_original_context, cfg.decoder.rope_factor, cfg.decoder.rope_theta = 8, 8.0, 1e4
    torch.manual_seed(0)
    model = build_model(cfg.validate(), "cpu").eval()
    model.decoder.init_buffers(torch.float32, None)
    set_max_context(model, 64)
    npu = _static(model, CHUNK)
    assert contract.npu_rope_scaling(npu.meta) == (8.0, 1.0, 4.0, 8)
    ids = torch.randint(11, cfg.decoder.vocab_size, (1, 40), generator=torch.Generator().manual_seed(3))
    emb = model.token_embedding(ids)
    ref, got = model.text_decoder(emb, torch.arange(40)), npu.text_decoder(emb, torch.arange(40))
    assert (got - ref).abs().max() < 1e-4
