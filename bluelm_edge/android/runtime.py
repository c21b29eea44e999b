"""The ExecuTorch runtime the demo app carries: android_demo/runtime.json, read and checked.

One place names the runtime: `runtime.json` pins the executorch-android version (equal to the
exporter's executorch wheel) and what each backend flavour needs. app/build.gradle reads the same
file. `requirement(manifest)` says which flavour and AAR a bundle needs and whether the app would
refuse it (the comparison is `contract.runtime_refusal`, mirrored by the app's RuntimeVersion).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bluelm_edge import contract
from bluelm_edge.android.toolchain import AndroidBuildError, android_demo_dir

RUNTIME_JSON = "runtime.json"
FLAVOUR_KEYS = ("maven", "local", "where")


@dataclass
class Requirement:
    """What the app needs to run one bundle."""
    flavour: str
    aar: str  # the ExecuTorch AAR (Maven coordinate, or the local file for mediatek)
    needs: list[str] = field(default_factory=list)  # every artifact/file the flavour build adds
    where: str = ""
    native_libs: list[str] = field(default_factory=list)
    qnn_runtime: str | None = None
    refusal: str | None = None  # the app's refusal line, or None when it can load the bundle

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_runtime(path: Path | None = None) -> dict[str, Any]:
    """runtime.json, validated (schema 1, versions parse, a flavour per backend)."""
    path = Path(path or android_demo_dir() / RUNTIME_JSON)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise AndroidBuildError(f"{path}: cannot read ({err}); restore it from the repository") from None
    problems = _problems(data)
    if problems:
        raise AndroidBuildError(f"{path}: {problems[0]}")
    return data


def _problems(data: Any) -> list[str]:
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        return ["schema_version is not 1"]
    out = [f"{k} is not a version" for k in ("executorch", "fbjni", "nativeloader")
           if not contract.is_version(data.get(k))]
    flavours = data.get("flavours") or {}
    out += [f"flavours.{b} missing" for b in contract.BACKENDS if b not in flavours]
    out += [f"flavours.{b}.{k} missing" for b in flavours for k in FLAVOUR_KEYS if k not in flavours[b]]
    if "qnn" in flavours and not contract.is_version(flavours["qnn"].get("qnn_runtime")):
        out.append("flavours.qnn.qnn_runtime is not a version")
    return out


def carried_version(runtime: dict[str, Any] | None = None) -> str:
    """The executorch-android version the app is built with."""
    return (runtime or load_runtime())["executorch"]


def requirement(manifest: dict[str, Any] | None, runtime: dict[str, Any] | None = None) -> Requirement:
    """The flavour, AAR and extra artifacts a bundle needs, and the app's verdict on it
    (no bundle: the xnnpack flavour, nothing to refuse)."""
    runtime = runtime or load_runtime()
    backend = (manifest or {}).get("backend", "xnnpack")
    spec = runtime["flavours"][backend]
    qnn = None
    if backend == "qnn":
        qnn = ((manifest or {}).get("runtime") or {}).get("qnn_sdk") or spec["qnn_runtime"]
    fill = {"executorch": runtime["executorch"], "qnn_runtime": qnn}
    needs = [s.format(**fill) for s in spec["maven"]] + list(spec["local"])
    return Requirement(
        flavour=backend, aar=needs[0], needs=needs, where=spec["where"].format(**fill),
        native_libs=list(spec.get("native_libs", [])), qnn_runtime=qnn,
        refusal=None if manifest is None else (contract.runtime_refusal(
            manifest.get("bundle_id", "?"), manifest.get("runtime"), runtime["executorch"]) or contract.runner_refusal(
            manifest.get("bundle_id", "?"), manifest.get("runner"), manifest.get("graph_contract"),
            manifest.get("graph_io"))),
    )


def missing_local(req: Requirement, demo: Path | None = None) -> list[str]:
    """The flavour's local files (android_demo/...) that are not there."""
    demo = demo or android_demo_dir()
    spec = load_runtime(demo / RUNTIME_JSON)["flavours"][req.flavour]
    return [p for p in spec["local"] if not (demo / p).is_file()]


def offline_line(req: Requirement) -> str:
    """The ONE line an offline build prints: what this flavour still needs to run models."""
    libs = f" with {', '.join(req.native_libs)}" if req.native_libs else ""
    return (f"Offline build: UI only, no ExecuTorch native libraries. The {req.flavour} flavour still needs "
            f"{' + '.join(req.needs)}{libs}, {req.where}; build with Gradle (ANDROID_HOME set).")
