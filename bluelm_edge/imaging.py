"""AnyRes imaging: safe image loading, grid choice, tiling, thumbnail and normalisation.

An image becomes `T` square tiles of `S = cfg.vision.image_size` pixels: it is resized
(bicubic) to `cols*S x rows*S`, cut into `cols*rows` tiles row-major, and, when that is more
than one tile, a global thumbnail (the whole image resized to `S x S`) goes FIRST. Each tile
is normalised as `(v / 255 - mean) / std` per channel in float32. The Java port reads
`tests/vectors/tiling.json` for the grid rule and the normalisation numbers.

Grid rule (`choose_grid`, deterministic):
1. candidates: every `(cols, rows)` with `cols, rows >= 1` and `cols * rows <= max_tiles`;
2. keep those whose `|ln(cols/rows) - ln(width/height)|` is within 1e-9 of the smallest;
3. among them, the fewest tiles that keep resolution (`cols*S >= width` and
   `rows*S >= height`); if none keeps it, the most tiles;
4. any remaining tie: more columns first.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageOps

from bluelm_edge.errors import ImageError

if TYPE_CHECKING:
    from bluelm_edge.model.config import BlueLMConfig

DEFAULT_MAX_PIXELS = 50_000_000  # below PIL's own decompression-bomb limit (~89M), which also applies
_CONVERTIBLE = {"RGB", "RGBA", "RGBX", "L", "LA", "1", "P", "PA", "CMYK"}
_TIE = 1e-9
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)

ImageInput = str | Path | Image.Image


@dataclass
class ImageTiles:
    """One preprocessed image: `pixels[T, 3, S, S]` float32, normalised; thumbnail first if T > 1."""

    pixels: torch.Tensor
    grid: tuple[int, int]  # (cols, rows)
    n_tokens: int  # T * tokens_per_tile: the number of <image> tokens in the prompt


# ---- loading ---------------------------------------------------------------------------------
def load_image(src: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS, *, keep_alpha: bool = False) -> Image.Image:
    """Open, check and convert an image to RGB (`keep_alpha`: RGBA when it has transparency, for
    rules that composite it, as Idefics3's do); any problem is a one-line ImageError."""
    name = "image" if isinstance(src, Image.Image) else str(src)
    image = src if isinstance(src, Image.Image) else _open(Path(src))
    _check_size(image, name, max_pixels)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF
    except (*_DECODE_ERRORS, Image.DecompressionBombError) as err:
        raise ImageError(f"{name}: cannot decode it ({_first_line(err)}); is the file complete?") from None
    if keep_alpha and image.mode in _CONVERTIBLE and ("A" in image.getbands() or "transparency" in image.info):
        return image.convert("RGBA")
    return _to_rgb(image, name)


def _open(path: Path) -> Image.Image:
    """Open after `verify()` (structure and checksums: a PNG cut before its end chunk decodes
    "fine" otherwise); `load_image` then decodes every pixel, which catches a cut JPEG."""
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{path}: over PIL's decompression-bomb pixel limit; shrink it first") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: not a readable image ({_first_line(err)}); use PNG or JPEG") from None
    try:
        image.verify()
    except _DECODE_ERRORS as err:
        raise ImageError(f"{path}: cannot decode it ({_first_line(err)}); is the file complete?") from None
    finally:
        image.close()
    return Image.open(path)


def _check_size(image: Image.Image, name: str, max_pixels: int) -> None:
    w, h = image.size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: empty image ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{name}: {w}x{h} = {w * h} pixels is over the limit of {max_pixels}; shrink it")


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    if image.mode not in _CONVERTIBLE:
        raise ImageError(
            f"{name}: unsupported image mode {image.mode} (16-bit or float pixels); convert it to 8-bit RGB"
        )
    if image.mode in ("P", "PA"):  # palette transparency goes through RGBA, as PIL asks
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# ---- grid ------------------------------------------------------------------------------------
def choose_grid(width: int, height: int, max_tiles: int, tile_size: int) -> tuple[int, int]:
    """The AnyRes grid `(cols, rows)` for an image (the rule is in the module docstring)."""
    if width < 1 or height < 1 or max_tiles < 1 or tile_size < 1:
        raise ImageError(f"bad grid request: {width}x{height}, max_tiles={max_tiles}, tile_size={tile_size}")
    target = math.log(width / height)
    grids = [(c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles // c + 1)]
    dist = {g: abs(math.log(g[0] / g[1]) - target) for g in grids}
    best = min(dist.values())
    tied = [g for g in grids if dist[g] <= best + _TIE]
    keeps = [g for g in tied if g[0] * tile_size >= width and g[1] * tile_size >= height]
    if keeps:
        return min(keeps, key=lambda g: (g[0] * g[1], -g[0]))
    return max(tied, key=lambda g: (g[0] * g[1], g[0]))


def n_tiles(grid: tuple[int, int]) -> int:
    """Tiles an image of this grid becomes, counting the thumbnail added when there is > 1 tile."""
    cols, rows = grid
    return cols * rows + (1 if cols * rows > 1 else 0)


# ---- tiles -----------------------------------------------------------------------------------
def normalise(rgb: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 `[H, W, 3]` -> float32 `[3, H, W]` as `(v / 255 - mean) / std`."""
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).to(torch.float32) / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def tile_images(image: Image.Image, grid: tuple[int, int], tile_size: int) -> list[Image.Image]:
    """The tiles of an RGB image for `grid`: thumbnail first (if more than one tile), then row-major."""
    cols, rows = grid
    s = tile_size
    big = image if image.size == (cols * s, rows * s) else image.resize((cols * s, rows * s), Image.BICUBIC)
    tiles = [big.crop((c * s, r * s, (c + 1) * s, (r + 1) * s)) for r in range(rows) for c in range(cols)]
    if len(tiles) > 1:
        thumb = image if image.size == (s, s) else image.resize((s, s), Image.BICUBIC)
        tiles.insert(0, thumb)
    return tiles


def preprocess(image: ImageInput, cfg: BlueLMConfig, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageTiles:
    """Load (if needed), tile and normalise one image for the vision encoder."""
    if cfg.vision is None:
        raise ImageError(f"{cfg.name} is a text-only model; it takes no images (drop the image)")
    rgb = load_image(image, max_pixels)
    s = cfg.vision.image_size
    grid = choose_grid(rgb.width, rgb.height, cfg.max_tiles, s)
    tiles = tile_images(rgb, grid, s)
    pixels = torch.stack([normalise(np.asarray(t), cfg.image_mean, cfg.image_std) for t in tiles])
    # pixels: [T, 3, S, S]
    return ImageTiles(pixels=pixels, grid=grid, n_tokens=len(tiles) * cfg.image_tokens_per_tile)
