"""The lowering-ready archive (`program.pt2`): exported, quantized methods + metadata in one zip.

Written without a vendor SDK at export, read by `bluelm-edge lower` on a machine that has one,
in another process: `load_programs` registers the quantized op libraries the graphs call
(`quantized_decomposed.*`, `torchao.*`) before `torch.export.load`, and refuses an archive whose
graph contract or ExecuTorch version this toolkit does not understand (one line, no traceback).
"""

from __future__ import annotations

import json
import zipfile
from contextlib import contextmanager
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
    """One zip: `<method>.pt2` (`torch.export.save`) per method + `metadata.json` (constants, soc, ...).

    A tensor a method shares with an earlier one (the decode graph reads the prefill graph's
    weights) is stored once: the later method holds a one-element placeholder, and `shared` in
    metadata.json names where `load_programs` finds the tensor. Each member goes through a file
    beside the archive, so no serialized method sits in memory."""
    from bluelm_edge.io import atomic_path

    shared = shared_tensors(programs)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, program in programs.items():
            member = Path(f"{tmp}.{name}.pt2")
            try:
                with _placeholders(program, shared.get(name, {})):
                    torch.export.save(program, member)
                zf.write(member, f"{name}.pt2")
            finally:
                member.unlink(missing_ok=True)
        zf.writestr(METADATA, json.dumps({"constants": metadata, **info, "shared": shared}, indent=2))


def _tensors(program: ExportedProgram) -> dict[str, tuple[dict, torch.Tensor]]:
    """{name: (the dict holding it, tensor)} over a program's state dict and constants."""
    return {**{k: (program._state_dict, v) for k, v in program.state_dict.items()},
            **{k: (program._constants, v) for k, v in program.constants.items() if isinstance(v, torch.Tensor)}}


def shared_tensors(programs: dict[str, ExportedProgram]) -> dict[str, dict[str, list[str]]]:
    """{method: {tensor name: [earlier method, its name]}} for tensors whose storage an earlier
    method already holds (same data pointer, shape, strides and dtype)."""
    seen: dict[tuple, tuple[str, str]] = {}
    out: dict[str, dict[str, list[str]]] = {}
    for method, program in programs.items():
        for name, (_, t) in _tensors(program).items():
            if not t.numel():
                continue
            key = (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype)
            if key in seen and seen[key][0] != method:
                out.setdefault(method, {})[name] = list(seen[key])
            else:
                seen.setdefault(key, (method, name))
    return out


@contextmanager
def _placeholders(program: ExportedProgram, names: dict[str, list[str]]):
    """Swap the named tensors for zero-stride one-element views of their shape while saving."""
    held = _tensors(program)
    kept = {}
    try:
        for name in names:
            store, t = held[name]
            kept[name] = t
            store[name] = _like(t, torch.zeros((), dtype=t.dtype).expand(t.shape))
        yield
    finally:
        for name, t in kept.items():
            held[name][0][name] = t


def _like(original: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.nn.Parameter(t, requires_grad=False) if isinstance(original, torch.nn.Parameter) else t


def read_info(path) -> dict:
    """The archive's metadata.json, after checking it is one of ours that this toolkit can lower."""
    from bluelm_edge import contract

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
        programs = {n[:-4]: _load_member(zf, n) for n in zf.namelist() if n.endswith(".pt2")}
    for method, names in info.get("shared", {}).items():
        held = _tensors(programs[method])
        for name, (source, source_name) in names.items():
            store, placeholder = held[name]
            store[name] = _like(placeholder, _tensors(programs[source])[source_name][1])
    return programs, info


def _load_member(zf: zipfile.ZipFile, name: str) -> ExportedProgram:
    """One stored member, read in place (a stored zip entry is seekable): no copy in memory."""
    with zf.open(name) as f:
        return torch.export.load(f)
