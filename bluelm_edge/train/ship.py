"""Turn a finished training run into the shipped checkpoint: fp16 weights (half the size; loaded
back as float32 by the one loader), config, tokenizer and the training log, nothing else.

Usage: python -m bluelm_edge.train.ship RUN_DIR bluelm_edge/assets/bluelm-tiny
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from bluelm_edge.errors import CheckpointError
from bluelm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from bluelm_edge.train.state import LOG_JSON, has_state

KEEP = ("tokenizer.json", "tokenizer_config.json", LOG_JSON)


def ship(run_dir: Path, dest: Path, dtype: torch.dtype = torch.float16) -> Path:
    run_dir = Path(run_dir)
    if has_state(run_dir):
        raise CheckpointError(f"{run_dir}: the run is not finished (it holds a training state); resume it first")
    model, config = load_checkpoint(run_dir)
    model.to(dtype)
    extra = {name: run_dir / name for name in KEEP if (run_dir / name).is_file()}
    return save_checkpoint(model, config, Path(dest), extra_files=extra)


if __name__ == "__main__":
    print(ship(Path(sys.argv[1]), Path(sys.argv[2])))
