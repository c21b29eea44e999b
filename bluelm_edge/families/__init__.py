"""Model families: one description per family (config mapping, weight keys, tokens, template,
thinking), looked up by a folder's config.json. See `families/base.py` for the interface.

Import order sets the precedence of `detect`: our own format first, then the Hub text families.
A new family is a module here that calls `register(...)`, imported below.
"""

from bluelm_edge.families import bluelm, hub_text, idefics3  # noqa: F401  (they register themselves)
from bluelm_edge.families.base import (
    Family,
    ImageReader,
    PreparedImage,
    Source,
    by_name,
    detect,
    open_folder,
    read_raw,
    register,
    supported,
)

__all__ = ["Family", "ImageReader", "PreparedImage", "Source", "by_name", "detect", "open_folder", "read_raw",
           "register", "supported"]
