"""Makes `tests/vectors/idefics3_preprocess.json` from transformers' own Idefics3 processor.

Run `python tests/idefics3_vectors.py` to regenerate (needs transformers); the test file
`tests/test_idefics3_preprocess.py` checks our numpy/PIL rules against the stored vectors and,
when transformers is installed, the vectors against it again. Images are made from a formula
(`vector_image`), so a port (the Java core) can rebuild them without image files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

PATH = Path(__file__).parent / "vectors" / "idefics3_preprocess.json"
FORMULA = ("pixel (y, x) = ((7x + 3y) % 256, (x * y + 11) % 256, (13x ^ 5y) % 256), uint8 RGB; mode RGBA adds "
           "alpha (5xy + 40) % 256")
RULES = {  # preprocessor_config.json fields; tile 32 keeps the vectors small
    "split": {"size": {"longest_edge": 96}, "max_image_size": {"longest_edge": 32}, "do_image_splitting": True,
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 1},
    "imagenet": {"size": {"longest_edge": 64}, "max_image_size": {"longest_edge": 30}, "do_image_splitting": True,
                 "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 3},
    "one_tile": {"size": {"longest_edge": 32}, "max_image_size": {"longest_edge": 32}, "do_image_splitting": True,
                 "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 1},
    "no_split": {"size": {"longest_edge": 96}, "max_image_size": {"longest_edge": 32}, "do_image_splitting": False,
                 "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 1},
}
CASES = [("split", 20, 30), ("split", 100, 37), ("split", 64, 64), ("split", 50, 130), ("split", 200, 90),
         ("split", 8, 9), ("imagenet", 45, 61), ("imagenet", 97, 33), ("one_tile", 41, 23),
         ("no_split", 70, 40), ("split", 33, 47, "RGBA")]
SEQ = 2  # <image> tokens per tile in the prompt vectors
PROMPT = "User:<image>What is this?<end_of_utterance>\nAssistant:"


def vector_image(height: int, width: int, mode: str = "RGB") -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    planes = [(7 * x + 3 * y) % 256, (x * y + 11) % 256, ((13 * x) ^ (5 * y)) % 256]
    if mode == "RGBA":
        planes.append((5 * x * y + 40) % 256)
    return Image.fromarray(np.stack(planes, axis=-1).astype(np.uint8), mode)


def digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype="<f4").tobytes()).hexdigest()


def reference(rules: dict, height: int, width: int, mode: str = "RGB") -> dict:
    """transformers' Idefics3ImageProcessor on one image."""
    from transformers import Idefics3ImageProcessor

    proc = Idefics3ImageProcessor(**rules)
    out = proc(vector_image(height, width, mode), return_row_col_info=True, return_tensors="np")
    pixels = out["pixel_values"][0]
    return {"rows": int(out["rows"][0][0]), "cols": int(out["cols"][0][0]), "tiles": int(pixels.shape[0]),
            "shape": list(pixels.shape), "sha256": digest(pixels),
            "samples": [float(pixels[-1, c, 3, 5]) for c in range(3)]}


def prompt_reference(rows: int, cols: int) -> str:
    from transformers.models.idefics3.processing_idefics3 import Idefics3Processor

    info = {"rows": [[rows]], "cols": [[cols]]}
    holder = Idefics3Processor.__new__(Idefics3Processor)
    holder.fake_image_token, holder.image_token = "<fake_token_around_image>", "<image>"
    holder.global_image_tag, holder.image_seq_len = "<global-img>", SEQ
    return PROMPT.replace("<image>", holder.replace_image_token(info, 0))


def make() -> dict:
    cases = []
    for rules, h, w, *mode in CASES:
        mode = mode[0] if mode else "RGB"
        ref = reference(RULES[rules], h, w, mode)
        prompt = prompt_reference(ref["rows"], ref["cols"])
        cases.append({"rules": rules, "height": h, "width": w, "mode": mode, **ref, "prompt": prompt})
    return {"description": "Idefics3 image preprocessing (bluelm_edge/imaging_idefics3.py docstring), made by "
            "tests/idefics3_vectors.py from transformers' Idefics3ImageProcessor (PIL backend). sha256 is "
            "of pixel_values[T,3,S,S] as little-endian float32; samples are the global (last) tile's "
            "[c, 3, 5]; prompt is PROMPT with its <image> expanded at image_seq_len = seq.",
            "image": FORMULA, "seq": SEQ, "prompt_in": PROMPT, "rules": RULES, "cases": cases}


if __name__ == "__main__":
    PATH.write_text(json.dumps(make(), indent=1) + "\n")
    print(f"wrote {PATH}")
