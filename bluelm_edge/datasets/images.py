"""Pillow rendering of the synthetic image tasks: coloured shapes and black symbols on a 3x3 grid
of 16-px cells, seven-segment numbers in fixed slots.

Everything is drawn from a plain-data spec (no randomness here), on 64x64 RGB tiles (the tiny
preset's tile size), with shapes aligned to the 16-px cells that the 2x2 token merge sees, so a
small ViT can learn to read them. Glyphs are drawn as rectangles, so no font file is needed and
the pixels do not change between Pillow versions.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

SIZE = 64
CELL = 16  # one merged image token of the tiny preset (8-px patches, 2x2 merge)
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220)}
SYMBOLS = ("circle", "square", "triangle", "plus")  # first letters differ: so do first tokens

# Seven segments a..g as (x0, y0, x1, y1) in a 10x20 glyph box; a digit is the set it lights.
_SEGMENTS = {
    "a": (0, 0, 10, 3), "b": (7, 0, 10, 10), "c": (7, 10, 10, 20), "d": (0, 17, 10, 20),
    "e": (0, 10, 3, 20), "f": (0, 0, 3, 10), "g": (0, 8, 10, 11),
}
_DIGITS = {
    "0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc",
    "5": "afgcd", "6": "afgedc", "7": "abc", "8": "abcdefg", "9": "abcfgd",
}


def blank() -> Image.Image:
    """A white tile: the `--blank-images` stand-in that carries no information."""
    return Image.new("RGB", (SIZE, SIZE), BACKGROUND)


def _shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    elif kind == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    elif kind == "plus":
        w = max(2, (x1 - x0) // 4)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((cx - w // 2, y0, cx + w // 2, y1), fill=fill)
        draw.rectangle((x0, cy - w // 2, x1, cy + w // 2), fill=fill)
    else:
        raise ValueError(f"unknown shape {kind!r}")


def _cell_box(i: int, cols: int = 3) -> tuple[int, int, int, int]:
    """Cell i (row-major) of a grid of 16-px cells from the top-left corner: one merged token each."""
    x, y = (i % cols) * CELL, (i // cols) * CELL
    return (x + 2, y + 2, x + CELL - 3, y + CELL - 3)


def draw_shapes(cells: list[tuple[str, str] | None]) -> Image.Image:
    """9 cells (row-major, 3x3 of 16 px from the top-left), each None or (colour, shape)."""
    img = blank()
    draw = ImageDraw.Draw(img)
    for i, cell in enumerate(cells):
        if cell is not None:
            _shape(draw, cell[1], _cell_box(i), COLOURS[cell[0]])
    return img


def _digit(draw: ImageDraw.ImageDraw, ch: str, x: int, y: int) -> None:
    for seg in _DIGITS[ch]:
        x0, y0, x1, y1 = _SEGMENTS[seg]
        draw.rectangle((x + x0, y + y0, x + x1 - 1, y + y1 - 1), fill=INK)


def draw_numbers(top: int, bottom: int) -> Image.Image:
    """Two 2-digit numbers (leading zero drawn) in fixed slots: top half and bottom half."""
    img = blank()
    draw = ImageDraw.Draw(img)
    for row, value in enumerate((top, bottom)):
        for col, ch in enumerate(f"{value:02d}"):
            _digit(draw, ch, 19 + col * 16, 6 + row * 32)  # glyph centred in its 16x32 slot
    return img


def draw_grid(cells: list[str | None]) -> Image.Image:
    """9 cells (row-major, 3x3 of 16 px from the top-left), each None or a symbol name, in black."""
    img = blank()
    draw = ImageDraw.Draw(img)
    for i, sym in enumerate(cells):
        if sym is not None:
            _shape(draw, sym, _cell_box(i), INK)
    return img
