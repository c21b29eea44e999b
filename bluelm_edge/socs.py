"""The SoC catalogue (`qnn_backends/socs.json`): loading, validation, matching a phone, bundle fit.

The catalogue is data validated against `qnn_backends/socs.schema.json` on load (the subset of
JSON Schema that file uses), so a bad entry fails with one line naming the field. Both the export
code (which chips a recipe may target) and the device layer (which phone this is) read it here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bluelm_edge.errors import BlueLMError
from bluelm_edge.paths import data_dir

PROP_KEYS = ("ro.soc.model", "ro.board.platform", "ro.hardware")  # most specific first


class CatalogueError(BlueLMError):
    """The SoC catalogue file is missing or does not match its schema."""


@dataclass(frozen=True)
class Soc:
    id: str
    name: str
    vendor: str
    npu_family: str
    npu_generation: str | None
    memory_bandwidth_gbs: float | None
    npu_tops: float | None
    npu_tops_source: str
    schemes: tuple[str, ...]
    backends: tuple[str, ...]
    match: tuple[str, ...]
    context_budget_mb: float | None = None  # quantized weights per compiled NPU context (shards)

    @classmethod
    def from_entry(cls, e: dict[str, Any]) -> Soc:
        return cls(
            e["id"], e["name"], e["vendor"], e["npu"]["family"], e["npu"]["generation"],
            e["memory_bandwidth_gbs"], e["npu_tops"], e.get("npu_tops_source", "spec"),
            tuple(e["schemes"]), tuple(e["backends"]), tuple(e["match"]), e.get("context_budget_mb"),
        )


_TYPES = {"string": str, "integer": int, "number": (int, float), "object": dict, "array": list,
          "boolean": bool, "null": type(None)}


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """Check `value` against the JSON Schema subset used by our data files; raise one line."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        ok = any(isinstance(value, _TYPES[k]) and not (k in ("integer", "number") and isinstance(value, bool))
                 for k in kinds)
        if not ok:
            raise CatalogueError(f"{where}: expected {' or '.join(kinds)}, got {json.dumps(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise CatalogueError(f"{where}: {json.dumps(value)} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        raise CatalogueError(f"{where}: {value} is below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        _validate_object(value, schema, where)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise CatalogueError(f"{where}: needs at least {schema['minItems']} item(s)")
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{where}[{i}]")


def _validate_object(value: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in value:
            raise CatalogueError(f"{where}: missing required key {key!r}")
    for key, item in value.items():
        if key in props:
            validate(item, props[key], f"{where}.{key}")
        elif schema.get("additionalProperties") is False:
            raise CatalogueError(f"{where}: unknown key {key!r}; valid keys: {', '.join(props)}")


def load_catalogue(path: Path | None = None) -> dict[str, Soc]:
    """Read and validate a catalogue file (default: the shipped `qnn_backends/socs.json`)."""
    folder = data_dir("qnn_backends")
    path = Path(path) if path else folder / "socs.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CatalogueError(f"{path}: SoC catalogue not found; reinstall bluelm-edge") from None
    except json.JSONDecodeError as err:
        raise CatalogueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    validate(data, json.loads((folder / "socs.schema.json").read_text()), path.name)
    socs = [Soc.from_entry(e) for e in data["socs"]]
    ids = [s.id for s in socs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CatalogueError(f"{path.name}: SoC id {dupes[0]!r} appears twice; ids must be unique")
    return {s.id: s for s in socs}


@functools.lru_cache(maxsize=1)
def load_socs() -> dict[str, Soc]:
    """The shipped catalogue, keyed by chip id (e.g. "SM8650", "mt6989", "cpu")."""
    return load_catalogue()


def soc_choices(backend: str) -> list[str]:
    """Chip ids a bundle for `backend` ("qnn" | "mediatek" | "xnnpack") can target."""
    return [s.id for s in load_socs().values() if backend in s.backends]


def match_soc(props: dict[str, str]) -> Soc | None:
    """The catalogue entry a phone's getprop values name, or None for a chip we do not know."""
    for key in PROP_KEYS:
        value = props.get(key, "").strip().lower()
        if not value:
            continue
        for soc in load_socs().values():
            if value in (m.lower() for m in soc.match):
                return soc
    return None


def bundle_fits(manifest: dict[str, Any], soc: Soc | None) -> tuple[bool, str]:
    """Whether a bundle (its manifest) runs on a phone with `soc` (None: an unknown arm64 chip)."""
    backend, target = manifest.get("backend"), manifest.get("soc")
    if backend == "xnnpack":
        return True, "XNNPACK runs on every arm64 CPU"
    if backend not in ("qnn", "mediatek"):
        return False, f"unknown backend {backend!r}"
    if soc is None:
        return False, f"a {backend} bundle needs a known {target or ''} SoC; this phone's chip is not in the catalogue"
    if backend not in soc.backends:
        return False, f"{soc.name} ({soc.id}) has no {backend} backend; use an xnnpack bundle"
    if not target or str(target).lower() != soc.id.lower():
        built = next((s for s in load_socs().values() if s.id.lower() == str(target).lower()), None)
        return False, (f"bundle was compiled for {target}{_npu(built)}, this phone has {soc.id} "
                       f"({soc.name}{_npu(soc)}); re-export with --backend {backend} --soc {soc.id}")
    return True, f"{backend} bundle for {soc.id}"


def _npu(soc: Soc | None) -> str:
    """", hexagon-htp v75" for a chip whose NPU generation the catalogue knows, else ""."""
    return f", {soc.npu_family} {soc.npu_generation}" if soc is not None and soc.npu_generation else ""
