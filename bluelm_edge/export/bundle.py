"""The bundle folder: write it atomically (manifest last), read its manifest, verify it.

A bundle is `model.pte` (or `program.pt2` + `coverage.json` when the vendor SDK is missing),
`tokenizer.json`, `tokenizer_config.json`, `config.json` and `manifest.json` (docs/contracts.md).
`write_bundle` builds it in a hidden temp folder beside the target and renames it into place, so a
killed export leaves no folder under the target name; `verify_bundle` returns one line a problem.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bluelm_edge import __version__, contract
from bluelm_edge.errors import BlueLMError
from bluelm_edge.export import program
from bluelm_edge.io import atomic_dir, atomic_write_text, check_output_dir, sha256_file
from bluelm_edge.model.config import BlueLMConfig

REQUIRED_KEYS = ("schema_version", "bundle_id", "model_id", "backend", "soc", "recipe", "lowered",
                 "program", "created_by", "files", "app")
APP_KEYS = ("max_context", "vocab_size", "eos_ids", "tokens", "token_ids", "thinking", "image")


class BundleError(BlueLMError):
    """A bundle folder that is missing, incomplete, or does not match its manifest."""


def file_entry(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    return {"path": name, "size": path.stat().st_size, "sha256": sha256_file(path)}


def build_manifest(
    folder: Path, *, cfg: BlueLMConfig, backend: str, soc: str | None, recipe: str, lowered: bool,
    vision_batch: int, extra: dict[str, Any] | None = None, chat: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest for the files already in `folder` (every file but manifest.json)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != contract.MANIFEST_JSON)
    files = [file_entry(folder, n) for n in names]
    program = contract.MODEL_PTE if lowered else contract.PROGRAM_PT2
    digest = next(f["sha256"] for f in files if f["path"] == program)
    manifest = {
        "schema_version": contract.SCHEMA_VERSION,
        "bundle_id": contract.bundle_id(cfg.name, backend, recipe, digest),
        "model_id": cfg.name, "backend": backend, "soc": soc, "recipe": recipe, "lowered": lowered,
        "program": program, "created_by": f"bluelm-edge {__version__}", "files": files,
        "app": contract.app_section(cfg, vision_batch, chat),
        "runtime": contract.runtime_section(exporter_version(), backend, qnn_sdk_version() if lowered else None),
    }
    manifest.update(extra or {})
    return manifest


def exporter_version() -> str:
    """The installed executorch wheel's version: the runtime version this export writes for."""
    try:
        return importlib.metadata.version("executorch")
    except importlib.metadata.PackageNotFoundError:
        raise BundleError("the executorch wheel is not installed; run scripts/install.sh") from None


def qnn_sdk_version() -> str | None:
    """MAJOR.MINOR.PATCH of the QNN SDK at QNN_SDK_ROOT (its sdk.yaml, else its folder name)."""
    root = os.environ.get("QNN_SDK_ROOT", "")
    if not root:
        return None
    sdk_yaml = Path(root) / "sdk.yaml"
    text = sdk_yaml.read_text(errors="replace") if sdk_yaml.is_file() else ""
    m = re.search(r"^version:\s*['\"]?(\d+\.\d+\.\d+)", text, re.M) or re.search(r"(\d+\.\d+\.\d+)", Path(root).name)
    return m[1] if m else None


def write_bundle(
    out: Path, fill: Callable[[Path], None], manifest_args: dict[str, Any]
) -> dict[str, Any]:
    """Build the bundle in a temp folder: `fill(tmp)` writes the files, then the manifest, then rename."""
    out = Path(out)
    check_output_dir(out)
    clean_partials(out)
    with atomic_dir(out, marker=False) as tmp:  # the manifest marks a bundle as ours
        fill(tmp)
        manifest = build_manifest(tmp, **manifest_args)
        atomic_write_text(tmp / contract.MANIFEST_JSON, json.dumps(manifest, indent=2) + "\n")
    return manifest


def clean_partials(out: Path) -> None:
    """Remove temp folders an interrupted export left beside `out`."""
    for stale in Path(out).parent.glob(f".{Path(out).name}.*.partial"):
        shutil.rmtree(stale, ignore_errors=True)


def read_manifest(bundle_dir: Path, *, runtime: bool = False) -> dict[str, Any]:
    """The verified manifest of a bundle, or a BundleError naming the first problem.

    `runtime=True` also loads the program through the ExecuTorch runtime (host-run commands)."""
    problems = verify_bundle(bundle_dir, runtime=runtime)
    if problems:
        more = f" (+{len(problems) - 1} more; see `bluelm-edge bundle verify {bundle_dir}`)"
        more = more if len(problems) > 1 else ""
        first = problems[0] if problems[0].startswith(str(bundle_dir)) else f"{bundle_dir}/{problems[0]}"
        raise BundleError(f"{first}{more}")
    return json.loads((Path(bundle_dir) / contract.MANIFEST_JSON).read_text())


def verify_bundle(bundle_dir: Path, *, runtime: bool = False) -> list[str]:
    """Every problem of the bundle, one line each; an empty list means it verifies.

    Manifest schema, every file's size and sha256, the program header (Python: identifier and
    declared sizes); with `runtime` also the program through the runtime (methods, metadata)."""
    folder = Path(bundle_dir)
    if not folder.is_dir():
        return [f"{folder}: no such bundle folder; build one with `bluelm-edge export`"]
    if folder.name.endswith(".partial"):
        return [f"{folder}: an unfinished export's temp folder; rerun `bluelm-edge export`"]
    manifest, problems = _load(folder)
    if manifest is None:
        return problems
    problems += _check_keys(manifest)
    if problems:
        return problems
    problems = _check_files(folder, manifest) + _check_program(manifest)
    return problems or _check_program_file(folder, manifest, runtime)


def _load(folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    path = folder / contract.MANIFEST_JSON
    if not path.is_file():
        return None, [f"{folder}: no manifest.json (unfinished or not a bundle); rerun `bluelm-edge export`"]
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        return None, [f"{path}: invalid JSON at line {err.lineno}: {err.msg}; re-export the bundle"]
    if not isinstance(manifest, dict):
        return None, [f"{path}: not a JSON object; re-export the bundle"]
    return manifest, []


def _check_keys(manifest: dict[str, Any]) -> list[str]:
    problems = [f"manifest.json: missing key {k!r}" for k in REQUIRED_KEYS if k not in manifest]
    if manifest.get("schema_version", contract.SCHEMA_VERSION) != contract.SCHEMA_VERSION:
        problems.append(f"manifest.json: schema_version {manifest['schema_version']} is not "
                        f"{contract.SCHEMA_VERSION}; re-export with this bluelm-edge")
    if manifest.get("backend", "xnnpack") not in contract.BACKENDS:
        problems.append(f"manifest.json: backend {manifest['backend']!r} is not one of {', '.join(contract.BACKENDS)}")
    app = manifest.get("app", {})
    problems += [f"manifest.json: app.{k} missing" for k in APP_KEYS if not isinstance(app, dict) or k not in app]
    runtime = manifest.get("runtime")  # absent in bundles from before it was recorded
    if runtime is not None and not contract.is_version((runtime or {}).get("min_runtime")):
        problems.append("manifest.json: runtime.min_runtime is not a version; re-export the bundle")
    return problems


def _check_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    problems, listed = [], set()
    for entry in manifest["files"]:
        name = entry.get("path", "?")
        listed.add(name)
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: listed in manifest.json but missing")
        elif path.stat().st_size != entry.get("size"):
            problems.append(f"{name}: size {path.stat().st_size} != {entry.get('size')} in manifest.json")
        elif sha256_file(path) != entry.get("sha256"):
            problems.append(f"{name}: sha256 does not match manifest.json (corrupt or changed)")
    extra = sorted(p.name for p in folder.iterdir() if p.name not in listed | {contract.MANIFEST_JSON})
    problems += [f"{name}: not listed in manifest.json" for name in extra]
    return problems


def _check_program(manifest: dict[str, Any]) -> list[str]:
    names = {e.get("path") for e in manifest["files"]}
    needed = [contract.MODEL_PTE] if manifest["lowered"] else [contract.PROGRAM_PT2, contract.COVERAGE_JSON]
    needed += [contract.TOKENIZER_JSON, contract.CONFIG_JSON]
    problems = [f"{n}: required for a {'lowered' if manifest['lowered'] else 'lowering-ready'} bundle but "
                "not in manifest.json" for n in needed if n not in names]
    if manifest["program"] not in names:
        problems.append(f"manifest.json: program {manifest['program']!r} is not among the files")
    return problems


def _check_program_file(folder: Path, manifest: dict[str, Any], runtime: bool) -> list[str]:
    """The program itself: its header always, then (`runtime`) what the runtime makes of it."""
    path = folder / manifest["program"]
    if not manifest["lowered"]:
        return program.archive_problems(path)
    problems = program.header_problems(path)
    if problems or not runtime:
        return problems
    return program.runtime_problems(path, manifest["app"])
