"""Input-file validation: the one layer every reader of a user's file goes through.

Owns reading text (UTF-8 checked, the line of the first bad byte named), JSON and JSONL (one
object a line), key and type checks against a dataclass or a key set (unknown keys rejected with
the valid ones listed), the JSONL chat schema (`train --data`, calibration sets), the essential
keys of a model `config.json`, and full image verification before use. Each problem is one line
naming the file (and line) and what to do; the caller picks the error class, so a checkpoint's
file raises a CheckpointError and a user's data a DataError.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from bluelm_edge.errors import BlueLMError, DataError

Err = type[BlueLMError]


# ---- text, JSON and JSONL ---------------------------------------------------------------------
def read_text(path: Path, error: Err = DataError, hint: str = "pass the right file") -> str:
    """The file as UTF-8 text; a missing file or a non-UTF-8 byte is one line (with the line number)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file; {hint}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8") from None


def read_json(path: Path, error: Err = DataError, hint: str = "pass the right file") -> Any:
    """Parse a JSON file; bad encoding or bad JSON is one line naming the file and line."""
    text = read_text(path, error, hint)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None


def read_json_object(path: Path, error: Err = DataError, hint: str = "pass the right file") -> dict[str, Any]:
    obj = read_json(path, error, hint)
    if not isinstance(obj, dict):
        raise error(f"{path}: must be a JSON object, got {_kind(obj)}")
    return obj


def iter_jsonl(path: Path, error: Err = DataError) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; every problem names `path:line`."""
    path = Path(path)
    text = read_text(path, error, "pass a JSONL file (one JSON object a line)")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise error(f"{path}:{lineno}: invalid JSON ({err.msg}); fix or remove that line") from None
        if not isinstance(obj, dict):
            raise error(f"{path}:{lineno}: each line must be a JSON object, got {_kind(obj)}")
        yield lineno, obj


# ---- keys and types ---------------------------------------------------------------------------
def check_keys(obj: dict[str, Any], valid: set[str] | tuple[str, ...], where: str, error: Err = DataError,
               required: tuple[str, ...] = ()) -> None:
    """Unknown keys are rejected with the valid ones listed; `required` keys must be present."""
    unknown = [k for k in obj if k not in valid]
    if unknown:
        raise error(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(valid))}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise error(f"{where}: missing key {missing[0]!r} (required: {', '.join(required)})")


_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "None": lambda v: v is None,
    "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
}
_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
          "None": "null", "list": "a list",
          "dict": "a JSON object"}


def check_type(value: Any, kinds: str, where: str, error: Err = DataError) -> None:
    """`kinds` is an annotation such as "int | None" or "tuple[float, float, float]"."""
    if kinds.startswith("tuple["):
        items = [k.strip() for k in kinds[6:-1].split(",")]
        if not isinstance(value, list) or len(value) != len(items):
            raise error(f"{where} must be a list of {len(items)} numbers, got {json.dumps(value)}")
        for i, (item, kind) in enumerate(zip(value, items, strict=True)):
            check_type(item, kind, f"{where}[{i}]", error)
        return
    options = [k.strip() for k in kinds.split("|")]
    if not any(_CHECKS[k](value) for k in options if k in _CHECKS):
        want = " or ".join(_NAMES.get(k, k) for k in options)
        raise error(f"{where} must be {want}, got {json.dumps(value)}")


def check_dataclass(kind: type, d: Any, where: str, error: Err, section: str = "") -> None:
    """`d` as the JSON form of dataclass `kind` (at `section.` within file `where`): an object,
    known keys only, each value of its field's type."""
    dotted = f"{section}." if section else ""
    if not isinstance(d, dict):
        raise error(f"{where}: {section or 'the top level'} must be a JSON object, got {_kind(d)}")
    types = {f.name: str(f.type) for f in fields(kind)}
    unknown = [k for k in d if k not in types]
    if unknown:
        raise error(f"{where}: unknown key {dotted}{unknown[0]}; valid keys: {', '.join(sorted(types))}")
    for key, value in d.items():
        if types[key] in _CHECKS or "|" in types[key] or types[key].startswith("tuple["):
            check_type(value, types[key], f"{where}: {dotted}{key}", error)


# ---- model config.json --------------------------------------------------------------------------
# What a config.json must give: a name and the shapes that size every tensor. Everything else
# (norm eps, rope theta, token ids, ...) has a documented default in model/config.py.
CONFIG_REQUIRED = ("name", "vision", "decoder")
VISION_REQUIRED = ("image_size", "patch_size", "width", "layers", "heads", "mlp_dim")
DECODER_REQUIRED = ("vocab_size", "dim", "layers", "heads", "kv_heads", "ffn_dim", "max_seq_len")


def check_config_file(d: Any, path: Path, error: Err) -> None:
    """A config.json names its model and gives the essential shapes (`{}` is not a model)."""
    if not isinstance(d, dict):
        raise error(f"{path}: must be a JSON object (a model config), got {_kind(d)}")
    if not d:
        raise error(f"{path}: empty config; a config.json must give at least {', '.join(CONFIG_REQUIRED)} "
                    "(see bluelm_edge/assets/bluelm-tiny/config.json)")
    missing = [k for k in CONFIG_REQUIRED if k not in d]
    if missing:
        raise error(f"{path}: missing key {missing[0]!r}; a config.json must give {', '.join(CONFIG_REQUIRED)}")
    for section, keys in (("vision", VISION_REQUIRED), ("decoder", DECODER_REQUIRED)):
        part = d[section]
        if part is None and section == "vision":  # a text-only model (no vision tower)
            continue
        if not isinstance(part, dict):
            raise error(f"{path}: {section} must be a JSON object, got {_kind(part)}")
        gone = [k for k in keys if k not in part]
        if gone:
            raise error(f"{path}: missing key {section}.{gone[0]}; {section} must give {', '.join(keys)}")


# ---- JSONL chats --------------------------------------------------------------------------------
CHAT_KEYS = ("messages",)
MESSAGE_KEYS = ("role", "content", "images", "thinking")


def check_chat(obj: dict[str, Any], where: str) -> None:
    """One `{"messages": [{"role", "content", "images"?, "thinking"?}, ...]}` line (DataError)."""
    check_keys(obj, CHAT_KEYS, where, required=CHAT_KEYS)
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        at = f"{where}: messages[{i}]"
        if not isinstance(m, dict):
            raise DataError(f"{at} must be a JSON object, got {_kind(m)}")
        check_keys(m, MESSAGE_KEYS, at, required=("role", "content"))
        check_type(m["role"], "str", f"{at}.role")
        check_type(m["content"], "str", f"{at}.content")
        check_type(m.get("thinking"), "str | None", f"{at}.thinking")
        images = m.get("images", [])
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            raise DataError(f"{at}.images must be a list of paths, e.g. [\"cat.png\"], got {json.dumps(images)}")


# ---- images -------------------------------------------------------------------------------------
def check_image(path: Path, where: str, shown: str | None = None, error: Err = DataError) -> None:
    """Fully decode an image now (header, checksums and all pixels), so a bad one is found before
    any work starts; the message names `where` (file:line) and the image as the user wrote it."""
    from bluelm_edge.imaging import load_image

    try:
        load_image(Path(path))
    except BlueLMError as err:
        reason = str(err).removeprefix(f"{path}: ")
        raise error(f"{where}: image {shown or Path(path).name!r} cannot be read: {reason}") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
