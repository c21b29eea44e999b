"""Idefics3 / SmolVLM checkpoints (transformers' `Idefics3ForConditionalGeneration`) as a `BlueLM`.

The architecture is BlueLM's shape: a SigLIP tower over square tiles, a pixel-shuffle token merge
(`scale_factor`) and a connector to a LLaMA-style decoder. So the model is our `BlueLM` with
`adapter.kind = "linear"` (`connector.PixelShuffleConnector`), and it keeps the three-method
runtime contract (`vision_encoder` / `token_embedding` / `text_decoder`) and exports as ours.

- `config_from_hf(hf, max_seq_len)`: an Idefics3 `config.json` dict -> `BlueLMConfig`.
- `IDEFICS3_KEYS`: transformers' state-dict names -> ours (checked on a real tiny instance:
  `model.vision_model.*`, `model.connector.modality_projection.proj.weight`,
  `model.text_model.*`, `lm_head.weight`).
- `load_idefics3(path)`: the folder's safetensors through the one loader (`checkpoint.load_into`).
- the family adapter a registry entry calls: `is_idefics3(raw)` (matches), `missing(folder)`,
  `read_config(folder)`, `check_weights(folder, cfg)`, `load_model(folder, cfg)`; images go
  through `imaging_idefics3` (`Idefics3ImageRules.load(folder)`, `preprocess`, `expand_prompt`).

Tiles whose side is not a multiple of the patch (SmolVLM-2.2B: 384-px tiles, 14-px patches)
give the tower `image_size = grid * patch` (378): transformers' "valid" patch convolution
never reads the last pixels, so `imaging_idefics3.encoder_tiles` crops them first.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bluelm_edge.errors import ConfigError
from bluelm_edge.model.checkpoint import (
    CONFIG,
    INDEX,
    LLAMA_KEYS,
    SIGLIP_KEYS,
    TOKENIZER,
    WEIGHTS,
    KeyMap,
    build_model,
    check_header,
    decoder_config_from_hf,
    load_into,
    read_header,
    weight_files,
)
from bluelm_edge.model.config import AdapterConfig, BlueLMConfig, SpecialTokenIds, VisionConfig
from bluelm_edge.model.vlm import BlueLM

ARCHITECTURE = "Idefics3ForConditionalGeneration"
MODEL_TYPE = "idefics3"
FAKE_IMAGE = "<fake_token_around_image>"
IMAGE = "<image>"
GLOBAL_IMAGE = "<global-img>"
END_OF_UTTERANCE = "<end_of_utterance>"
TOKENIZER_CONFIG = "tokenizer_config.json"
PREPROCESSOR, PROCESSOR = "preprocessor_config.json", "processor_config.json"


def is_idefics3(hf: dict) -> bool:
    """True for an Idefics3 / SmolVLM `config.json` dict."""
    return hf.get("model_type") == MODEL_TYPE or ARCHITECTURE in (hf.get("architectures") or [])


def vision_config_from_hf(v: dict) -> VisionConfig:
    """Our VisionConfig from an `idefics3_vision` sub-config (grid = image_size // patch_size)."""
    if v.get("hidden_act", "gelu_pytorch_tanh") not in ("gelu_pytorch_tanh", "gelu_tanh"):
        raise ConfigError(f"idefics3 vision hidden_act {v['hidden_act']!r} is not supported (only tanh GELU)")
    patch = v.get("patch_size", 32)
    return VisionConfig(
        image_size=v.get("image_size", 224) // patch * patch, patch_size=patch,
        width=v.get("hidden_size", 1152), layers=v.get("num_hidden_layers", 12),
        heads=v.get("num_attention_heads", 16), mlp_dim=v.get("intermediate_size", 3072),
        channels=v.get("num_channels", 3), norm_eps=v.get("layer_norm_eps", 1e-6),
    )


def config_from_hf(hf: dict, max_seq_len: int | None = None, tied: bool | None = None) -> BlueLMConfig:
    """`BlueLMConfig` from an Idefics3 `config.json` dict; `tied` overrides the config's tie flag."""
    if not is_idefics3(hf):
        raise ConfigError(f"model_type {hf.get('model_type')!r} is not idefics3")
    text = dict(hf.get("text_config") or {})
    text.setdefault("model_type", "llama")
    text.setdefault("rms_norm_eps", 1e-5)  # transformers' Idefics3Config default for its text model
    text["tie_word_embeddings"] = bool(hf.get("tie_word_embeddings", False)) if tied is None else tied
    decoder = decoder_config_from_hf(text, max_seq_len)
    vision = vision_config_from_hf(hf.get("vision_config") or {})
    scale = int(hf.get("scale_factor", 2))
    if vision.grid % scale:
        raise ConfigError(f"idefics3: scale_factor {scale} must divide the patch grid {vision.grid}")
    tokens = SpecialTokenIds(
        pad=_first_id(text.get("pad_token_id"), 0), bos=_first_id(text.get("bos_token_id"), 0),
        eos=_first_id(text.get("eos_token_id"), 0), image=int(hf.get("image_token_id", 128257)),
    )
    cfg = BlueLMConfig(
        name=str(hf.get("_name_or_path") or "idefics3"), vision=vision,
        adapter=AdapterConfig(merge=scale, kind="linear"), decoder=decoder, tokens=tokens,
    )
    return cfg.validate()


def _first_id(value, default: int) -> int:
    """A token id from a config field that may be None, an int or a list of ints."""
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else int(value)


def IDEFICS3_KEYS(key: str) -> str | None:  # noqa: N802 (a key table, named as the others)
    """transformers' Idefics3ForConditionalGeneration key -> our BlueLM key (None: ignore)."""
    if key.startswith("model.vision_model."):
        ours = SIGLIP_KEYS(key[len("model.vision_model."):])
        return None if ours is None else "vision." + ours
    if key.startswith("model.connector.modality_projection.proj."):
        return "adapter.proj." + key.rsplit(".", 1)[1]
    if key.startswith("model.text_model."):
        ours = LLAMA_KEYS("model." + key[len("model.text_model."):])
        return None if ours is None else "decoder." + ours
    if key.startswith("lm_head."):
        return "decoder." + LLAMA_KEYS(key)
    return key  # reported as unexpected


def position_ids(grid: int) -> torch.Tensor:
    """The position index transformers' Idefics3 embedding gives each patch of a full g x g tile
    (its fractional-coordinate bucketing), row-major: [g * g] int64."""
    boundaries = torch.arange(1 / grid, 1.0, 1 / grid)
    step = 1.0 / torch.tensor([grid])
    coords = torch.clamp(torch.arange(grid, dtype=torch.float32) * step, max=1.0 - 1e-6)
    rows = torch.bucketize(coords, boundaries, right=True)
    return (rows[:, None] * grid + rows[None, :]).reshape(-1)


# ---- the family adapter (what a registry entry calls) ---------------------------------------------
def missing(folder: Path) -> list[str]:
    """The files a complete Idefics3 folder needs that `folder` lacks (empty: complete)."""
    folder = Path(folder)
    gone = [n for n in (CONFIG, TOKENIZER, TOKENIZER_CONFIG) if not (folder / n).is_file()]
    if not (folder / WEIGHTS).is_file() and not (folder / INDEX).is_file():
        gone.insert(1, f"{WEIGHTS} (or {INDEX} + shards)")
    if not (folder / PREPROCESSOR).is_file() and not (folder / PROCESSOR).is_file():
        gone.append(f"{PREPROCESSOR} (or {PROCESSOR})")
    return gone


def read_config(folder: Path, max_seq_len: int | None = None) -> BlueLMConfig:
    """The folder's `BlueLMConfig` (image and fake-image token ids from its tokenizer.json); the
    tie flag comes from the weights' header when the weights are there (a tied model has no lm_head)."""
    folder = Path(folder)
    tied = None
    if (folder / WEIGHTS).is_file() or (folder / INDEX).is_file():
        tied = "lm_head.weight" not in read_header(weight_files(folder)) or None
    cfg = config_from_hf(_read_config(folder), max_seq_len, tied=tied)
    cfg.tokens = _tokens_from_tokenizer(folder / TOKENIZER, cfg.tokens)
    return cfg


def key_map(cfg: BlueLMConfig) -> KeyMap:
    """IDEFICS3_KEYS, with a tied model's stray lm_head ignored."""
    if cfg.decoder.tie_embeddings:
        return lambda k: None if k.startswith("lm_head.") else IDEFICS3_KEYS(k)
    return IDEFICS3_KEYS


def check_weights(folder: Path, cfg: BlueLMConfig) -> list[Path]:
    """Names, shapes and dtypes of the folder's safetensors against `cfg` (headers only)."""
    files = weight_files(Path(folder))
    check_header(build_model(cfg, "meta"), files, key_map(cfg))
    return files


def load_idefics3(
    path: Path, *, max_seq_len: int | None = None, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> tuple[BlueLM, BlueLMConfig]:
    """Load a transformers Idefics3 / SmolVLM folder into our `BlueLM` in eval mode: (model, config)."""
    cfg = read_config(path, max_seq_len)
    return load_model(path, cfg, dtype=dtype, device=device), cfg


def load_model(path: Path, cfg: BlueLMConfig, *, dtype: torch.dtype = torch.float32, device: str = "cpu") -> BlueLM:
    """The weights of the folder `cfg` was read from, through the one loader."""
    model = build_model(cfg, "meta")
    load_into(model, weight_files(Path(path)), key_map(cfg), dtype=dtype, device=device)
    ids = position_ids(cfg.vision.grid)
    if not torch.equal(ids, torch.arange(ids.numel())):  # transformers' bucketing skips or repeats a slot
        model.vision.pos_embed.data = model.vision.pos_embed.data[ids].clone()
    model.decoder.tie_weights()
    model.decoder.init_buffers(dtype, device)
    return model.eval()


def _read_config(path: Path) -> dict:
    try:
        return json.loads((path / CONFIG).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path / CONFIG}: no config.json; a transformers checkpoint folder needs one") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path / CONFIG}: invalid JSON at line {err.lineno}: {err.msg}") from None


def _tokens_from_tokenizer(path: Path, tokens: SpecialTokenIds) -> SpecialTokenIds:
    """`im_start` and `im_end` <- `<fake_token_around_image>` when the folder's tokenizer.json has it."""
    if not path.is_file():
        return tokens
    added = {t["content"]: t["id"] for t in json.loads(path.read_text()).get("added_tokens", [])}
    if FAKE_IMAGE in added:
        tokens.im_start = tokens.im_end = added[FAKE_IMAGE]
    return tokens
