"""The terminal belongs to the user: library chatter is silenced at the CLI entry.

Two layers, both skipped with `BLUELM_DEBUG=1` or `bluelm-edge --verbose ...`:
- scoped filters for the known Python warnings and log records that say nothing to a user
  (torchao's optional-kernel `Failed to load ...so`, torch's pytree notices, ExecuTorch's
  buffer-mutation and experimental-API warnings);
- native stderr (fd 2: ExecuTorch's `[cpuinfo_utils.cpp:...]` log lines, XNNPACK, anything C++
  prints) goes to a temp file while the command runs. Our own stderr output (errors, progress bars,
  warnings) keeps the real terminal: `sys.stderr` is pointed at a duplicate of the original fd 2.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import TextIO

# (category, message regex): each is a known message with nothing for the user to do.
KNOWN_WARNINGS: list[tuple[type[Warning], str]] = [
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    (FutureWarning, r"_check_is_size will be removed"),
    (UserWarning, r"Mutation on a buffer in the model is detected"),
    (UserWarning, r"Output Buffer not found"),
    (Warning, r"This API is experimental"),
]
# Loggers whose records below ERROR are internal notices (torchao logs `Failed to load ..._C_mxfp8...so`
# for GPU kernels a CPU install never has; torch's pytree notes Enum registrations).
QUIET_LOGGERS = ("torchao", "executorch", "torch.utils._pytree", "torch._export", "torch.export")


def verbose_requested(argv: list[str]) -> bool:
    """`--verbose` before the command name, or BLUELM_DEBUG=1 / BLUELM_VERBOSE=1."""
    if os.environ.get("BLUELM_DEBUG") == "1" or os.environ.get("BLUELM_VERBOSE") == "1":
        return True
    for arg in argv:
        if arg == "--verbose":
            return True
        if not arg.startswith("-"):
            return False
    return False


def install_filters() -> None:
    """Silence the known Python warnings and library log records (idempotent)."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_to_file() -> Iterator[str | None]:
    """While inside: fd 2 writes to a temp file (yielded), Python's sys.stderr to the real terminal.
    The file is removed afterwards; a process that dies inside leaves it in the temp folder
    (`bluelm-edge-native-*.log`), where the native side of the crash can be read."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError):  # no fd 2 (embedded, closed): nothing to capture
        yield None
        return
    fd, path = tempfile.mkstemp(prefix="bluelm-edge-native-", suffix=".log")
    old_stderr = sys.stderr
    user = os.fdopen(os.dup(real), "w", buffering=1, encoding=getattr(old_stderr, "encoding", None) or "utf-8",
                     errors="backslashreplace")
    sys.stderr = _Router(user, old_stderr)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield path
    finally:
        sys.stderr.finish() if isinstance(sys.stderr, _Router) else sys.stderr.flush()
        _flush_c_stdio()
        old_stderr.flush()
        os.dup2(real, 2)
        os.close(real)
        user.close()
        sys.stderr = old_stderr
        with contextlib.suppress(OSError):
            os.unlink(path)


class _Router(io.TextIOBase):
    """sys.stderr while capturing: native code writing to its descriptor, and lines in the C++ log
    form (`[file.cpp:71] ...`, which ExecuTorch's pybindings print), go to the log; every other
    write (ours: errors, progress, warnings) goes to the terminal at once."""

    def __init__(self, user: TextIO, log: TextIO) -> None:
        self.user, self.log, self.pending = user, log, ""

    def write(self, text: str) -> int:
        rest, self.pending = self.pending + text, ""
        for line in rest.splitlines(keepends=True):
            if not line.endswith(("\n", "\r")) and _LOG_START.fullmatch(line):
                self.pending = line  # maybe the start of a log line: wait for the rest
                break
            (self.log if _LOG_LINE.match(line) else self.user).write(line)
        return len(text)

    def flush(self) -> None:  # a pending partial log line stays pending (pybind flushes after every piece)
        self.user.flush()
        self.log.flush()

    def finish(self) -> None:
        if self.pending:
            (self.log if _LOG_LINE.match(self.pending) else self.user).write(self.pending)
            self.pending = ""
        self.flush()

    def isatty(self) -> bool:
        return self.user.isatty()

    def writable(self) -> bool:
        return True

    @property
    def buffer(self):  # bytes written to sys.stderr.buffer (click, tqdm) are ours: the terminal
        return self.user.buffer

    def fileno(self) -> int:  # native code that writes to sys.stderr's descriptor: the log
        return self.log.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.user.encoding


_LOG_LINE = re.compile(r"\[[\w./-]+\.(?:cpp|cc|c|h|hpp):\d+\] ")
_LOG_START = re.compile(r"\[(?:[\w./-]+(?:\.(?:c|cc|cp|cpp|h|hp|hpp)?(?::\d*(?:\](?: .*)?)?)?)?)?", re.S)


def _flush_c_stdio() -> None:
    """Flush C stdio buffers (ExecuTorch's log lines sit in one until exit otherwise)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def terminal(verbose: bool) -> Iterator[None]:
    """The CLI's whole run: filters and native capture unless verbose."""
    if verbose:
        yield
        return
    install_filters()
    with native_stderr_to_file():
        yield
