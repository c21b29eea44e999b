"""Parity with reference implementations nobody here wrote: transformers' LLaMA, Qwen2, Qwen3, SigLIP.

Tiny random models are saved with `save_pretrained` (safetensors), loaded by our loader, and must
match the reference outputs to 1e-4 on a full prefill and token by token through our KV cache.
"""

from __future__ import annotations

import pytest
import torch

from bluelm_edge.errors import ConfigError
from bluelm_edge.model.checkpoint import load_hf_llama, load_hf_siglip_vision

transformers = pytest.importorskip("transformers")

TOL = 1e-4
COMMON = dict(
    vocab_size=101, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=64,
)


def _randomize_norms(model: torch.nn.Module) -> None:
    """Norm weights start at 1; perturb them so a wrongly mapped norm cannot pass."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)


def _hf_causal_lm(kind: str, tmp_path, **extra):
    torch.manual_seed(0)
    if kind == "llama":
        cfg = transformers.LlamaConfig(**COMMON, rope_theta=5e5, tie_word_embeddings=False, **extra)
        model = transformers.LlamaForCausalLM(cfg)
    elif kind == "qwen2":
        cfg = transformers.Qwen2Config(**COMMON, rope_theta=1e6, tie_word_embeddings=False, **extra)
        model = transformers.Qwen2ForCausalLM(cfg)
    else:
        cfg = transformers.Qwen3Config(**COMMON, head_dim=32, rope_theta=1e6, tie_word_embeddings=True, **extra)
        model = transformers.Qwen3ForCausalLM(cfg)
    _randomize_norms(model)
    with torch.no_grad():  # give q/k/v biases (if any) non-zero values
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    model.save_pretrained(tmp_path / kind, safe_serialization=True)
    return model.eval()


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3"])
def test_decoder_matches_transformers(kind, tmp_path):
    hf = _hf_causal_lm(kind, tmp_path)
    ours, cfg = load_hf_llama(tmp_path / kind, max_seq_len=32)
    assert (cfg.heads, cfg.kv_heads, cfg.attn_bias, cfg.qk_norm) == (
        4, 2, kind == "qwen2", kind == "qwen3"
    )
    ids = torch.randint(0, 101, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids).logits  # [1, 12, V]
        embeds = ours.embed_tokens(ids)
        full = ours.forward_full(embeds)
        prefill = ours(embeds, torch.arange(12))
        ours.reset_cache()
        ours(embeds[:, :5], torch.arange(5))
        steps = [ours(embeds[:, i : i + 1], torch.tensor([i])) for i in range(5, 12)]
    assert ref.abs().max() > 0.1  # the comparison is not between near-zero tensors
    assert (full - ref).abs().max() <= TOL
    assert (prefill - ref).abs().max() <= TOL
    assert (torch.cat(steps, 1) - ref[:, 5:]).abs().max() <= TOL


def test_tied_llama_head_shares_the_embedding(tmp_path):
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**COMMON, tie_word_embeddings=True)).eval()
    hf.save_pretrained(tmp_path / "tied")
    ours, _ = load_hf_llama(tmp_path / "tied", max_seq_len=16)
    assert ours.head.weight is ours.embed.weight
    ids = torch.arange(10)[None] * 7
    with torch.no_grad():
        assert (ours.forward_full(ours.embed_tokens(ids)) - hf(ids).logits).abs().max() <= TOL


def test_llama3_rope_scaling_matches_transformers(tmp_path):
    """Llama 3.1/3.2's RoPE (rope_type "llama3"): long wavelengths scaled, the band between smoothed;
    positions past the original context, where the scaling shows, prefilled whole and step by step."""
    torch.manual_seed(0)
    scaled = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 16, "rope_theta": 1e4}
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**COMMON, rope_parameters=scaled)).eval()
    _randomize_norms(hf)
    hf.save_pretrained(tmp_path / "llama3")
    ours, cfg = load_hf_llama(tmp_path / "llama3", max_seq_len=48)
    assert cfg.rope_scaling() == (4.0, 1.0, 4.0, 16)
    ids = torch.randint(0, 101, (1, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(ids).logits
        embeds = ours.embed_tokens(ids)
        ours(embeds[:, :30], torch.arange(30))
        steps = [ours(embeds[:, i : i + 1], torch.tensor([i])) for i in range(30, 40)]
        plain = transformers.LlamaForCausalLM(transformers.LlamaConfig(**COMMON, rope_theta=1e4)).eval()
        plain.load_state_dict(hf.state_dict())
        unscaled = plain(ids).logits
    assert (ours.forward_full(embeds) - ref).abs().max() <= TOL
    assert (torch.cat(steps, 1) - ref[:, 30:]).abs().max() <= TOL
    assert (unscaled - ref)[:, 16:].abs().max() > 10 * TOL  # plain RoPE would fail the parity there


def test_rope_scaling_is_refused_in_one_line(tmp_path):
    torch.manual_seed(0)
    scaled = {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**COMMON, rope_parameters=scaled))
    hf.save_pretrained(tmp_path / "scaled")
    with pytest.raises(ConfigError, match="rope type 'linear' is not supported") as err:
        load_hf_llama(tmp_path / "scaled")
    assert "\n" not in str(err.value)


def test_siglip_vision_matches_transformers(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.SiglipVisionConfig(
        hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        image_size=40, patch_size=8, layer_norm_eps=1e-6,
    )
    hf = transformers.SiglipVisionModel(cfg).eval()
    _randomize_norms(hf)
    hf.save_pretrained(tmp_path / "siglip")
    ours, vcfg = load_hf_siglip_vision(tmp_path / "siglip")
    assert (vcfg.grid, vcfg.width, vcfg.layers) == (5, 48, 2)
    pixels = torch.randn(3, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(pixel_values=pixels).last_hidden_state  # [3, 25, 48], after post_layernorm
        out = ours(pixels)
    assert out.shape == (3, 25, 48)
    assert (out - ref).abs().max() <= TOL
