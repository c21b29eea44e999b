"""Every bad input file is one line (file, line, what is wrong, what to do), exit 1 (2 for usage),
no traceback, no "internal error": train/calibrate JSONL chats, images, config.json, weight
headers, NaN weights, tokenizer.json, context overflow and --max-context (issue 16)."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from bluelm_edge.cli import main
from bluelm_edge.model.config import BlueLMConfig
from bluelm_edge.paths import DEFAULT_MODEL_DIR

MESSAGE_KEYS = "content, images, role, thinking"


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, list[str]]:
    """Run `bluelm-edge ARGS` through the console-script path: (exit code, stdout, stderr lines)."""
    monkeypatch.setattr(sys, "argv", ["bluelm-edge", *args])
    code = main._main()
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out and "internal error" not in out.err
    return code, out.out, out.err.splitlines()


def _png(path: Path, complete: bool = True) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "PNG")
    path.write_bytes(buf.getvalue() if complete else buf.getvalue()[:-12])  # cut: no IEND chunk
    return path


def _chat(user: dict | None = None) -> str:
    return json.dumps({"messages": [{"role": "user", "content": "What is it?", **(user or {})},
                                    {"role": "assistant", "content": "a square"}]})


def _jsonl(tmp_path: Path, *lines: str | bytes) -> Path:
    path = tmp_path / "chats.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def _train(monkeypatch, capsys, tmp_path, data: Path):
    out = tmp_path / "run"
    code, _, err = cli(monkeypatch, capsys, "train", "--init", str(DEFAULT_MODEL_DIR), "--data", str(data),
                       "--out", str(out), "--steps", "1", "--batch-size", "2")
    assert not out.exists()  # refused before any training
    return code, err


# ---- train --data ---------------------------------------------------------------------------
def test_train_rejects_a_misspelled_image_key(monkeypatch, capsys, tmp_path):
    _png(tmp_path / "a.png")
    data = _jsonl(tmp_path, _chat({"images": ["a.png"]}), _chat({"image": ["a.png"]}))
    assert _train(monkeypatch, capsys, tmp_path, data) == (
        1, [f"error: {data}:2: messages[0]: unknown key 'image'; valid keys: {MESSAGE_KEYS}"])


def test_train_rejects_a_string_images_value(monkeypatch, capsys, tmp_path):
    _png(tmp_path / "a.png")
    data = _jsonl(tmp_path, _chat({"images": "a.png"}))
    assert _train(monkeypatch, capsys, tmp_path, data) == (
        1, [f'error: {data}:1: messages[0].images must be a list of paths, e.g. ["cat.png"], got "a.png"'])


def test_train_finds_an_incomplete_image_before_training(monkeypatch, capsys, tmp_path):
    _png(tmp_path / "good.png")
    _png(tmp_path / "cut.png", complete=False)
    data = _jsonl(tmp_path, _chat({"images": ["good.png"]}), "", _chat({"images": ["cut.png"]}))
    assert _train(monkeypatch, capsys, tmp_path, data) == (
        1, [f"error: {data}:3: image 'cut.png' cannot be read: cannot decode it (truncated PNG file); "
            "is the file complete?"])


def test_train_non_utf8_jsonl_names_the_line(monkeypatch, capsys, tmp_path):
    data = _jsonl(tmp_path, _chat(), _chat(), _chat().replace("square", "squ\xe4re").encode("latin-1"))
    assert _train(monkeypatch, capsys, tmp_path, data) == (
        1, [f"error: {data}:3: not UTF-8 text (byte 0xe4); save the file as UTF-8"])


def test_train_wrong_types_in_a_message(monkeypatch, capsys, tmp_path):
    data = _jsonl(tmp_path, json.dumps({"messages": [{"role": "user", "content": 42},
                                                      {"role": "assistant", "content": "a"}]}))
    assert _train(monkeypatch, capsys, tmp_path, data) == (
        1, [f"error: {data}:1: messages[0].content must be a string, got 42"])


def test_calibrate_non_utf8_jsonl(monkeypatch, capsys, tmp_path):
    data = _jsonl(tmp_path, _chat().encode("utf-16"))
    code, _, err = cli(monkeypatch, capsys, "calibrate", "--data", str(data), "--out", str(tmp_path / "c"))
    assert (code, err) == (1, [f"error: {data}:1: not UTF-8 text (byte 0xff); save the file as UTF-8"])
    assert not (tmp_path / "c").exists()


# ---- images -----------------------------------------------------------------------------------
def test_chat_refuses_an_incomplete_png(monkeypatch, capsys, tmp_path):
    cut = _png(tmp_path / "cut.png", complete=False)
    code, _, err = cli(monkeypatch, capsys, "chat", "--prompt", "What is it?", "--image", str(cut))
    assert (code, err) == (1, [f"error: {cut}: cannot decode it (truncated PNG file); is the file complete?"])


# ---- checkpoints: config.json, weight headers, NaN weights -----------------------------------
@pytest.fixture
def checkpoint(tmp_path) -> Path:
    folder = tmp_path / "ck"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    return folder


def test_info_refuses_an_empty_config_and_garbage_weights(monkeypatch, capsys, checkpoint):
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "model.safetensors").write_bytes(b"\x07" * 4096)
    code, _, err = cli(monkeypatch, capsys, "info", str(checkpoint))
    assert (code, err) == (1, [f"error: {checkpoint / 'config.json'}: empty config; a config.json must give at "
                               "least name, vision, decoder (see bluelm_edge/assets/bluelm-tiny/config.json)"])


def test_info_reads_the_weight_headers(monkeypatch, capsys, checkpoint):
    (checkpoint / "model.safetensors").write_bytes(b"\x07" * 4096)
    code, _, err = cli(monkeypatch, capsys, "info", str(checkpoint))
    weights = checkpoint / "model.safetensors"
    assert (code, err) == (1, [f"error: {weights}: is truncated or not a safetensors file (Error while "
                               "deserializing header: header too large); re-download or re-export it"])


def test_info_checks_weight_shapes_and_dtypes_against_the_config(monkeypatch, capsys, checkpoint):
    weights = checkpoint / "model.safetensors"
    tensors = load_file(weights)
    name = "decoder.norm.weight"
    save_file({**tensors, name: tensors[name].to(torch.int32)}, weights)
    code, _, err = cli(monkeypatch, capsys, "info", str(checkpoint))
    assert (code, err) == (1, [f"error: {weights}: {name} is stored as I32, not a float type (F32, F16, BF16, "
                               "F64); the weights are corrupt or not a model's"])
    cfg = json.loads((checkpoint / "config.json").read_text())
    cfg["decoder"]["ffn_dim"] = 512
    (checkpoint / "config.json").write_text(json.dumps(cfg))
    code, _, err = cli(monkeypatch, capsys, "info", str(checkpoint))
    assert code == 1 and err[0].startswith(f"error: {checkpoint}: decoder.layers.0.mlp.") and len(err) == 1
    assert err[0].endswith("config expects [512, 256] (and 11 more); the config.json does not match these weights")


def test_nan_weights_are_reported_at_load(monkeypatch, capsys, checkpoint):
    weights = checkpoint / "model.safetensors"
    tensors = load_file(weights)
    name = "decoder.layers.1.attn.q.weight"
    tensors[name][3, :5] = float("nan")
    save_file(tensors, weights)
    code, _, err = cli(monkeypatch, capsys, "chat", str(checkpoint), "--prompt", "hi")
    assert (code, err) == (1, [f"error: {weights}: {name} has 5 NaN/Inf values of 65536; the checkpoint is broken "
                               "(a diverged training run?): retrain or use an earlier checkpoint"])


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: {k: v for k, v in d.items() if k != "name"},
     "missing key 'name'; a config.json must give name, vision, decoder"),
    (lambda d: {**d, "decoder": {k: v for k, v in d["decoder"].items() if k != "dim"}},
     "missing key decoder.dim; decoder must give vocab_size, dim, layers, heads, kv_heads, ffn_dim, max_seq_len"),
    (lambda d: {**d, "max_tile": 2},
     "unknown key max_tile; valid keys: adapter, decoder, default_thinking_budget, image_mean, image_std, "
     "max_tiles, name, tokens, vision"),
    (lambda d: {**d, "vision": {**d["vision"], "patch": 8}},
     "unknown key vision.patch; valid keys: channels, heads, image_size, layers, mlp_dim, norm_eps, patch_size, "
     "width"),
    (lambda d: {**d, "decoder": {**d["decoder"], "dim": "256"}}, 'decoder.dim must be an integer, got "256"'),
    (lambda d: {**d, "decoder": {**d["decoder"], "tie_embeddings": 1}},
     "decoder.tie_embeddings must be true or false, got 1"),
    (lambda d: {**d, "image_std": [0.5]}, "image_std must be a list of 3 numbers, got [0.5]"),
    (lambda d: [d], "must be a JSON object (a model config), got a list"),
    (lambda d: {**d, "vision": "siglip"}, "vision must be a JSON object, got a string"),
    (lambda d: {**d, "decoder": {**d["decoder"], "kv_heads": 3}}, "invalid config: decoder.kv_heads (3) must divide "
     "heads (8)"),
])
def test_config_json_keys_and_types(monkeypatch, capsys, checkpoint, edit, message):
    path = checkpoint / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    code, _, err = cli(monkeypatch, capsys, "info", str(checkpoint))
    assert (code, err) == (1, [f"error: {path}: {message}"])


def test_the_shipped_config_gives_every_essential_key():
    assert BlueLMConfig.load(DEFAULT_MODEL_DIR / "config.json").name == "bluelm-tiny"


def test_non_utf8_tokenizer_json(monkeypatch, capsys, checkpoint):
    path = checkpoint / "tokenizer.json"
    path.write_bytes(path.read_bytes().replace(b'"version"', b'"v\xe9rsion"', 1))
    code, _, err = cli(monkeypatch, capsys, "chat", str(checkpoint), "--prompt", "hi")
    assert (code, err) == (1, [f"error: {path}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"])


# ---- the context --------------------------------------------------------------------------------
def test_chat_prompt_longer_than_the_context(monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "chat", "--prompt", "a" * 600)
    assert (code, err) == (2, ["error: prompt is 604 tokens but the context holds 512 (one more is needed to "
                               "answer); shorten the prompt or pass a larger --max-context"])
    code, out, err = cli(monkeypatch, capsys, "chat", "--prompt", "a" * 600, "--max-context", "640",
                         "--max-new-tokens", "1")
    assert code == 0 and "1 tokens" in out
    assert err == ["warning: --max-context 640 is beyond the 512 positions bluelm-tiny was trained for; text past "
                   "position 512 is likely garbage (use --max-context 512 or less)"]


def test_export_warns_for_a_context_beyond_training(monkeypatch, capsys, tmp_path):
    code, _, err = cli(monkeypatch, capsys, "export", "--max-context", "100000", "--backend", "qnn",
                       "--recipe", "fp32", "--out", str(tmp_path / "b"))
    assert (code, err) == (2, [
        "warning: --max-context 100000 is beyond the 512 positions bluelm-tiny was trained for; text past "
        "position 512 is likely garbage (use --max-context 512 or less)",
        "error: --recipe fp32 is XNNPACK only; qnn needs a quantized recipe"])
