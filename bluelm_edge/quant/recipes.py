"""The recipe registry: quantization recipes are JSON files in `qnn_backends/recipes/`, not code.

Every `*.json` file there except the schema is a recipe, validated against
`recipes.schema.json` (a small validator for the keywords the schema uses, plus its
`x-backend-schemes` table of which schemes each backend's quantizer implements). Adding a recipe
is adding a file. Errors are one line naming the file, the field and the valid choices.

A recipe gives, for each sub-model (vision, adapter, decoder_linears, embeddings, output_head,
kv_cache), a scheme and a granularity; optional `sensitive_layers` (module-path regexes kept at a
higher precision), `block_quant` (the minimum Qualcomm HTP generation for block quantization;
older SoCs fall back) and `recovery` (accuracy recovery beyond min-max).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluelm_edge import validate
from bluelm_edge.errors import BlueLMError
from bluelm_edge.paths import data_dir

SUBMODELS = ("vision", "adapter", "decoder_linears", "embeddings", "output_head", "kv_cache")
SCHEMA_NAME = "recipes.schema.json"


class RecipeError(BlueLMError):
    """A recipe file that is invalid, or a recipe name that does not exist."""


@dataclass
class Recipe:
    """One validated recipe file."""

    name: str
    backend: str
    description: str
    submodels: dict[str, dict[str, Any]]
    default_soc: str | None = None
    sensitive_layers: dict[str, Any] | None = None
    block_quant: dict[str, Any] | None = None
    recovery: dict[str, Any] = field(default_factory=lambda: {"method": "none"})
    path: Path | None = None

    def part(self, submodel: str) -> dict[str, Any]:
        return self.submodels[submodel]

    def to_dict(self) -> dict[str, Any]:
        d = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "path"}
        return {k: v for k, v in d.items() if v is not None}

    def for_soc(self, htp_arch: int | None) -> Recipe:
        """The recipe as it applies on a Qualcomm SoC of HTP generation `htp_arch` (None: as written)."""
        out = copy.deepcopy(self)
        bq = self.block_quant
        if bq is None or htp_arch is None or htp_arch >= bq["min_htp_arch"]:
            return out
        for part in out.submodels.values():
            if part.get("granularity") == "per_block":
                part["granularity"] = bq["fallback_granularity"]
                part.pop("block_size", None)
        return out


# ---- the schema and its validator ----------------------------------------------------------
def recipes_dir() -> Path:
    return data_dir("qnn_backends") / "recipes"


def load_schema(folder: Path | None = None) -> dict[str, Any]:
    path = (folder or recipes_dir()) / SCHEMA_NAME
    return json.loads(path.read_text())


_TYPES = {"object": dict, "string": str, "array": list, "boolean": bool, "null": type(None)}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> None:
    """Check `value` against the JSON-schema subset used by recipes.schema.json; raise one line."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds and not any(_type_ok(value, k) for k in kinds):
        raise ValueError(f"{where} must be {' or '.join(kinds)}, got {json.dumps(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{where} is {json.dumps(value)}; valid: {', '.join(map(str, schema['enum']))}")
    if "minimum" in schema and value < schema["minimum"]:
        raise ValueError(f"{where} must be >= {schema['minimum']}")
    if "pattern" in schema:
        import re

        if not re.search(schema["pattern"], value):
            raise ValueError(f"{where} {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        _validate_object(value, schema, root, where)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _validate(item, schema["items"], root, f"{where}[{i}]")


def _validate_object(value: dict, schema: dict[str, Any], root: dict[str, Any], where: str) -> None:
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in value:
            raise ValueError(f"{where}: missing required key {key!r}")
    for key, item in value.items():
        if key not in props:
            if schema.get("additionalProperties", True) is False:
                raise ValueError(f"{where}: unknown key {key!r}; valid: {', '.join(props)}")
            continue
        _validate(item, props[key], root, f"{where}.{key}" if where else key)


def _check_schemes(d: dict[str, Any], schema: dict[str, Any]) -> None:
    valid = schema["x-backend-schemes"][d["backend"]]
    parts = [(f"submodels.{k}", v) for k, v in d["submodels"].items()]
    parts += [(k, d[k]) for k in ("sensitive_layers", "recovery") if k in d and "scheme" in d[k]]
    for where, part in parts:
        if part["scheme"] not in valid:
            raise ValueError(
                f"{where}.scheme is {part['scheme']!r}, not a {d['backend']} scheme; valid: {', '.join(valid)}"
            )
        if part.get("granularity") == "per_block" and "block_size" not in part and where.startswith("sub"):
            raise ValueError(f"{where}: granularity per_block needs block_size")


def parse_recipe(d: Any, schema: dict[str, Any], source: str) -> Recipe:
    """Validate one recipe dict; errors name `source` and the offending field."""
    try:
        _validate(d, schema, schema, "")
        _check_schemes(d, schema)
    except ValueError as err:
        raise RecipeError(f"{source}: {str(err).lstrip('.: ')}") from None
    return Recipe(**d)


def load_recipe_file(path: Path, schema: dict[str, Any] | None = None) -> Recipe:
    path = Path(path)
    schema = schema or load_schema(path.parent)
    d = validate.read_json(path, RecipeError, "pass a recipe file or a name from `quantize --list-recipes`")
    recipe = parse_recipe(d, schema, str(path))
    if recipe.name != path.stem:
        raise RecipeError(f"{path}: name {recipe.name!r} must equal the file name {path.stem!r}")
    recipe.path = path
    return recipe


# ---- the registry --------------------------------------------------------------------------
def all_recipes(folder: Path | None = None) -> dict[str, Recipe]:
    """Every recipe file in the folder, by name (sorted)."""
    folder = folder or recipes_dir()
    schema = load_schema(folder)
    files = sorted(p for p in folder.glob("*.json") if p.name != SCHEMA_NAME)
    return {r.name: r for r in (load_recipe_file(p, schema) for p in files)}


def get_recipe(name_or_path: str | Path, folder: Path | None = None) -> Recipe:
    """A recipe by registry name, or from a path to a recipe file; unknown names list the valid ones."""
    if isinstance(name_or_path, Recipe):
        return name_or_path
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" and candidate.is_file():
        return load_recipe_file(candidate, load_schema(folder) if folder else load_schema())
    recipes = all_recipes(folder)
    if str(name_or_path) not in recipes:
        raise RecipeError(f"unknown recipe {str(name_or_path)!r}; valid recipes: {', '.join(recipes)}")
    return recipes[str(name_or_path)]
