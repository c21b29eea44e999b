"""Hugging Face text families: a folder in the Hub's layout of a Qwen3, Qwen2 or LLaMA-family model.

The layout: `config.json` (`architectures`, `model_type`), `model.safetensors` or shards with
`model.safetensors.index.json`, `tokenizer.json`, `tokenizer_config.json` (special tokens, the
`chat_template`, or a `chat_template.jinja` beside it) and optionally `generation_config.json`
(its `eos_token_id` list wins). The decoder config and weight keys go through the one loader
(`model/checkpoint.py`); the template is the checkpoint's own (`text/template.py`); thinking
families name their tags and budget message in their `ThinkingSpec`. Adding a family is one
`register(HubTextFamily(...))` line at the bottom.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bluelm_edge.errors import ConfigError
from bluelm_edge.families.base import CONFIG, Family, Source, register
from bluelm_edge.text.formats import ThinkingSpec

WEIGHTS, INDEX = "model.safetensors", "model.safetensors.index.json"
TOKENIZER, TOKENIZER_CONFIG, TEMPLATE_FILE = "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"
GENERATION_CONFIG = "generation_config.json"
TEMPLATE_TOKENS = ("bos_token", "eos_token", "pad_token", "unk_token")

# Qwen3 technical report, section 4.3 (Thinking Budget): the stop-thinking instruction inserted when
# the budget is reached. The report prints it as "...now.\n</think>.\n\n"; Qwen's own guide
# (docs/source/getting_started/thinking_budget.md) and the runtimes that follow it feed
# "...now.\n</think>\n\n", the form the template writes after every `</think>`: used here.
QWEN3_BUDGET_MESSAGE = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking directly now.\n"
)
QWEN3_THINKING = ThinkingSpec(budget_message=QWEN3_BUDGET_MESSAGE, budget_suffix="\n\n", switch="enable_thinking")


@dataclass(frozen=True)
class HubTextFamily(Family):
    """A transformers decoder-only family read from a Hub folder."""

    name: str
    architectures: tuple[str, ...]
    model_types: tuple[str, ...] = ()
    thinking: ThinkingSpec | None = None
    parts: bool = False  # the template takes content as typed parts (a multimodal processor's form)

    def matches(self, raw: dict[str, Any]) -> bool:
        archs = raw.get("architectures") or []
        return bool(set(archs) & set(self.architectures)) or (not archs and raw.get("model_type") in self.model_types)

    # ---- config ----------------------------------------------------------------------------
    def read_config(self, folder: Path, raw: dict[str, Any]):
        from bluelm_edge.model.checkpoint import decoder_config_from_hf
        from bluelm_edge.model.config import NO_TOKEN, BlueLMConfig, SpecialTokenIds

        decoder = decoder_config_from_hf(raw)
        eos = _ids(_json(Path(folder) / GENERATION_CONFIG).get("eos_token_id", raw.get("eos_token_id")))
        if not eos:
            raise ConfigError(f"{Path(folder) / CONFIG}: no eos_token_id (nor in {GENERATION_CONFIG}); "
                              "the model cannot stop: re-download the folder")
        bos = _ids(raw.get("bos_token_id"))
        tokens = SpecialTokenIds(**dict.fromkeys(_NO_TOKEN_FIELDS, NO_TOKEN), bos=(bos or eos)[0], eos=eos[0],
                                 more_eos=eos[1:])
        return BlueLMConfig(name=_model_name(folder), vision=None, decoder=decoder, tokens=tokens,
                            max_tiles=1).validate()

    def missing(self, folder: Path) -> list[str]:
        folder = Path(folder)
        gone = [n for n in (CONFIG, TOKENIZER, TOKENIZER_CONFIG) if not (folder / n).is_file()]
        if not (folder / WEIGHTS).is_file() and not (folder / INDEX).is_file():
            gone.insert(1, f"{WEIGHTS} (or {INDEX} + shards)")
        if (folder / TOKENIZER_CONFIG).is_file() and _template(folder) is None:
            gone.append(f"a chat_template ({TOKENIZER_CONFIG} or {TEMPLATE_FILE})")
        return gone

    # ---- opening ---------------------------------------------------------------------------
    def open(self, folder: Path) -> Source:
        from bluelm_edge.text.formats import TemplateFormat
        from bluelm_edge.text.tokenizer import Tokenizer

        folder = Path(folder)
        config = self.read_config(folder, _json(folder / CONFIG))
        tokenizer = Tokenizer.from_file(folder / TOKENIZER, special=config.tokens)
        self._check_vocab(folder, config, tokenizer)
        if self.thinking:
            config.tokens.think_start = _token_id(tokenizer, self.thinking.think_start)
            config.tokens.think_end = _token_id(tokenizer, self.thinking.think_end)
        special = _template_tokens(_json(folder / TOKENIZER_CONFIG))
        chat = TemplateFormat(self.name, _template(folder) or "", tokenizer, self.thinking, special, parts=self.parts)
        return Source(self, folder, config, tokenizer, chat)

    def _check_vocab(self, folder: Path, config, tokenizer) -> None:
        if tokenizer.vocab_size > config.decoder.vocab_size:
            raise ConfigError(f"{folder / TOKENIZER}: {tokenizer.vocab_size} tokens but the model has "
                              f"{config.decoder.vocab_size} embeddings; the tokenizer is for another model")

    def chat_from_manifest(self, chat: dict[str, Any], tokenizer):
        from bluelm_edge.text.formats import TemplateFormat

        thinking = ThinkingSpec(**chat["thinking"]) if chat.get("thinking") else None
        return TemplateFormat(self.name, chat["chat_template"], tokenizer, thinking, chat["template_tokens"],
                              parts=self.parts)

    # ---- weights (the one loader) ----------------------------------------------------------
    def load_model(self, source: Source):
        import torch

        from bluelm_edge.model.checkpoint import build_model, hf_decoder_keys, load_into, weight_files

        model = build_model(source.config, "meta")
        files = weight_files(source.path)
        load_into(model.decoder, files, hf_decoder_keys(source.config.decoder.tie_embeddings))
        model.decoder.tie_weights()
        model.decoder.init_buffers(torch.float32, "cpu")
        return model.eval()

    def check_weights(self, folder: Path, config) -> list[Path]:
        from bluelm_edge.model.checkpoint import build_model, check_header, hf_decoder_keys, weight_files

        files = weight_files(folder)
        check_header(build_model(config, "meta").decoder, files, hf_decoder_keys(config.decoder.tie_embeddings))
        return files


_NO_TOKEN_FIELDS = ("pad", "human", "ai", "blue_think", "think_start", "think_end", "im_start", "image", "im_end")


def _json(path: Path) -> dict[str, Any]:
    """A JSON object file, {} when absent; one line when it is not valid JSON."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err}); re-download it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a JSON object")
    return data


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def _model_name(folder: Path) -> str:
    return Path(folder).resolve().name.lower().replace(" ", "-") or "model"


def _template(folder: Path) -> str | None:
    """The chat template: tokenizer_config.json's `chat_template` (a string, or the "default" of a
    named list), else chat_template.jinja (what transformers 5 writes)."""
    value = _json(Path(folder) / TOKENIZER_CONFIG).get("chat_template")
    if isinstance(value, list):
        value = next((t.get("template") for t in value if isinstance(t, dict) and t.get("name") == "default"), None)
    if isinstance(value, str) and value:
        return value
    file = Path(folder) / TEMPLATE_FILE
    return file.read_text(encoding="utf-8") if file.is_file() else None


def _template_tokens(tok_config: dict[str, Any]) -> dict[str, str | None]:
    """bos_token, eos_token, ... as strings (an AddedToken dict gives its `content`)."""
    out = {}
    for key in TEMPLATE_TOKENS:
        v = tok_config.get(key)
        out[key] = v.get("content") if isinstance(v, dict) else v
    return out


def _token_id(tokenizer, text: str) -> int:
    from bluelm_edge.model.config import NO_TOKEN

    i = tokenizer.token_to_id(text)
    return NO_TOKEN if i is None else i


QWEN3 = register(HubTextFamily("qwen3", ("Qwen3ForCausalLM",), ("qwen3",), QWEN3_THINKING))
QWEN2 = register(HubTextFamily("qwen2", ("Qwen2ForCausalLM",), ("qwen2",)))
LLAMA = register(HubTextFamily("llama", ("LlamaForCausalLM",), ("llama",)))  # Llama 3.x, SmolLM, SmolLM2
