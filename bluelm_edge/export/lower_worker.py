"""Lower one method in a forked process while the parent lowers the others.

XNNPACK lowering is single-threaded Python (graph passes over fake tensors), so on a machine with
a second core the vision encoder's lowering can run beside the decoder's. The child is a fork
(it inherits the exported program; nothing is pickled on the way in), runs with one intra-op
thread (it never enters the parent's OpenMP pool), and hands the lowered edge program back through
ExecuTorch's own serde (`executorch.exir.serde`: JSON graph, tensors read back with
`torch.load(weights_only=True)`), written atomically in a private temporary folder. The lowered
program equals the one lowered in-process (the `.pte` differs only in the `requires_grad` flag of
constants, which the serde does not keep; tests/test_export_compose.py compares the outputs).

If the child fails for any reason, the parent lowers the method itself: a worker can only save
time, never change the result or lose the export.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.export import ExportedProgram

Lower = Callable[[dict[str, ExportedProgram]], dict[str, ExportedProgram]]


# The hand-back reloads the method's weights (the lowered module keeps its original program), a
# copy the in-process lowering would not make: worth it for small methods only. At 3B the vision
# tower (0.4B parameters) would add ~1.6 GB to the peak to save ~3% of the lowering time.
MAX_STATE_BYTES = 256 * 2**20


def available() -> bool:
    """A forked worker helps only with a second core, and only where fork exists."""
    return hasattr(os, "fork") and (os.cpu_count() or 1) >= 2 and os.environ.get("BLUELM_LOWER_WORKERS") != "0"


def state_bytes(program: ExportedProgram) -> int:
    tensors = [*program.state_dict.values(), *program.constants.values()]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def worth_it(program: ExportedProgram) -> bool:
    """Lower `program` in a worker? Only with a free core and weights small enough to copy."""
    return available() and state_bytes(program) <= MAX_STATE_BYTES


def _child(name: str, program: ExportedProgram, lower: Lower, out: Path) -> None:
    """In the fork: lower, save, exit without running the parent's atexit handlers."""
    code = 1
    try:
        _fresh_streams()
        from executorch.exir.serde import serialize as serde

        torch.set_num_threads(1)
        lowered = lower({name: program})[name]
        tmp = out.with_suffix(".partial")
        serde.save(lowered, str(tmp))
        os.replace(tmp, out)
        code = 0
    except BaseException as e:  # the parent falls back; say why only when debugging
        if os.environ.get("BLUELM_DEBUG"):
            print(f"lowering worker for {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        os._exit(code)


def _fresh_streams() -> None:
    """New stdout/stderr objects in the fork: another thread of the parent may have held the old
    ones' locks at the moment of the fork. Silent unless debugging (the parent owns the terminal)."""
    import warnings

    debug = bool(os.environ.get("BLUELM_DEBUG"))
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (lives until os._exit)
    sys.stderr = os.fdopen(os.dup(2), "w") if debug else open(os.devnull, "w")  # noqa: SIM115
    if not debug:
        warnings.simplefilter("ignore")


@contextmanager
def aside(name: str, program: ExportedProgram, lower: Lower) -> Iterator[Callable[[], ExportedProgram]]:
    """Start lowering `program` in a fork; the block gets a function that returns it lowered
    (waiting for the child, or lowering in-process if the child failed)."""
    with tempfile.TemporaryDirectory(prefix="bluelm-lower-") as tmp:
        out = Path(tmp) / f"{name}.pt2"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(name, program, lower, out)
        waited = False

        def result() -> ExportedProgram:
            nonlocal waited
            _, status = os.waitpid(pid, 0)
            waited = True
            if status == 0 and out.exists():
                from executorch.exir.serde import serialize as serde

                return serde.load(str(out))
            return lower({name: program})[name]

        try:
            yield result
        finally:
            if not waited:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
