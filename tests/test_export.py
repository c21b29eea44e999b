"""XNNPACK export end to end on the tiny preset (seeded random weights), fp32.

One bundle is exported per session (lowering takes minutes on 2 cores) and shared: parity of the
.pte methods with eager (<= 1e-4), greedy generation through the host runner equal to eager, and
the same greedy tokens from ExecuTorch's own TextLLMRunner and MultimodalRunner.
"""

from __future__ import annotations

import json

import pytest
import torch

from bluelm_edge import contract
from bluelm_edge.export.bundle import verify_bundle
from bluelm_edge.export.host import PteDecoder, load_bundle_decoder
from bluelm_edge.generate import generate
from bluelm_edge.session import EagerDecoder

pytestmark = pytest.mark.slow
MAX_CONTEXT = 256  # the shared fp32_export fixture (conftest.py) uses this context
N_NEW = 12


@pytest.fixture(scope="session")
def pte(fp32_export):
    return PteDecoder(fp32_export[0].out / contract.MODEL_PTE)


def test_bundle_verifies_and_manifest_matches_contract(fp32_export):
    result, _, config, _ = fp32_export
    assert verify_bundle(result.out) == []
    manifest = json.loads((result.out / "manifest.json").read_text())
    assert manifest["lowered"] is True and manifest["backend"] == "xnnpack" and manifest["recipe"] == "fp32"
    assert sorted(f["path"] for f in manifest["files"]) == [
        "config.json", "model.pte", "tokenizer.json", "tokenizer_config.json"]
    assert manifest["app"]["max_context"] == MAX_CONTEXT
    assert manifest["app"]["token_ids"]["think_end"] == config.tokens.think_end == 7
    assert manifest["bundle_id"].startswith("bluelm-tiny-xnnpack-fp32-")


def test_metadata_constants(pte, fp32_export):
    config = fp32_export[2]
    assert pte.constant("get_max_seq_len") == MAX_CONTEXT
    assert pte.constant("get_vocab_size") == config.decoder.vocab_size
    assert pte.constant("get_eos_ids") == config.tokens.eos
    assert pte.constant("get_think_start_id") == 6 and pte.constant("get_image_token_id") == 9
    assert pte.constant("get_tile_size") == 64 and pte.constant("get_tokens_per_tile") == 16
    assert pte.max_prefill == MAX_CONTEXT  # one dynamic call can fill the context


@torch.no_grad()
def test_fp32_logits_match_eager(pte, fp32_export):
    model = fp32_export[1]
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(11, model.cfg.decoder.vocab_size, (1, 40), generator=gen)
    pixels = torch.randn(1, 3, 64, 64, generator=gen)
    assert (pte.vision_encoder(pixels) - model.vision_encoder(pixels)).abs().max() < 1e-4
    model.reset_cache()
    emb = pte.token_embedding(ids)
    assert (emb - model.token_embedding(ids)).abs().max() == 0
    ref = model.text_decoder(model.token_embedding(ids), torch.arange(40))
    got = pte.text_decoder(emb, torch.arange(40))
    assert (got - ref).abs().max() < 1e-4
    nxt = torch.tensor([[int(ref.argmax())]])  # one decode step on the shared cache
    ref2 = model.text_decoder(model.token_embedding(nxt), torch.tensor([40]))
    assert (pte.forward(nxt, torch.tensor([40])) - ref2).abs().max() < 1e-4
    assert (pte.text_decoder(pte.token_embedding(nxt), torch.tensor([40])) - ref2).abs().max() < 1e-4


def _prompt(tokenizer, config, image: bool):
    from bluelm_edge.text.chat import Message, render

    n = config.image_tokens_per_tile if image else 0
    msg = Message("user", "What is 17+25?", images=["x"] if image else [])
    return render([msg], tokenizer, think=False, add_generation_prompt=True, image_tokens=[n] if image else None).ids


def test_host_greedy_equals_eager(pte, fp32_export):
    _, model, config, tokenizer = fp32_export
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    for image in (False, True):
        ids = _prompt(tokenizer, config, image)
        kw = dict(stop_ids=[], images=[pixels] if image else [], image_token=config.tokens.image)
        from bluelm_edge.generate import Sampling

        ours = generate(pte, ids, sampling=Sampling(max_new_tokens=N_NEW), **kw).tokens
        eager = generate(EagerDecoder(model), ids, sampling=Sampling(max_new_tokens=N_NEW), **kw).tokens
        assert ours == eager and len(ours) == N_NEW


def test_load_bundle_decoder(fp32_export):
    decoder, tokenizer, config = load_bundle_decoder(fp32_export[0].out)
    assert decoder.max_context == MAX_CONTEXT and config.decoder.max_seq_len == MAX_CONTEXT
    assert tokenizer.vocab_size == config.decoder.vocab_size


def test_executorch_text_runner_matches_host(fp32_export, pte, collect_pieces):
    """TextLLMRunner (forward method) generates, greedily, the same text as our host runner."""
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    result, _, config, tokenizer = fp32_export
    ids = _prompt(tokenizer, config, image=False)
    from bluelm_edge.generate import Sampling

    ours = generate(pte, ids, stop_ids=[config.tokens.eos], sampling=Sampling(max_new_tokens=N_NEW)).tokens
    runner = TextLLMRunner(str(result.out / "model.pte"), str(result.out / "tokenizer.json"))
    gen_cfg = GenerationConfig(echo=False, max_new_tokens=N_NEW, temperature=0.0, num_bos=0)
    pieces = collect_pieces(lambda cb: runner.generate(tokenizer.decode(ids), gen_cfg, token_callback=cb),
                            tokenizer, ours)
    assert "".join(pieces) == tokenizer.decode(ours[: len(pieces)])
    assert len(pieces) == len(ours) or "\ufffd" in tokenizer.decode([ours[len(pieces)]])  # all, or up to a lone byte


def test_executorch_multimodal_runner_matches_host(fp32_export, pte, collect_pieces):
    """MultimodalRunner (vision_encoder, token_embedding, text_decoder) agrees with the host runner."""
    from executorch.extension.llm.runner import (
        GenerationConfig,
        MultimodalRunner,
        make_image_input,
        make_text_input,
    )

    result, _, config, tokenizer = fp32_export
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ids = _prompt(tokenizer, config, image=True)
    from bluelm_edge.generate import Sampling

    ours = generate(pte, ids, stop_ids=[config.tokens.eos], images=[pixels], image_token=config.tokens.image,
                    sampling=Sampling(max_new_tokens=N_NEW)).tokens
    first, last = ids.index(config.tokens.image), len(ids) - 1 - ids[::-1].index(config.tokens.image)
    inputs = [make_text_input(tokenizer.decode(ids[:first])), make_image_input(pixels[0].contiguous()),
              make_text_input(tokenizer.decode(ids[last + 1 :]))]
    runner = MultimodalRunner(str(result.out / "model.pte"), str(result.out / "tokenizer.json"))
    gen_cfg = GenerationConfig(echo=False, max_new_tokens=N_NEW, temperature=0.0, num_bos=0)
    pieces = collect_pieces(lambda cb: runner.generate(inputs, gen_cfg, token_callback=cb), tokenizer, ours)
    assert "".join(pieces) == tokenizer.decode(ours[: len(pieces)])


def test_benchmark_host_results_format(fp32_export):
    from bluelm_edge.export.host import benchmark_host

    out = benchmark_host(fp32_export[0].out, ["What is 2+3?", "What is 4+4?"], runs=2, thinking_budget=0,
                         max_new_tokens=8)
    assert (out["schema_version"], out["status"], out["error"], out["backend"]) == (1, "ok", None, "xnnpack")
    assert out["bundle_id"] == fp32_export[0].manifest["bundle_id"] and out["thinking_budget"] == 0
    assert [(r["run"], r["prompt_index"]) for r in out["runs"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    keys = {"run", "prompt_index", "load_ms", "ttft_ms", "prefill_tokens", "prefill_tok_s", "decode_tokens",
            "decode_tok_s", "thinking_tokens", "total_ms", "peak_memory_kb"}
    for r in out["runs"]:
        assert set(r) == keys and r["thinking_tokens"] == 0 and 1 <= r["decode_tokens"] <= 8
        assert r["prefill_tokens"] > 5 and r["decode_tok_s"] >= 0 and r["peak_memory_kb"] > 0


def test_cli_run_json_and_profile(fp32_export, tmp_path):
    from typer.testing import CliRunner

    from bluelm_edge.cli.main import app

    etdump = tmp_path / "run.etdump"
    res = CliRunner().invoke(app, ["run", str(fp32_export[0].out), "--prompt", "What is 2+3?", "--no-think",
                                   "--max-new-tokens", "6", "--profile", "--etdump", str(etdump), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout[res.stdout.index("{\n"):])
    assert 1 <= len(data["tokens"]) <= 6 and etdump.is_file()
    assert data["profile"] and all(r["calls"] > 0 and r["total_ms"] >= 0 for r in data["profile"])
