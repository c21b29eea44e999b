"""Idefics3 / SmolVLM image preprocessing and image prompts (numpy + PIL; no transformers).

The rules of transformers' `Idefics3ImageProcessor` (its PIL backend), step by step on uint8 RGB
(transparency composited onto white first, as transformers' `convert_to_rgb` does):
1. resize (LANCZOS by default) so the longest edge is `size.longest_edge` (always, up or down),
   the other edge `int(long / aspect)` rounded up to even, both kept <= 4096;
2. with splitting, resize the longer edge up to a multiple of `max_image_size.longest_edge` (the
   tile side S) and the shorter to the same aspect, then up to a multiple of S; if that is more
   than one tile, cut `rows x cols` S x S tiles row-major and append the global image (the
   step-2 image resized to S x S) LAST; one tile is the image alone (rows = cols = 0). Without
   splitting the image is resized to S x S;
3. rescale (`v * rescale_factor` in float64, then float32) and normalise (`(v - mean) / std` in
   float32) each tile.

`image_prompt(rows, cols, seq)` is the processor's text for one image: per tile
`<fake_token_around_image><row_r_col_c>` + `<image>` x seq (a "\n" after each row, one more
before the global image), then `<fake_token_around_image><global-img>` + `<image>` x seq +
`<fake_token_around_image>`; `expand_prompt` replaces each `<image>` of a prompt in order.
Vectors: `tests/vectors/idefics3_preprocess.json`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bluelm_edge.errors import ConfigError, UsageError

MAX_IMAGE_SIZE = 4096  # transformers' absolute limit on either edge after step 1
PREPROCESSOR, PROCESSOR = "preprocessor_config.json", "processor_config.json"
FAKE_IMAGE, IMAGE, GLOBAL_IMAGE = "<fake_token_around_image>", "<image>", "<global-img>"


@dataclass
class Idefics3ImageRules:
    """The fields of a `preprocessor_config.json` the Idefics3 rules read."""

    longest_edge: int = 4 * 364  # size.longest_edge
    tile: int = 364  # max_image_size.longest_edge
    split: bool = True  # do_image_splitting
    resize: bool = True  # do_resize
    resample: int = Image.Resampling.LANCZOS
    rescale: bool = True
    rescale_factor: float = 1 / 255
    normalize: bool = True
    mean: tuple[float, ...] = field(default=(0.5, 0.5, 0.5))
    std: tuple[float, ...] = field(default=(0.5, 0.5, 0.5))

    @classmethod
    def from_dict(cls, d: dict) -> Idefics3ImageRules:
        """From a `preprocessor_config.json` dict (transformers' defaults where a key is absent)."""
        size, tile = d.get("size") or {}, d.get("max_image_size") or {}
        if "longest_edge" not in size and size:
            raise ConfigError("preprocessor_config.json: size must give longest_edge (Idefics3 resizes by it)")
        return cls(
            longest_edge=int(size.get("longest_edge", 4 * 364)), tile=int(tile.get("longest_edge", 364)),
            split=bool(d.get("do_image_splitting", True)), resize=bool(d.get("do_resize", True)),
            resample=int(d.get("resample", Image.Resampling.LANCZOS)), rescale=bool(d.get("do_rescale", True)),
            rescale_factor=float(d.get("rescale_factor", 1 / 255)), normalize=bool(d.get("do_normalize", True)),
            mean=tuple(d.get("image_mean", (0.5, 0.5, 0.5))), std=tuple(d.get("image_std", (0.5, 0.5, 0.5))),
        )

    @classmethod
    def load(cls, folder: Path) -> Idefics3ImageRules:
        """From a model folder: `preprocessor_config.json` (the Hub's SmolVLM files), else the
        `image_processor` section of `processor_config.json` (what transformers 5 saves)."""
        folder = Path(folder)
        if (folder / PREPROCESSOR).is_file():
            return cls.from_dict(_read_json(folder / PREPROCESSOR))
        section = _read_json(folder / PROCESSOR).get("image_processor") if (folder / PROCESSOR).is_file() else None
        if not isinstance(section, dict):
            raise ConfigError(f"{folder}: no {PREPROCESSOR} (or an image_processor section in {PROCESSOR}); "
                              "an Idefics3 folder needs it for images")
        return cls.from_dict(section)


def processor_dict(folder: Path) -> dict:
    """The folder's image rules and `image_seq_len` as one `processor_config.json` object (what a
    bundle carries; `Idefics3ImageRules.load` and `image_seq_len` read it back)."""
    folder = Path(folder)
    if (folder / PREPROCESSOR).is_file():
        section = _read_json(folder / PREPROCESSOR)
    else:
        Idefics3ImageRules.load(folder)  # the one-line error when there are no rules
        section = _read_json(folder / PROCESSOR)["image_processor"]
    return {"image_processor": section, "image_seq_len": image_seq_len(folder),
            "processor_class": "Idefics3Processor"}


def image_seq_len(folder: Path) -> int | None:
    """`image_seq_len` of the folder's processor_config.json (None when absent)."""
    path = Path(folder) / PROCESSOR
    value = _read_json(path).get("image_seq_len") if path.is_file() else None
    return None if value is None else int(value)


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err}); re-download it") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: must hold a JSON object")
    return d


@dataclass
class Idefics3Image:
    """One preprocessed image: `pixels[T, 3, S, S]` float32 (tiles row-major, global image last)."""

    pixels: torch.Tensor
    rows: int  # 0 and 0: one tile, no split
    cols: int


# ---- sizes -------------------------------------------------------------------------------------
def longest_edge_size(height: int, width: int, longest: int) -> tuple[int, int]:
    """Step 1: (height, width) with the longest edge `longest`, the other even, both <= 4096."""
    aspect = width / height
    if width >= height:
        width, height = longest, int(longest / aspect)
        height += height % 2
    else:
        height, width = longest, int(longest * aspect)
        width += width % 2
    height, width = max(height, 1), max(width, 1)
    aspect = width / height
    if width >= height and width > MAX_IMAGE_SIZE:
        width, height = MAX_IMAGE_SIZE, int(MAX_IMAGE_SIZE / aspect)
    elif height > width and height > MAX_IMAGE_SIZE:
        height, width = MAX_IMAGE_SIZE, int(MAX_IMAGE_SIZE * aspect)
    return max(height, 1), max(width, 1)


def tile_multiple_size(height: int, width: int, tile: int) -> tuple[int, int]:
    """Step 2: the longer edge rounded up to a multiple of the tile side, the shorter one scaled by
    the same aspect (`int`) and then rounded up (not the shorter edge itself rounded up)."""
    aspect = width / height
    if width >= height:
        width = math.ceil(width / tile) * tile
        return math.ceil(int(width / aspect) / tile) * tile, width
    height = math.ceil(height / tile) * tile
    return height, math.ceil(int(height * aspect) / tile) * tile


# ---- pixels --------------------------------------------------------------------------------------
def _resize(image: Image.Image, height: int, width: int, resample: int) -> Image.Image:
    return image.resize((width, height), resample=resample)


def _tiles(image: Image.Image, rules: Idefics3ImageRules) -> tuple[list[np.ndarray], int, int]:
    """Steps 1 and 2 on uint8: the HWC tiles, rows, cols."""
    if rules.resize:
        image = _resize(image, *longest_edge_size(image.height, image.width, rules.longest_edge), rules.resample)
    s = rules.tile
    if not rules.split:
        return [np.asarray(_resize(image, s, s, rules.resample))], 0, 0
    image = _resize(image, *tile_multiple_size(image.height, image.width, s), rules.resample)
    if image.height <= s and image.width <= s:
        return [np.asarray(image)], 0, 0
    rows, cols = image.height // s, image.width // s
    full = np.asarray(image)
    tiles = [full[r * s:(r + 1) * s, c * s:(c + 1) * s] for r in range(rows) for c in range(cols)]
    return [*tiles, np.asarray(_resize(image, s, s, rules.resample))], rows, cols


def _normalise(tile: np.ndarray, rules: Idefics3ImageRules) -> np.ndarray:
    """Step 3 on one HWC uint8 tile -> CHW float32, in transformers' dtypes."""
    x = tile.transpose(2, 0, 1)
    if rules.rescale:
        x = (x.astype(np.float64) * rules.rescale_factor).astype(np.float32)
    if rules.normalize:
        x = x.astype(np.float32)
        mean = np.asarray(rules.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(rules.std, dtype=np.float32)[:, None, None]
        x = (x - mean) / std
    return x.astype(np.float32)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB as transformers converts it: any transparency composited onto white (not dropped)."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def preprocess(image: Image.Image, rules: Idefics3ImageRules) -> Idefics3Image:
    """A decoded image -> its normalised tiles, rows and cols. Pass the PIL image as decoded (with its
    alpha): `imaging.load_image` drops transparency, transformers composites it onto white."""
    tiles, rows, cols = _tiles(to_rgb(image), rules)
    pixels = np.stack([_normalise(t, rules) for t in tiles])
    return Idefics3Image(torch.from_numpy(pixels), rows, cols)


def encoder_tiles(pixels: torch.Tensor, encoder_size: int) -> torch.Tensor:
    """Tiles as the vision tower takes them: the top-left `encoder_size` pixels (grid * patch),
    which is all transformers' "valid" patch convolution reads."""
    return pixels[:, :, :encoder_size, :encoder_size].contiguous()


# ---- prompt --------------------------------------------------------------------------------------
def image_prompt(rows: int, cols: int, seq: int) -> str:
    """The processor's expansion of one `<image>` for an image split rows x cols (0, 0: not split)."""
    glob = FAKE_IMAGE + GLOBAL_IMAGE + IMAGE * seq + FAKE_IMAGE
    if rows == 0 and cols == 0:
        return glob
    text = "".join(
        "".join(f"{FAKE_IMAGE}<row_{r + 1}_col_{c + 1}>" + IMAGE * seq for c in range(cols)) + "\n"
        for r in range(rows)
    )
    return text + "\n" + glob


def expand_prompt(text: str, images: list[Idefics3Image], seq: int) -> str:
    """`text` with its i-th `<image>` replaced by image i's expansion; counts must match."""
    parts = text.split(IMAGE)
    if len(parts) - 1 != len(images):
        raise UsageError(f"the prompt has {len(parts) - 1} {IMAGE} tokens but {len(images)} images were given; "
                          "give one image per placeholder")
    out = [parts[0]]
    for img, part in zip(images, parts[1:], strict=True):
        out += [image_prompt(img.rows, img.cols, seq), part]
    return "".join(out)
