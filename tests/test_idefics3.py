"""Idefics3 / SmolVLM as our BlueLM: parity with transformers' Idefics3ForConditionalGeneration.

Tiny random transformers models (fp32) saved with `save_pretrained`, loaded by
`model.idefics3.load_idefics3`; image features (connector output) and logits to 1e-4 on a prompt
whose image tokens sit where the processor puts them (`<fake_token_around_image>`,
`<row_r_col_c>`, `<global-img>`), and greedy tokens equal to transformers' `generate`.
"""

from __future__ import annotations

import pytest
import torch

from bluelm_edge.errors import ConfigError
from bluelm_edge.generate import prompt_embeddings
from bluelm_edge.model.checkpoint import build_model, count_parameters
from bluelm_edge.model.connector import PixelShuffleConnector
from bluelm_edge.model.idefics3 import config_from_hf, load_idefics3, position_ids

transformers = pytest.importorskip("transformers")

VOCAB, IMAGE, FAKE, GLOBAL, ROW_COL0 = 300, 299, 298, 297, 261  # <row_1_col_1> .. <row_6_col_6>: 261..296


def hf_config(*, image_size=64, patch_size=8, scale=2, tied=False, kv_heads=2):
    return transformers.Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image_size, patch_size=patch_size),
        text_config=dict(model_type="llama", vocab_size=VOCAB, hidden_size=48, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=kv_heads,
                         max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=5e4,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=tied),
        scale_factor=scale, image_token_id=IMAGE, tie_word_embeddings=tied,
    )


def saved(tmp_path, seed=0, **kw):
    torch.manual_seed(seed)
    hf = transformers.Idefics3ForConditionalGeneration(hf_config(**kw)).eval()
    with torch.no_grad():  # random norms too, so a swapped or dropped norm weight shows
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.2)
    hf.save_pretrained(tmp_path / "hf")
    ours, cfg = load_idefics3(tmp_path / "hf", max_seq_len=512)
    return hf, ours, cfg


def image_ids(rows: int, cols: int, seq: int) -> list[int]:
    """The processor's token layout for one image split rows x cols (+ global); "\n" is id 10."""
    ids: list[int] = []
    for r in range(rows):
        for c in range(cols):
            ids += [FAKE, ROW_COL0 + r * 6 + c] + [IMAGE] * seq
        ids.append(10)
    if rows:
        ids.append(10)
    return ids + [FAKE, GLOBAL] + [IMAGE] * seq + [FAKE]


def test_pixel_shuffle_equals_transformers():
    x = torch.randn(3, 36, 5)  # 6 x 6 grid
    conn = transformers.models.idefics3.modeling_idefics3.Idefics3Connector
    for scale in (2, 3):
        ours = PixelShuffleConnector(5, scale, 7)
        assert torch.equal(ours.merge_tokens(x), conn.pixel_shuffle(None, x, scale))


def test_connector_output_and_logits_match(tmp_path):
    hf, ours, cfg = saved(tmp_path)
    assert cfg.adapter.kind == "linear" and cfg.image_tokens_per_tile == 16
    torch.manual_seed(1)
    pixels = torch.randn(5, 3, 64, 64)  # 2 x 2 tiles + the global image, as the processor orders them
    with torch.no_grad():
        theirs = hf.model.get_image_features(pixels[None]).pooler_output[0]  # [T * 16, D]
        mine = ours.vision_encoder(pixels)[0]
    assert mine.shape == theirs.shape == (80, 48)
    assert (mine - theirs).abs().max() < 1e-4
    ids = [1, 40, 41, 42] + image_ids(2, 2, 16) + [43, 44, 45]
    ids_t = torch.tensor([ids])
    with torch.no_grad():
        ref = hf(input_ids=ids_t, pixel_values=pixels[None]).logits[0]  # [L, V]
        embeds = prompt_embeddings(ours, ids, [pixels], cfg.tokens.image)
        got = ours.decoder(embeds, torch.arange(len(ids)))[0]
    assert (got - ref).abs().max() < 1e-4
    assert torch.equal(got.argmax(-1), ref.argmax(-1))


def test_greedy_tokens_match_generate(tmp_path):
    hf, ours, cfg = saved(tmp_path, seed=3, tied=True, kv_heads=1)
    assert cfg.decoder.tie_embeddings and ours.decoder.head.weight is ours.decoder.embed.weight
    torch.manual_seed(4)
    pixels = torch.randn(1, 3, 64, 64)  # one global image (no split)
    ids = [1, 50, 51] + image_ids(0, 0, 16) + [52]
    with torch.no_grad():
        ref = hf.generate(input_ids=torch.tensor([ids]), pixel_values=pixels[None], max_new_tokens=12,
                          do_sample=False, eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
        embeds = prompt_embeddings(ours, ids, [pixels], cfg.tokens.image)
        ours.reset_cache()
        logits = ours.text_decoder(embeds[:, :10], torch.arange(10))  # chunked prefill
        logits = ours.text_decoder(embeds[:, 10:], torch.arange(10, len(ids)))
        got = []
        for pos in range(len(ids), len(ids) + 12):  # cached decode, one token at a time
            got.append(int(logits.argmax(-1)))
            logits = ours.text_decoder(ours.token_embedding(torch.tensor([[got[-1]]])), torch.tensor([pos]))
    assert got == ref


def test_tile_not_a_multiple_of_the_patch(tmp_path):
    """SmolVLM-2.2B's case (384-px tiles, 14-px patches): the tower sees grid * patch pixels."""
    hf, ours, cfg = saved(tmp_path, seed=5, image_size=40, patch_size=6, scale=3)
    assert cfg.vision.image_size == 36 and cfg.image_tokens_per_tile == 4
    pixels = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        theirs = hf.model.get_image_features(pixels[None]).pooler_output[0]
        mine = ours.vision_encoder(pixels[:, :, :36, :36])[0]
    assert (mine - theirs).abs().max() < 1e-4


def test_position_ids_are_identity_for_real_grids():
    for grid in (8, 16, 24, 26, 27, 32, 64):
        assert torch.equal(position_ids(grid), torch.arange(grid * grid))


def test_parameter_count_equals_transformers():
    hf = transformers.Idefics3ForConditionalGeneration(hf_config())
    counts = count_parameters(build_model(config_from_hf(hf.config.to_dict()), "meta"))
    assert counts["total"] == sum(p.numel() for p in hf.parameters())


def test_bad_scale_factor_is_one_line():
    d = hf_config(image_size=64, patch_size=8, scale=3).to_dict()
    with pytest.raises(ConfigError, match="scale_factor 3 must divide the patch grid 8"):
        config_from_hf(d)


def test_saved_folder_end_to_end(tmp_path):
    """A folder made by save_pretrained (model + processor + tokenizer): the processor's input_ids and
    pixel_values in transformers against our loader, preprocessing and prompt expansion."""
    from idefics3_folder import make_folder
    from idefics3_vectors import vector_image
    from tokenizers import Tokenizer

    from bluelm_edge.imaging_idefics3 import Idefics3ImageRules, expand_prompt, image_seq_len, preprocess

    hf, processor = make_folder(tmp_path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the picture."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = vector_image(90, 130)
    inputs = processor(text=text, images=[image], return_tensors="pt")
    ours, cfg = load_idefics3(tmp_path, max_seq_len=512)
    img = preprocess(image, Idefics3ImageRules.load(tmp_path))
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ids = tokenizer.encode(expand_prompt(text, [img], image_seq_len(tmp_path))).ids
    assert ids == inputs["input_ids"][0].tolist() and cfg.image_tokens_per_tile == image_seq_len(tmp_path)
    with torch.no_grad():
        ref = hf(**inputs).logits[0]
        got = ours.decoder(prompt_embeddings(ours, ids, [img.pixels], cfg.tokens.image), torch.arange(len(ids)))[0]
        greedy = hf.generate(**inputs, max_new_tokens=8, do_sample=False, eos_token_id=None)[0, len(ids):].tolist()
    assert ref.abs().max() > 1.0 and (got - ref).abs().max() < 1e-4
    assert cfg.tokens.im_start == processor.fake_image_token_id and cfg.tokens.eos == processor.tokenizer.eos_token_id
    assert _greedy(ours, prompt_embeddings(ours, ids, [img.pixels], cfg.tokens.image), 8) == greedy


def _greedy(model, embeds, n):
    model.reset_cache()
    length = embeds.shape[1]
    logits, out = model.text_decoder(embeds, torch.arange(length)), []
    for pos in range(length, length + n):
        out.append(int(logits.argmax(-1)))
        logits = model.text_decoder(model.token_embedding(torch.tensor([[out[-1]]])), torch.tensor([pos]))
    return out


# The published configs' shapes (HuggingFaceTB/SmolVLM-256M-Instruct and SmolVLM-Instruct, 2.2B).
SMOLVLM_256M = {
    "architectures": ["Idefics3ForConditionalGeneration"], "model_type": "idefics3", "image_token_id": 49190,
    "scale_factor": 4, "tie_word_embeddings": False,
    "text_config": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                    "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49280, "rope_theta": 100000.0,
                    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "head_dim": 64},
    "vision_config": {"model_type": "idefics3_vision", "hidden_size": 768, "intermediate_size": 3072,
                      "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
}
SMOLVLM_2B = {
    "architectures": ["Idefics3ForConditionalGeneration"], "model_type": "idefics3", "image_token_id": 49153,
    "scale_factor": 3, "tie_word_embeddings": False,
    "text_config": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
                    "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 49155,
                    "rope_theta": 273768.0, "max_position_embeddings": 16384, "rms_norm_eps": 1e-5},
    "vision_config": {"model_type": "idefics3_vision", "hidden_size": 1152, "intermediate_size": 4304,
                      "num_hidden_layers": 27, "num_attention_heads": 16, "image_size": 384, "patch_size": 14},
}


@pytest.mark.parametrize(("raw", "published", "tokens", "tower"), [(SMOLVLM_256M, 256e6, 64, 512),
                                                                   (SMOLVLM_2B, 2.25e9, 81, 378)])
def test_full_size_parameter_counts(raw, published, tokens, tower):
    cfg = config_from_hf(raw)
    total = count_parameters(build_model(cfg, "meta"))["total"]
    with torch.device("meta"):
        hf = transformers.Idefics3ForConditionalGeneration(
            transformers.Idefics3Config(**{k: v for k, v in raw.items() if k != "architectures"}))
    assert total == sum(p.numel() for p in hf.parameters())
    assert abs(total - published) < 0.01 * published
    assert (cfg.image_tokens_per_tile, cfg.vision.image_size) == (tokens, tower)


def test_folder_checks(tmp_path):
    """missing() names what an incomplete folder lacks; check_weights() reads headers only and
    names the first mismatched tensor in one line."""
    import json

    from idefics3_folder import make_folder

    from bluelm_edge.errors import CheckpointError
    from bluelm_edge.model.idefics3 import check_weights, missing, read_config

    assert missing(tmp_path) == ["config.json", "model.safetensors (or model.safetensors.index.json + shards)",
                                 "tokenizer.json", "tokenizer_config.json",
                                 "preprocessor_config.json (or processor_config.json)"]
    make_folder(tmp_path / "full")
    assert missing(tmp_path / "full") == []
    cfg = read_config(tmp_path / "full")
    assert check_weights(tmp_path / "full", cfg) == [tmp_path / "full" / "model.safetensors"]
    raw = json.loads((tmp_path / "full" / "config.json").read_text())
    raw["text_config"]["intermediate_size"] = 80
    (tmp_path / "full" / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"decoder\.layers\.0\.mlp\.gate\.weight: checkpoint has \[96, 48\], "
                                              r"config expects \[80, 48\]"):
        check_weights(tmp_path / "full", read_config(tmp_path / "full"))
