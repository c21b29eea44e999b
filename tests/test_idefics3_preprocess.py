"""Idefics3 / SmolVLM preprocessing: our numpy/PIL rules equal transformers' Idefics3ImageProcessor
and Idefics3Processor's prompt expansion, on the stored vectors and live on a saved folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from idefics3_vectors import PATH, digest, reference, vector_image

from bluelm_edge.errors import ConfigError, UsageError
from bluelm_edge.imaging_idefics3 import (
    Idefics3ImageRules,
    encoder_tiles,
    expand_prompt,
    image_prompt,
    image_seq_len,
    preprocess,
)

VECTORS = json.loads(PATH.read_text())
CASES = VECTORS["cases"]
IDS = [f"{c['rules']}-{c['height']}x{c['width']}-{c['mode']}" for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ours_equals_the_vectors(case):
    rules = Idefics3ImageRules.from_dict(VECTORS["rules"][case["rules"]])
    out = preprocess(vector_image(case["height"], case["width"], case["mode"]), rules)
    assert (out.rows, out.cols, out.pixels.shape[0]) == (case["rows"], case["cols"], case["tiles"])
    assert list(out.pixels.shape) == case["shape"] and out.pixels.dtype == torch.float32
    assert digest(out.pixels.numpy()) == case["sha256"]  # bit-identical pixel values
    assert out.pixels[-1, :, 3, 5].tolist() == case["samples"]
    assert expand_prompt(VECTORS["prompt_in"], [out], VECTORS["seq"]) == case["prompt"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vectors_equal_transformers(case):
    pytest.importorskip("transformers")
    ref = reference(VECTORS["rules"][case["rules"]], case["height"], case["width"], case["mode"])
    assert ref == {k: case[k] for k in ref}


def test_tile_counts_follow_the_rule():
    """2 x 3 tiles + the global image for a 20 x 30 image at longest edge 96 and 32-px tiles."""
    counts = {(c["height"], c["width"]): (c["rows"], c["cols"]) for c in CASES if c["rules"] == "split"}
    assert counts[(20, 30)] == (2, 3) and counts[(200, 90)] == (3, 2) and counts[(64, 64)] == (3, 3)


def test_image_prompt_layout():
    text = image_prompt(1, 2, 1)
    assert text == ("<fake_token_around_image><row_1_col_1><image><fake_token_around_image><row_1_col_2><image>\n"
                    "\n<fake_token_around_image><global-img><image><fake_token_around_image>")
    assert image_prompt(0, 0, 2) == "<fake_token_around_image><global-img><image><image><fake_token_around_image>"


def test_placeholder_count_mismatch_is_one_line():
    img = preprocess(vector_image(10, 10), Idefics3ImageRules(longest_edge=32, tile=32))
    with pytest.raises(UsageError, match="2 <image> tokens but 1 images"):
        expand_prompt("<image><image>", [img], 4)


def test_encoder_tiles_crop_to_the_patch_grid():
    px = torch.arange(2 * 3 * 40 * 40, dtype=torch.float32).reshape(2, 3, 40, 40)
    assert torch.equal(encoder_tiles(px, 36), px[:, :, :36, :36])


def test_rules_from_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="no preprocessor_config.json"):
        Idefics3ImageRules.load(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}, "resample": 1}))
    (tmp_path / "processor_config.json").write_text('{"image_seq_len": 64}')
    rules = Idefics3ImageRules.load(tmp_path)
    assert (rules.longest_edge, rules.tile, rules.resample) == (2048, 512, 1) and image_seq_len(tmp_path) == 64


def test_processor_of_a_saved_folder(tmp_path):
    """The real processor (saved with save_pretrained, tokenizer from `tokenizers`) on a chat prompt with
    an image: our pixels and our expanded prompt's token ids equal its pixel_values and input_ids."""
    pytest.importorskip("transformers")
    from idefics3_folder import SEQ, make_folder
    from tokenizers import Tokenizer

    _, processor = make_folder(tmp_path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this image?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = vector_image(100, 150)
    ref = processor(text=text, images=[image], return_tensors="np")
    ours = preprocess(image, Idefics3ImageRules.load(tmp_path))
    assert image_seq_len(tmp_path) == SEQ
    assert np.array_equal(ours.pixels.numpy(), ref["pixel_values"][0]) and ours.pixels.shape[0] == 5
    ids = Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode(expand_prompt(text, [ours], SEQ)).ids
    assert ids == ref["input_ids"][0].tolist()


def test_transparency_is_composited_onto_white():
    """transformers composites alpha onto white; dropping it (PIL's RGBA -> RGB) gives other pixels."""
    case = next(c for c in CASES if c["mode"] == "RGBA")
    rules = Idefics3ImageRules.from_dict(VECTORS["rules"][case["rules"]])
    dropped = preprocess(vector_image(case["height"], case["width"], "RGBA").convert("RGB"), rules)
    assert digest(dropped.pixels.numpy()) != case["sha256"]
