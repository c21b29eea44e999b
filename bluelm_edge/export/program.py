"""Checks of a bundle's program file, so a broken `.pte` is one line and never a native abort.

Two levels, both one line a problem:
- `header_problems` (Python only, reads 64 bytes): the flatbuffer file identifier `ET12` at
  bytes 4..8 and the extended header `eh00` after it, whose declared program size and segment
  span must fit in the file (a truncated or random file stops here, before the runtime sees it);
- `runtime_problems` (only after the header passes): the program loads through the ExecuTorch
  runtime with its internal-consistency verification, has the contract's methods and metadata
  constants, and those constants agree with the manifest's `app` section.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from bluelm_edge import contract

FILE_IDENTIFIER = b"ET12"  # schema/program.fbs `file_identifier` of the runtime we ship with
EXTENDED_MAGIC = b"eh00"
HEAD_BYTES = 64
REQUIRED_METHODS = (contract.TOKEN_EMBEDDING, contract.TEXT_DECODER, contract.FORWARD)  # vision: optional
FIX = "re-export the bundle (`bluelm-edge export`) or copy it again"


def _u(data: bytes, lo: int, hi: int) -> int:
    return int.from_bytes(data[lo:hi], "little")


def header_problems(path: Path) -> list[str]:
    """The program header against the file: identifier, extended header, declared sizes."""
    name, size = Path(path).name, Path(path).stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if len(head) < 8 or head[4:8] != FILE_IDENTIFIER:
        return [f"{name}: not an ExecuTorch program (no {FILE_IDENTIFIER.decode()} identifier at byte 4); {FIX}"]
    if len(head) < 32 or head[8:12] != EXTENDED_MAGIC:
        return [f"{name}: ExecuTorch program without its extended header ({EXTENDED_MAGIC.decode()}); {FIX}"]
    length, program, base = _u(head, 12, 16), _u(head, 16, 24), _u(head, 24, 32)
    segments = _u(head, 32, 40) if length >= 32 and len(head) >= 40 else 0
    end = max(program, base + segments if segments else 0)
    if end > size:
        return [f"{name}: truncated: its header declares {end} bytes, the file has {size}; {FIX}"]
    if not 8 <= _u(head, 0, 4) < program or (segments and base < program):
        return [f"{name}: corrupt ExecuTorch header (offsets outside the program); {FIX}"]
    return []


def archive_problems(path: Path) -> list[str]:
    """A lowering-ready `program.pt2` must at least be a readable zip archive."""
    if not zipfile.is_zipfile(path):
        return [f"{Path(path).name}: not a torch.export archive (not a zip file); {FIX}"]
    return []


def runtime_problems(path: Path, app: dict[str, Any]) -> list[str]:
    """Load the program (header already checked) and compare its methods and constants to the contract."""
    from bluelm_edge.export.host import _runtime

    name = Path(path).name
    try:
        program = _runtime().load_program(str(path), debug_buffer_size=0)
        names = set(program.method_names)
    except Exception as err:  # the runtime raises RuntimeError/ValueError with a code: one line
        return [f"{name}: the ExecuTorch runtime cannot load it ({_first_line(err)}); {FIX}"]
    problems = [f"{name}: no {m} method (the runtime contract needs it); {FIX}"
                for m in REQUIRED_METHODS if m not in names]
    missing = [k for k in contract.METADATA_KEYS if k not in names]
    if missing:
        problems.append(f"{name}: metadata {', '.join(missing)} missing; {FIX}")
        return problems
    return problems + _constants_match(program, name, app)


def _constants_match(program: Any, name: str, app: dict[str, Any]) -> list[str]:
    checks = {"get_max_context_len": app.get("max_context"), "get_vocab_size": app.get("vocab_size")}
    problems = []
    for key, want in checks.items():
        try:
            got = program.load_method(key).execute([])[0]
        except Exception as err:
            return [f"{name}: metadata {key} cannot run ({_first_line(err)}); {FIX}"]
        if want is not None and int(got) != int(want):
            problems.append(f"{name}: {key} is {int(got)} but manifest.json says {want}; {FIX}")
    return problems


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
