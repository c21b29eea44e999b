"""Tables that fit the terminal without cutting a value: names, ids and numbers stay whole.

`whole(table)` gives every column a minimum width of its longest word (header included) and
wraps between words (folding only as a last resort), so rich narrows a table to 80 columns by
wrapping text, never by ellipsizing the values a user must read, type or compare. The columns'
minimum widths must still add up to the width: commands lay out their tables so they do at 80.
"""

from __future__ import annotations

from rich import box
from rich.table import Table


def table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A compact table (no outer padding, light rules) with the named columns; `right`: numbers."""
    t = Table(title=title or None, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in columns:
        t.add_column(name, justify="right" if name in right else "left")
    return t


def whole(t: Table) -> Table:
    """Each column at least as wide as its longest word; wrap words, never ellipsize. A column
    of single words cannot wrap, so it is marked no_wrap: rich then narrows the others."""
    for column in t.columns:
        texts = [str(column.header), *(str(c) for c in column._cells)]
        words = [w for text in texts for w in text.split()]
        column.min_width = max(column.min_width or 0, max((len(w) for w in words), default=1))
        column.overflow = "fold"
        column.no_wrap = column.no_wrap or all(len(text.split()) <= 1 for text in texts)
    return t
