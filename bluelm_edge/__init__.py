"""bluelm-edge: BlueLM-2.5-3B-style multimodal reasoning models from checkpoint to Android phone."""

__version__ = "0.1.0"
