"""A checkpoint's own chat template: Jinja2 in a sandbox, rendered the way `transformers` does.

`render_template(source, messages, ...)` is what `tokenizer.apply_chat_template(..., tokenize=False)`
returns for the same arguments: an immutable sandboxed environment with `trim_blocks` and
`lstrip_blocks`, the `loopcontrols` extension, a `tojson` filter that keeps non-ASCII text,
`raise_exception` and `strftime_now` globals, and the tokenizer's special-token strings
(`bos_token`, `eos_token`, ...) as variables. Extra keyword arguments (Qwen3's `enable_thinking`)
are passed through as template variables. Vectors: `tests/vectors/hf_chat_templates.json`.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from bluelm_edge.errors import DataError


def _raise(message: str) -> None:
    raise DataError(f"chat template: {message}")


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.lru_cache(maxsize=8)
def _compiled(source: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except TemplateError as err:
        raise DataError(f"chat template does not parse ({err}); fix chat_template in tokenizer_config.json") from None


def render_template(source: str, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
                    special: dict[str, str | None] | None = None, **variables: Any) -> str:
    """The conversation as the template renders it (`special`: bos_token, eos_token, ... strings)."""
    from jinja2 import TemplateError

    try:
        return _compiled(source).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                        **(special or {}), **variables)
    except TemplateError as err:
        raise DataError(f"chat template failed to render ({err})") from None
