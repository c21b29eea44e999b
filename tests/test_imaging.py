"""AnyRes imaging: grid rule and normalisation against the shared vectors, tiling order, bad images."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bluelm_edge.errors import ImageError
from bluelm_edge.imaging import choose_grid, load_image, n_tiles, normalise, preprocess
from bluelm_edge.model.config import tiny

VECTORS = Path(__file__).parent / "vectors" / "tiling.json"


def _vectors() -> dict:
    return json.loads(VECTORS.read_text())


# ---- grid rule ---------------------------------------------------------------------------------
def test_vectors_file_covers_the_cases():
    cases = _vectors()["cases"]
    assert len(cases) >= 15
    assert {1, 4, 9, 16} <= {c["max_tiles"] for c in cases}
    ratios = [c["width"] / c["height"] for c in cases]
    assert max(ratios) >= 100 and min(ratios) <= 0.01  # extreme aspect ratios


@pytest.mark.parametrize("case", _vectors()["cases"], ids=lambda c: f"{c['width']}x{c['height']}-{c['max_tiles']}")
def test_grid_vector(case):
    grid = choose_grid(case["width"], case["height"], case["max_tiles"], case["tile_size"])
    assert list(grid) == case["grid"]
    assert n_tiles(grid) == case["tiles"]


def test_grid_rule_by_hand():
    # same ratio: the fewest tiles that keep resolution (2x2 = 756 px >= 500), else the most tiles
    assert choose_grid(500, 500, 9, 378) == (2, 2)
    assert choose_grid(300, 300, 9, 378) == (1, 1)
    assert choose_grid(5000, 5000, 9, 378) == (3, 3)
    # the closest log-ratio wins over more tiles: 1000x250 is exactly 4:1
    assert choose_grid(1000, 250, 16, 378) == (4, 1)
    assert choose_grid(250, 1000, 16, 378) == (1, 4)
    assert choose_grid(4000, 100, 1, 378) == (1, 1)
    with pytest.raises(ImageError):
        choose_grid(0, 10, 4, 64)


# ---- normalisation -----------------------------------------------------------------------------
def test_normalise_vector():
    v = _vectors()["normalise"]
    out = normalise(np.array([[v["pixel_in"]]], dtype=np.uint8), v["mean"], v["std"])
    assert out.shape == (3, 1, 1) and out.dtype == torch.float32
    assert out[:, 0, 0].tolist() == pytest.approx(v["pixel_out"], abs=1e-6)
    expected = [(p / 255 - m) / s for p, m, s in zip(v["pixel_in"], v["mean"], v["std"], strict=True)]
    assert v["pixel_out"] == pytest.approx(expected, abs=1e-5)  # the vector itself is the formula


# ---- tiling --------------------------------------------------------------------------------------
QUADRANTS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]  # TL, TR, BL, BR


def _quadrant_image(s: int) -> Image.Image:
    a = np.zeros((2 * s, 2 * s, 3), dtype=np.uint8)
    for k, colour in enumerate(QUADRANTS):
        r, c = divmod(k, 2)
        a[r * s:(r + 1) * s, c * s:(c + 1) * s] = colour
    return Image.fromarray(a)


def _solid(colour, cfg, s):
    return normalise(np.full((s, s, 3), colour, dtype=np.uint8), cfg.image_mean, cfg.image_std)


def test_thumbnail_first_then_row_major_tiles():
    cfg = tiny()
    cfg.max_tiles = 4
    s = cfg.vision.image_size
    out = preprocess(_quadrant_image(s), cfg)
    assert out.grid == (2, 2)
    assert out.pixels.shape == (5, 3, s, s) and out.pixels.dtype == torch.float32
    assert out.n_tokens == 5 * 16
    for k, colour in enumerate(QUADRANTS):
        assert torch.equal(out.pixels[1 + k], _solid(colour, cfg, s)), k
    thumb = out.pixels[0]  # the whole image at S x S: quadrant colours away from the seams
    for (y, x), colour in zip([(5, 5), (5, s - 6), (s - 6, 5), (s - 6, s - 6)], QUADRANTS, strict=True):
        want = torch.tensor([(c / 255 - 0.5) / 0.5 for c in colour])
        assert torch.allclose(thumb[:, y, x], want, atol=1e-6)


def test_single_tile_has_no_thumbnail_and_is_resized():
    cfg = tiny()  # max_tiles 1
    img = Image.new("RGB", (100, 50), (10, 20, 30))
    out = preprocess(img, cfg)
    assert out.grid == (1, 1) and out.pixels.shape == (1, 3, 64, 64) and out.n_tokens == 16
    assert torch.allclose(out.pixels[0], _solid((10, 20, 30), cfg, 64), atol=1e-6)


def test_wide_image_gets_two_columns_plus_thumbnail(tmp_path):
    cfg = tiny()
    cfg.max_tiles = 4
    a = np.zeros((64, 128, 3), dtype=np.uint8)
    a[:, 64:] = 200
    path = tmp_path / "wide.png"
    Image.fromarray(a).save(path)
    out = preprocess(path, cfg)
    assert out.grid == (2, 1) and out.pixels.shape[0] == 3 and out.n_tokens == 48
    assert torch.equal(out.pixels[1], _solid((0, 0, 0), cfg, 64))
    assert torch.equal(out.pixels[2], _solid((200, 200, 200), cfg, 64))


# ---- loading and bad images ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "value", "rgb"),
    [("L", 100, (100, 100, 100)), ("LA", (100, 255), (100, 100, 100)), ("RGBA", (1, 2, 3, 255), (1, 2, 3)),
     ("CMYK", (0, 0, 0, 0), (255, 255, 255)), ("1", 1, (255, 255, 255))],
)
def test_modes_convert_to_rgb(tmp_path, mode, value, rgb):
    img = Image.new(mode, (4, 3), value)
    out = load_image(img)
    assert out.mode == "RGB" and out.size == (4, 3) and out.getpixel((0, 0)) == rgb


def test_palette_with_transparency_from_file(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 9, 8, 7] + [0] * 762)
    img.info["transparency"] = 0
    path = tmp_path / "p.png"
    img.save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (9, 8, 7)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height pixels (a decompression bomb as far as the header goes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"") + _chunk(b"IEND", b"")


def _truncated_png(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    path = tmp_path / "truncated.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _i16_png(tmp_path: Path) -> Path:
    path = tmp_path / "depth.png"
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(path)
    return path


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda p: _write(p, "corrupt.png", b"this is not an image at all"), {}, "not a readable image"),
        (_truncated_png, {}, "cannot decode it"),
        (lambda p: Image.new("RGB", (1, 1)), {"max_pixels": 0}, "1x1 = 1 pixels is over the limit of 0"),
        (lambda p: Image.new("RGB", (40, 30)), {"max_pixels": 1000}, "over the limit of 1000"),
        (_i16_png, {}, "unsupported image mode I;16"),
        (lambda p: Image.new("I;16", (2, 2)), {}, "unsupported image mode I;16"),
        (lambda p: Image.new("F", (2, 2)), {}, "unsupported image mode F"),
        (lambda p: p / "missing.png", {}, "no such image file"),
        (lambda p: _write(p, "bomb.png", _png_header_only(20000, 20000)), {}, "decompression-bomb"),
    ],
    ids=["corrupt", "truncated", "1x1-over-limit", "over-limit", "i16-file", "i16-pil", "float", "missing", "bomb"],
)
def test_bad_images_are_one_line_image_errors(tmp_path, make, kwargs, match):
    with pytest.raises(ImageError, match=match) as err:
        load_image(make(tmp_path), **kwargs)
    assert "\n" not in str(err.value)
