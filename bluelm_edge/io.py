"""Atomic file output, output ownership and checksums.

An interrupted write never leaves a file that looks done, and an output never replaces what
bluelm-edge did not write: a folder is ours when it holds the marker file `MARKER` (written into
every folder `atomic_dir` makes, listing its entries) or a bundle `manifest.json` whose
`created_by` names bluelm-edge, and nothing but what those list (a file the user added to it is
theirs, so the folder is refused);
a file is ours when the command's `ours(path)` test says so (e.g. our PNG metadata, our APK).
`check_output_dir` / `check_output_file` are what each command calls before any expensive work;
the writers call them again at the end, so nothing is replaced that was not checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bluelm_edge.errors import UsageError

MARKER = ".bluelm-edge"  # in every folder atomic_dir writes: "this is bluelm-edge's output"
Ours = Callable[[Path], bool]


class OutputExistsError(UsageError):
    """An output path that holds something bluelm-edge did not write (or is the wrong kind)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: str, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give the final one the usual mode."""
    os.chmod(path, mode & ~_umask())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---- ownership --------------------------------------------------------------------------------
def _listed(path: Path) -> set[str] | None:
    """The entries bluelm-edge wrote into folder `path` (marker or bundle manifest); None: not ours."""
    try:
        if (path / MARKER).is_file():
            return {*json.loads((path / MARKER).read_text(encoding="utf-8"))["entries"], MARKER}
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        if str(manifest.get("created_by", "")).startswith("bluelm-edge"):
            return {*(str(f["path"]) for f in manifest["files"]), "manifest.json"}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    return None


def foreign_entries(path: Path, ours: Ours | None = None) -> list[str]:
    """What folder `path` holds that bluelm-edge did not write (all of it if the folder is not ours)."""
    names = sorted(p.name for p in Path(path).iterdir())
    if not names or (ours is not None and ours(Path(path))):
        return []
    listed = _listed(Path(path))
    return names if listed is None else [n for n in names if n not in listed]


PNG_SOFTWARE = "bluelm-edge"  # the PNG `Software` text our plots carry (savefig metadata)


def is_our_png(path: Path) -> bool:
    """True for a PNG whose `Software` text chunk names bluelm-edge (the plots we write)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"Software\x00" + PNG_SOFTWARE.encode() in head


def _check_place(path: Path, option: str) -> None:
    """The path has a name, is not the working folder (or above it), and no parent is a file."""
    if path.name in ("", ".", "..") or path.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        raise OutputExistsError(f"{option} {path}: cannot write over the current folder or one above it; "
                                "give a new path, e.g. a subfolder name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputExistsError(f"{option} {path}: {parent} is a file, not a folder; give another path")
            return


def check_output_dir(path: Path, option: str = "--out", ours: Ours | None = None) -> None:
    """Refuse (one line) a folder output that would replace a file or a folder of the user's."""
    path = Path(path)
    _check_place(path, option)
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_dir():
        raise OutputExistsError(f"{option} {path}: is a file, not a folder; give a folder path that does not exist")
    foreign = foreign_entries(path, ours)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputExistsError(f"{option} {path}: holds files bluelm-edge did not write ({shown}); give a new "
                                "or empty folder (nothing was changed)")


def check_output_file(path: Path, option: str = "--out", ours: Ours | None = None, overwrite: bool | None = False,
                      ) -> None:
    """Refuse (one line) a file output over a folder, or over a file not ours (unless `overwrite`;
    None: the command has no --overwrite)."""
    path = Path(path)
    _check_place(path, option)
    if path.is_dir():
        raise OutputExistsError(f"{option} {path}: is a folder; give a file path")
    if path.exists() and not overwrite and not (ours is not None and ours(path)):
        how = "give another path" + (" or pass --overwrite" if overwrite is not None else "")
        raise OutputExistsError(f"{option} {path}: exists and was not written by bluelm-edge; {how}")


# ---- atomic writers ---------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Tools that write sidecars next to their output (apksigner's `<out>.idsig`) are cleaned up too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder; give a file path")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _publish_mode(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, f"{tmp}.idsig"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: Path, *, marker: bool = True, ours: Ours | None = None,
               option: str = "--out") -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds.

    `path` must be absent, empty, or our own output (`check_output_dir`); an old output is kept
    until the new one is complete. `marker=False` for bundles (their manifest marks them).
    """
    path = Path(path)
    check_output_dir(path, option, ours)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        if marker:
            entries = sorted(p.name for p in tmp.iterdir())
            (tmp / MARKER).write_text(json.dumps({"written_by": "bluelm-edge", "entries": entries}) + "\n")
        _publish_mode(str(tmp), 0o777)
        check_output_dir(path, option, ours)  # still ours after the (long) block
        _swap_in(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, path: Path) -> None:
    """Rename `tmp` onto `path`; an existing `path` is moved aside first and removed after."""
    if not path.exists():
        os.replace(tmp, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old)  # onto the empty temp folder: allowed by rename(2)
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
