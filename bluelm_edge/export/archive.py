"""The lowering-ready archive (`program.pt2`): exported, quantized methods + metadata in one zip.

Written without a vendor SDK at export, read by `bluelm-edge lower` on a machine that has one,
in another process: `load_programs` registers the quantized op libraries the graphs call
(`quantized_decomposed.*`, `torchao.*`) before `torch.export.load`, and refuses an archive whose
graph contract or ExecuTorch version this toolkit does not understand (one line, no traceback).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import torch
from torch.export import ExportedProgram

from bluelm_edge.errors import BlueLMError

METADATA = "metadata.json"


class ArchiveError(BlueLMError):
    """A program.pt2 this toolkit cannot lower (other contract or ExecuTorch version, or corrupt)."""


def versions(graph_contract: str | None = None) -> dict[str, str]:
    """What an archive records about who wrote it (checked again by `load_programs`)."""
    import executorch.version

    out = {"executorch": executorch.version.__version__, "torch": torch.__version__.split("+")[0]}
    if graph_contract:
        out["graph_contract"] = graph_contract
    return out


def register_quantized_ops() -> None:
    """Register the op libraries a pt2e-quantized graph calls, so a fresh process can deserialize it."""
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  quantized_decomposed.*
    import torchao.quantization.quant_primitives  # noqa: F401  torchao.dequantize_affine & co


def save_programs(path, programs: dict[str, ExportedProgram], metadata: dict, info: dict) -> None:
    """One zip: `<method>.pt2` (`torch.export.save`) per method + `metadata.json` (constants, soc, ...)."""
    from bluelm_edge.io import atomic_path

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, program in programs.items():
            buf = io.BytesIO()
            torch.export.save(program, buf)
            zf.writestr(f"{name}.pt2", buf.getvalue())
        zf.writestr(METADATA, json.dumps({"constants": metadata, **info}, indent=2))


def read_info(path) -> dict:
    """The archive's metadata.json, after checking it is one of ours that this toolkit can lower."""
    from bluelm_edge.export import contract

    path = Path(path)
    fix = "re-export it with this bluelm-edge (bluelm-edge export ...)"
    try:
        with zipfile.ZipFile(path) as zf:
            info = json.loads(zf.read(METADATA))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError):
        raise ArchiveError(f"{path}: not a lowering-ready program archive (no readable {METADATA}); {fix}") from None
    mine = versions()["executorch"]
    theirs = info.get("executorch")
    if theirs is None or theirs.split(".")[:2] != mine.split(".")[:2]:
        raise ArchiveError(f"{path}: written for ExecuTorch {theirs or 'unknown'}, this is {mine}; {fix} or "
                           f"install executorch=={theirs}")
    if info.get("backend") in ("qnn", "mediatek") and info.get("graph_contract") != contract.NPU_GRAPH_CONTRACT:
        raise ArchiveError(f"{path}: graph contract {info.get('graph_contract') or 'none'} is not "
                           f"{contract.NPU_GRAPH_CONTRACT} (what this bluelm-edge lowers); {fix}")
    return info


def load_programs(path) -> tuple[dict[str, ExportedProgram], dict]:
    """(programs, {"constants": ..., ...}) from a `save_programs` archive (checked, ops registered)."""
    info = read_info(path)
    register_quantized_ops()
    with zipfile.ZipFile(path) as zf:
        programs = {n[:-4]: torch.export.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".pt2")}
    return programs, info
