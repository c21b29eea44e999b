"""Checkpoint IO: exact round trips (single file and sharded), one-line errors, meta-device loading."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from bluelm_edge.errors import CheckpointError, ConfigError
from bluelm_edge.model.checkpoint import (
    build_model,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
    weight_files,
)
from bluelm_edge.model.config import tiny
from bluelm_edge.model.vlm import BlueLM


def _small():
    cfg = tiny()
    cfg.decoder = dataclasses.replace(cfg.decoder, layers=2, vocab_size=128, max_seq_len=32)
    cfg.vision = dataclasses.replace(cfg.vision, layers=1)
    return cfg


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    cfg = _small()
    model = BlueLM(cfg).eval()
    out = tmp_path_factory.mktemp("ckpt") / "model"
    tok = out.parent / "tok.json"
    tok.write_text('{"version": "1.0"}')
    save_checkpoint(model, cfg, out, tokenizer_json_path=tok, extra_files={"README.md": "tiny\n"})
    return model, cfg, out


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _one_line_error(path, match: str) -> str:
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_round_trip_is_exact(saved):
    model, cfg, out = saved
    names = sorted(p.name for p in out.iterdir())
    assert names == [".bluelm-edge", "README.md", "config.json", "model.safetensors", "tokenizer.json"]
    assert (out / "tokenizer.json").read_text() == '{"version": "1.0"}'
    loaded, cfg2 = load_checkpoint(out)
    assert cfg2.to_dict() == cfg.to_dict()
    _same_state(model, loaded)
    assert loaded.decoder.head.weight is loaded.decoder.embed.weight  # tied stays tied
    assert "decoder.head.weight" not in load_file(out / "model.safetensors")  # stored once
    ids = torch.arange(1, 9)[None]
    with torch.no_grad():
        assert torch.equal(loaded.forward_train(ids), model.forward_train(ids))
        assert torch.equal(loaded.text_decoder(loaded.token_embedding(ids), torch.arange(8)),
                           model.text_decoder(model.token_embedding(ids), torch.arange(8)))


def test_sharded_round_trip(saved, tmp_path):
    model, cfg, _ = saved
    out = save_checkpoint(model, cfg, tmp_path / "sharded", max_shard_bytes=400_000)
    files = weight_files(out)
    assert len(files) >= 3 and files[0].name == f"model-00001-of-{len(files):05d}.safetensors"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(load_file(weight_files(saved[2])[0]))
    loaded, _ = load_checkpoint(out)
    _same_state(model, loaded)


def test_save_replaces_an_existing_folder_atomically(saved, tmp_path):
    model, cfg, _ = saved
    out = tmp_path / "ck"
    save_checkpoint(model, cfg, out, max_shard_bytes=400_000)
    save_checkpoint(model, cfg, out)  # no stale shards or index left behind
    assert sorted(p.name for p in out.iterdir()) == [".bluelm-edge", "config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_load_dtype_and_buffers_after_meta_build(saved):
    _, cfg, out = saved
    meta = build_model(cfg)
    assert all(p.is_meta for p in meta.parameters())
    assert count_parameters(meta) == count_parameters(BlueLM(cfg))
    loaded, _ = load_checkpoint(out, dtype=torch.float16)
    assert not any(t.is_meta for t in list(loaded.parameters()) + list(loaded.buffers()))
    assert {p.dtype for p in loaded.parameters()} == {torch.float16}
    cache = loaded.decoder.layers[0].attn.k_cache
    assert cache.dtype == torch.float16 and cache.shape == (1, 2, 32, 32) and not cache.any()
    assert loaded.decoder.rope_cos.dtype == torch.float32 and loaded.decoder.rope_cos[0].eq(1).all()


def test_count_parameters_by_part(saved):
    model, cfg, _ = saved
    parts = count_parameters(model)
    unique = sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once
    assert parts["total"] == unique
    assert parts["output_head"] == 0 and parts["decoder_embedding"] == 128 * 256
    assert parts["adapter"] == (128 * 4 * 256 + 256) + (256 * 256 + 256)


def test_truncated_file(saved, tmp_path):
    _, cfg, out = saved
    bad = save_checkpoint(saved[0], cfg, tmp_path / "bad")
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    _one_line_error(bad, r"model.safetensors: is truncated or not a safetensors file.*re-download or re-export")


def test_corrupt_bytes(saved, tmp_path):
    bad = save_checkpoint(saved[0], saved[1], tmp_path / "bad")
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[8:40] = b"\xff" * 32  # garbage where the JSON header starts
    (bad / "model.safetensors").write_bytes(bytes(data))
    _one_line_error(bad, "is truncated or not a safetensors file")


def _rewrite(folder, edit) -> None:
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def test_missing_tensor(saved, tmp_path):
    bad = save_checkpoint(saved[0], saved[1], tmp_path / "bad")
    _rewrite(bad, lambda t: t.pop("decoder.layers.1.mlp.up.weight"))
    msg = _one_line_error(bad, "missing tensors decoder.layers.1.mlp.up.weight;")
    assert msg.endswith("the weights are incomplete or for another model")


def test_unexpected_tensor(saved, tmp_path):
    bad = save_checkpoint(saved[0], saved[1], tmp_path / "bad")
    _rewrite(bad, lambda t: t.update({"decoder.layers.7.attn.q.weight": torch.zeros(2, 2)}))
    _one_line_error(bad, r"unexpected tensors decoder\.layers\.7\.attn\.q\.weight;")


def test_config_does_not_match_weights(saved, tmp_path):
    bad = save_checkpoint(saved[0], saved[1], tmp_path / "bad")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["decoder"]["ffn_dim"] = 512
    (bad / "config.json").write_text(json.dumps(cfg))
    msg = _one_line_error(bad, r"decoder\.layers\.0\.mlp\.(gate|up)\.weight: checkpoint has \[768, 256\], "
                          r"config expects \[512, 256\]")
    assert "(and 5 more)" in msg  # gate, up, down of two layers


def test_missing_folder_and_files(saved, tmp_path):
    _one_line_error(tmp_path / "nope", "no such checkpoint folder")
    (tmp_path / "empty").mkdir()
    _one_line_error(tmp_path / "empty", "no model.safetensors or model.safetensors.index.json")
    only_weights = tmp_path / "w"
    only_weights.mkdir()
    (only_weights / "model.safetensors").write_bytes((saved[2] / "model.safetensors").read_bytes())
    with pytest.raises(ConfigError, match="no config.json"):
        load_checkpoint(only_weights)


def test_missing_shard(saved, tmp_path):
    out = save_checkpoint(saved[0], saved[1], tmp_path / "sh", max_shard_bytes=400_000)
    (out / f"model-00002-of-{len(weight_files(out)):05d}.safetensors").unlink()
    _one_line_error(out, "shard model-00002-of-.* is missing; re-download it")


def test_pickle_files_are_never_read(saved, tmp_path):
    folder = tmp_path / "pt"
    folder.mkdir()
    (folder / "config.json").write_text((saved[2] / "config.json").read_text())
    torch.save(saved[0].state_dict(), folder / "pytorch_model.bin")
    _one_line_error(folder, "no model.safetensors")
