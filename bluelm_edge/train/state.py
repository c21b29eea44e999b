"""Training state on disk, beside the checkpoint: optimizer moments and RNG in safetensors, the
step, the training settings and the loss history in JSON. Never pickle.

`training_state.safetensors` holds `exp_avg.<param>`, `exp_avg_sq.<param>`, `step.<param>` for
AdamW and `rng.torch` (the CPU generator state); `training_state.json` holds everything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from bluelm_edge.errors import CheckpointError

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
LOG_JSON = "training_log.json"  # step, settings and loss history; kept in the final checkpoint too


def optimizer_tensors(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        st = opt.state.get(p)
        if st:
            for key in ("exp_avg", "exp_avg_sq", "step"):
                out[f"{key}.{name}"] = torch.as_tensor(st[key]).detach().clone().contiguous()
    return out


def state_files(model: torch.nn.Module, opt: torch.optim.Optimizer, meta: dict[str, Any]) -> dict[str, Any]:
    """The extra files of a resumable checkpoint: name -> bytes or text."""
    tensors = optimizer_tensors(model, opt)
    tensors["rng.torch"] = torch.get_rng_state()
    return {STATE_TENSORS: save(tensors), STATE_JSON: json.dumps(meta, indent=1) + "\n"}


def has_state(folder: Path) -> bool:
    return (Path(folder) / STATE_JSON).is_file() and (Path(folder) / STATE_TENSORS).is_file()


def read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(folder) / STATE_JSON).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{folder}: unreadable {STATE_JSON} ({err}); delete the folder to start over") from None


def restore(folder: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    """Load AdamW moments and the torch RNG saved by `state_files` into `opt` and the process."""
    tensors = load_file(str(Path(folder) / STATE_TENSORS))
    for name, p in model.named_parameters():
        if f"exp_avg.{name}" in tensors:
            opt.state[p] = {k: tensors[f"{k}.{name}"].clone() for k in ("exp_avg", "exp_avg_sq", "step")}
    torch.set_rng_state(tensors["rng.torch"])
