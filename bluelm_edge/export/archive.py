"""The lowering-ready archive (`program.pt2`): exported, quantized contract methods + metadata in one zip.

Written without a vendor SDK at export, read by `bluelm-edge lower` on a machine that has one.
"""

from __future__ import annotations

import torch
from torch.export import ExportedProgram


def save_programs(path, programs: dict[str, ExportedProgram], metadata: dict, info: dict) -> None:
    """One zip: `<method>.pt2` (`torch.export.save`) per method + `metadata.json` (constants, soc, ...)."""
    import io
    import json
    import zipfile

    from bluelm_edge.io import atomic_path

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, program in programs.items():
            buf = io.BytesIO()
            torch.export.save(program, buf)
            zf.writestr(f"{name}.pt2", buf.getvalue())
        zf.writestr("metadata.json", json.dumps({"constants": metadata, **info}, indent=2))


def load_programs(path) -> tuple[dict[str, ExportedProgram], dict]:
    """(programs, {"constants": ..., ...}) from a `save_programs` archive."""
    import io
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = json.loads(zf.read("metadata.json"))
        programs = {n[:-4]: torch.export.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".pt2")}
    return programs, info
