"""Calibration sets (shipped default, user JSONL, image folders), validation, and the atomic capture."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from bluelm_edge.errors import DataError
from bluelm_edge.quant.calibration import default_set_dir, load_set, make_default_set
from bluelm_edge.quant.capture import load_calibration, run_calibration


def test_default_set_is_shipped_and_mixed():
    s = load_set()
    assert len(s) == 48
    assert sum(x.think for x in s) == 32  # think and cut forms; a third is non-thinking
    assert sum(1 for x in s if any(m.images for m in x.messages)) == 28
    assert sum(1 for x in s if len(x.messages) > 2) == 12  # long: two-turn chats
    assert len(load_set(samples=5)) == 5


def test_default_set_is_reproducible(tmp_path):
    out = make_default_set(tmp_path / "d", n=48)
    assert (out / "samples.jsonl").read_bytes() == (default_set_dir() / "samples.jsonl").read_bytes()
    shipped = sorted(p.name for p in (default_set_dir() / "images").iterdir())
    assert sorted(p.name for p in (out / "images").iterdir()) == shipped
    for name in shipped[:3]:
        assert (out / "images" / name).read_bytes() == (default_set_dir() / "images" / name).read_bytes()


def _jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]})


def test_bad_json_names_file_and_line(tmp_path):
    f = _jsonl(tmp_path / "c.jsonl", [GOOD, "{not json"])
    with pytest.raises(DataError, match=r"c.jsonl:2: invalid JSON"):
        load_set(f)


def test_missing_and_unreadable_images(tmp_path):
    chat = {"messages": [{"role": "user", "content": "look", "images": ["x.png"]},
                         {"role": "assistant", "content": "ok"}]}
    f = _jsonl(tmp_path / "c.jsonl", [GOOD, json.dumps(chat)])
    with pytest.raises(DataError, match=r"c.jsonl:2: image 'x.png' not found"):
        load_set(f)
    (tmp_path / "x.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"c.jsonl:2: image 'x.png' cannot be read"):
        load_set(f)


def test_empty_sets(tmp_path):
    with pytest.raises(DataError, match="no chats found"):
        load_set(_jsonl(tmp_path / "e.jsonl", [""]))
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "prompts.txt").write_text("What is shown?\n")
    with pytest.raises(DataError, match="empty calibration set: no images"):
        load_set(tmp_path / "imgs")
    with pytest.raises(DataError, match="no such calibration file"):
        load_set(tmp_path / "nope.jsonl")


def test_image_folder_with_prompts(tmp_path):
    for i, colour in enumerate(["red", "blue", "green"]):
        Image.new("RGB", (64, 64), colour).save(tmp_path / f"{i}.png")
    (tmp_path / "prompts.txt").write_text("What colour?\nDescribe it.\n")
    s = load_set(tmp_path)
    assert [x.messages[0].content for x in s] == ["What colour?", "Describe it.", "What colour?"]
    assert all(x.generation_prompt and not x.think for x in s)


@pytest.fixture(scope="module")
def tiny_model():
    from bluelm_edge.model.seeded import seeded_model

    return seeded_model("tiny", 0)


def test_capture_round_trip(tmp_path, tiny_model):
    model, tok, cfg = tiny_model
    chosen = load_set(samples=5)  # sample 4 has an image
    out = run_calibration(model, tok, cfg, chosen, tmp_path / "calib")
    cal = load_calibration(out, cfg)
    assert cal.meta["samples"] == 5 and cal.meta["images"] == 1
    s = cal.samples[4]
    assert s["pixels"].shape == (1, 3, 64, 64)
    with torch.no_grad():
        expected = model.image_embeds(s["ids"], s["pixels"], None)
    torch.testing.assert_close(s["embeds"], expected, rtol=0, atol=0)
    assert int((s["ids"] == cfg.tokens.image).sum()) == 16
    pieces = cal.chunks("embeds", 16)
    assert sum(p[0].shape[1] for p in pieces) == sum(cal.meta["lengths"])
    assert pieces[1][1].tolist() == list(range(16, 16 + pieces[1][0].shape[1]))


def test_chat_format_calibration_keeps_bluelm_images(tiny_model):
    """Export calibrates in the family's format: for BlueLM that is the same ids, tiles and embeds as
    the format-free capture, image samples included (their AnyRes tiles through the family's reader)."""
    from bluelm_edge.quant.capture import calibrate_in_memory
    from bluelm_edge.text.formats import BlueLMFormat

    model, tok, cfg = tiny_model
    chosen = load_set(samples=5)  # sample 4 has an image
    plain = calibrate_in_memory(model, tok, cfg, chosen)
    chat = calibrate_in_memory(model, tok, cfg, chosen, BlueLMFormat(tok))
    assert chat.meta["format"] == "bluelm" and [s["pixels"] is None for s in chat.samples] == [True] * 4 + [False]
    for a, b in zip(plain.samples, chat.samples, strict=True):
        assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["embeds"], b["embeds"])
    assert torch.equal(plain.samples[4]["pixels"], chat.samples[4]["pixels"])


def test_interrupted_calibration_leaves_nothing_finished(tmp_path, tiny_model):
    model, tok, cfg = tiny_model

    def stop(i):
        if i == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_calibration(model, tok, cfg, load_set(samples=3), tmp_path / "calib", on_sample=stop)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="not a finished calibration"):
        load_calibration(tmp_path / "calib")


def test_corrupt_or_mismatched_calibration_is_refused(tmp_path, tiny_model):
    model, tok, cfg = tiny_model
    out = run_calibration(model, tok, cfg, load_set(samples=2), tmp_path / "calib")
    other = type(cfg).from_dict({**cfg.to_dict(), "max_tiles": 2})
    with pytest.raises(DataError, match="calibrated for another model config"):
        load_calibration(out, other)
    (out / "inputs.safetensors").write_bytes(b"truncated")
    with pytest.raises(DataError, match="incomplete or corrupt"):
        load_calibration(out, cfg)


def test_calibrate_cli(tmp_path, tiny_model):
    from typer.testing import CliRunner

    from bluelm_edge.cli.main import app
    from bluelm_edge.model.checkpoint import save_checkpoint

    model, tok, cfg = tiny_model
    tok.save(tmp_path / "tokenizer.json")
    ckpt = save_checkpoint(model, cfg, tmp_path / "ckpt", tmp_path / "tokenizer.json")
    res = CliRunner().invoke(app, ["calibrate", str(ckpt), "--samples", "3", "--out", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["samples"] == 3
    assert load_calibration(tmp_path / "c", cfg).samples[0]["ids"].shape[0] == 1
    bad = _jsonl(tmp_path / "bad.jsonl", [GOOD, GOOD, "[1,"])
    res = CliRunner().invoke(app, ["calibrate", str(ckpt), "--data", str(bad), "--out", str(tmp_path / "d")])
    assert res.exit_code != 0 and "bad.jsonl:3: invalid JSON" in str(res.exception)
    assert not (tmp_path / "d").exists()
