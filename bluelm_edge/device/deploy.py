"""Deploy a bundle (and optionally the app) to a phone, verified and resumable.

Files go into `.<bundle_id>.partial/` beside the final folder; each is checked with `sha256sum`
on the phone, `manifest.json` goes last, and only then is the folder renamed into place, so a
folder under its real name is always complete. A rerun skips files whose hash already matches
(resume after a dropped cable); a half-pushed file never matches, so it is pushed again.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from bluelm_edge.device.adb import Device, classify
from bluelm_edge.device.bundle import TARGETS, device_dir, partial_dir
from bluelm_edge.device.errors import BundleMismatch, CommandFailed, DeviceError, Offline, StorageFull
from bluelm_edge.io import sha256_file
from bluelm_edge.socs import bundle_fits, match_soc

SPACE_MARGIN = 16 * 1024 * 1024  # keep this much free beyond the bundle


@dataclass
class DeployResult:
    serial: str
    bundle_id: str
    path: str
    pushed: int
    skipped: int
    bytes_pushed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def progress_bar() -> Progress:
    """One line per file: name, bar, bytes, MB/s, time left (on stderr, so --json output stays clean)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


def check_fit(device: Device, manifest: dict[str, Any], force: bool, target: str = "app") -> str:
    """Why the bundle fits the phone (and, for the app's folder, the app's runner); raise
    BundleMismatch (unless force) when it does not."""
    from bluelm_edge.contract import runner_refusal

    props = device.props()
    ok, reason = bundle_fits(manifest, match_soc(props))
    refusal = runner_refusal(manifest["bundle_id"], manifest.get("runner"), manifest.get("graph_contract"),
                             manifest.get("graph_io"))
    if ok and target == "app" and refusal:
        ok, reason = False, refusal.replace(f"bundle {manifest['bundle_id']} ", "it ", 1)
    if props.get("ro.product.cpu.abi", "arm64-v8a") != "arm64-v8a":
        ok, reason = False, f"the phone's ABI is {props.get('ro.product.cpu.abi')}, bundles need arm64-v8a"
    if ok and manifest.get("lowered", True) is False:
        ok, reason = False, "the bundle is not lowered (no .pte); finish it with `bluelm-edge lower` and the vendor SDK"
    if not ok and not force:
        model = props.get("ro.product.model", "?")
        raise BundleMismatch(f"{manifest['bundle_id']} does not fit {device.serial} ({model}): {reason}; "
                             "pass --force to push it anyway")
    return reason


def bundle_files(bundle_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file to push, manifest.json last (its presence marks a complete folder)."""
    mpath = Path(bundle_dir) / "manifest.json"
    return [*manifest["files"], {"path": "manifest.json", "size": mpath.stat().st_size, "sha256": sha256_file(mpath)}]


def deploy(device: Device, bundle_dir: Path, manifest: dict[str, Any], *, apk: Path | None = None,
           force: bool = False, target: str = "app", progress: Progress | None = None) -> DeployResult:
    """Install the APK if given, then push the bundle verified and resumable; return what was done."""
    check_fit(device, manifest, force, target)
    if apk is not None:
        device.install(apk)
    start, bundle_id = time.monotonic(), manifest["bundle_id"]
    final, partial = device_dir(bundle_id, target), partial_dir(bundle_id, target)
    files = bundle_files(bundle_dir, manifest)
    if _complete(device, final, files):
        return DeployResult(device.serial, bundle_id, final, 0, len(files), 0, time.monotonic() - start)
    if device.exists(final):  # an older or damaged copy: its good files count for the resume
        device.remove(partial)
        device.move(final, partial)
    have = device.sha256([f"{partial}/{f['path']}" for f in files])
    todo = [f for f in files if have.get(f"{partial}/{f['path']}") != f["sha256"]]
    _check_space(device, partial, target, sum(f["size"] for f in todo))
    progress = progress or progress_bar()
    with progress:
        for f in todo:
            _push_verified(device, Path(bundle_dir) / f["path"], f"{partial}/{f['path']}", f, progress, partial)
    device.move(partial, final)
    pushed_bytes = sum(f["size"] for f in todo)
    return DeployResult(device.serial, bundle_id, final, len(todo), len(files) - len(todo), pushed_bytes,
                        time.monotonic() - start)


def _complete(device: Device, final: str, files: list[dict[str, Any]]) -> bool:
    hashes = device.sha256([f"{final}/{f['path']}" for f in files])
    return all(hashes.get(f"{final}/{f['path']}") == f["sha256"] for f in files)


def _check_space(device: Device, partial: str, target: str, need: int) -> None:
    device.mkdirs(TARGETS[target])
    free = device.free_bytes(TARGETS[target])
    if need + SPACE_MARGIN > free:
        device.remove(partial)
        raise StorageFull(f"{device.serial} has {free / 1e6:.0f} MB free but the bundle needs {need / 1e6:.0f} MB "
                          "(+16 MB margin): free up storage on the phone, then rerun deploy")


def _push_verified(device: Device, local: Path, remote: str, entry: dict[str, Any], progress: Progress,
                   partial: str) -> None:
    parent = remote.rsplit("/", 1)[0]
    device.mkdirs(parent)
    try:
        _push_with_progress(device, local, remote, entry["size"], progress)
    except CommandFailed as err:
        if "No space left" in str(err) or "No space left" in err.stderr:
            _cleanup(device, partial)
            raise StorageFull(f"{device.serial} ran out of storage while pushing {entry['path']}: free up space, "
                              "then rerun deploy (temporary files were removed)") from None
        raise
    except Offline:
        raise Offline(f"lost {device.serial} while pushing {entry['path']}: reconnect it and rerun deploy to resume "
                      "(files already verified are kept, the unfinished one is pushed again)") from None
    got = device.sha256([remote]).get(remote)
    if got != entry["sha256"]:
        device.remove(remote)
        raise DeviceError(f"{entry['path']} arrived corrupted on {device.serial} (sha256 {str(got)[:12]} != "
                          f"{entry['sha256'][:12]}): check the cable and rerun deploy")


def _cleanup(device: Device, partial: str) -> None:
    try:
        device.remove(partial)
    except DeviceError:
        pass  # the phone is gone; the next deploy resumes from what is there


def _push_with_progress(device: Device, local: Path, remote: str, size: int, progress: Progress) -> None:
    """`adb push` one file; meanwhile poll its size on the phone to move the bar (adb prints no progress
    when its output is not a terminal)."""
    task = progress.add_task(local.name, total=size)
    proc: subprocess.Popen = device.push(local, remote, wait=False)
    while True:
        try:
            out, err = proc.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            r = device.shell(f"stat -c %s {shlex.quote(remote)}", check=False)
            if r.returncode == 0 and r.stdout.strip().isdigit():
                progress.update(task, completed=min(size, int(r.stdout.strip())))
    if proc.returncode != 0:
        raise classify(out, err, proc.returncode, ["push", str(local), remote], device.serial)
    progress.update(task, completed=size)
