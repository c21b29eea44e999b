"""Checkpoint IO, the one loader: our checkpoint folders and `transformers` LLaMA/Qwen/SigLIP ones.

A checkpoint folder holds `config.json` (`BlueLMConfig.to_dict()`), the weights as
`model.safetensors` or shards `model-0000X-of-0000N.safetensors` + `model.safetensors.index.json`,
and `tokenizer.json`. Weights are read only from safetensors (never unpickled). Models are built
on the meta device and tensors are assigned in place, one file at a time, so a 2.9B model never
sits in memory twice; non-persistent buffers (KV cache, RoPE tables) are created after loading.
Every mismatch is a one-line `CheckpointError` naming the first offending keys.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from bluelm_edge.errors import CheckpointError, ConfigError
from bluelm_edge.io import atomic_dir
from bluelm_edge.model.config import BlueLMConfig, DecoderConfig, VisionConfig
from bluelm_edge.model.decoder import Decoder
from bluelm_edge.model.vision import VisionTower
from bluelm_edge.model.vlm import BlueLM

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
KeyMap = Callable[[str], "str | None"]  # checkpoint key -> our key; None: ignore the tensor


# ---- building ------------------------------------------------------------------------------
def build_model(cfg: BlueLMConfig, device: torch.device | str = "meta") -> BlueLM:
    """Build `BlueLM(cfg)`; on the meta device (the default) nothing is allocated."""
    with torch.device(device):
        return BlueLM(cfg)


def count_parameters(model: BlueLM) -> dict[str, int]:
    """Parameters by part: vision, adapter, decoder_embedding, decoder_layers, output_head, total.

    decoder_layers counts the blocks plus the embedding and final norms; a tied head counts 0.
    Works on meta-device models.
    """
    dec = model.decoder
    count = lambda m: sum(p.numel() for p in m.parameters()) if m is not None else 0  # noqa: E731
    head = 0 if dec.head.weight is dec.embed.weight else count(dec.head)
    embedding = dec.embed.weight.numel()
    parts = {
        "vision": count(model.vision),
        "adapter": count(model.adapter),
        "decoder_embedding": embedding,
        "decoder_layers": count(dec) - embedding - head,
        "output_head": head,
    }
    parts["total"] = sum(parts.values())
    return parts


# ---- saving --------------------------------------------------------------------------------
def _persistent(module: nn.Module) -> dict[str, torch.Tensor]:
    """Persistent tensors by name, a tied (shared) tensor kept once under its first name."""
    out, seen = {}, set()
    for name, t in module.state_dict(keep_vars=True).items():
        if id(t) not in seen:
            seen.add(id(t))
            out[name] = t
    return out


def _tensors_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: t.detach().contiguous().cpu() for k, t in _persistent(model).items()}


def _shards(tensors: dict[str, torch.Tensor], max_shard_bytes: int | None) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if max_shard_bytes and shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    return shards


def _write_weights(folder: Path, tensors: dict[str, torch.Tensor], max_shard_bytes: int | None) -> None:
    shards = _shards(tensors, max_shard_bytes)
    if len(shards) == 1:
        save_file(shards[0], str(folder / WEIGHTS), metadata={"format": "pt"})
        return
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in shard})
        total += sum(t.numel() * t.element_size() for t in shard.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")


def save_checkpoint(
    model: BlueLM,
    config: BlueLMConfig,
    out_dir: Path,
    tokenizer_json_path: Path | None = None,
    extra_files: Mapping[str, Path | str | bytes] | None = None,
    max_shard_bytes: int | None = None,
) -> Path:
    """Write a checkpoint folder atomically (a temp folder renamed onto `out_dir` when complete).

    `extra_files` maps file names to a source path, text or bytes. With `max_shard_bytes` the
    weights are split into HF-style shards plus an index.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        _write_weights(tmp, _tensors_to_save(model), max_shard_bytes)
        if tokenizer_json_path is not None:
            shutil.copyfile(_existing(Path(tokenizer_json_path)), tmp / TOKENIZER)
        for name, src in (extra_files or {}).items():
            _write_extra(tmp / name, src)
    return out_dir


def _write_extra(dest: Path, src: Path | str | bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(src, bytes):
        dest.write_bytes(src)
    elif isinstance(src, Path):
        shutil.copyfile(_existing(src), dest)
    else:
        dest.write_text(src)


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; check the path")
    return path


# ---- reading safetensors -------------------------------------------------------------------
def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder (the index's shards, or model.safetensors)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder; check the path")
    if (folder / INDEX).is_file():
        try:
            names = sorted(set(json.loads((folder / INDEX).read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise CheckpointError(f"{folder / INDEX}: not a valid shard index; re-export it") from None
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(f"{folder}: shard {missing[0]} named in {INDEX} is missing; re-download it")
        return [folder / n for n in names]
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    raise CheckpointError(f"{folder}: no {WEIGHTS} or {INDEX}; a checkpoint folder needs its weights")


def _open(path: Path):
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path}: is truncated or not a safetensors file ({_reason(err)}); re-download or re-export it"
        ) from None


def _reason(err: Exception) -> str:
    return str(err).splitlines()[0][:120] if str(err) else type(err).__name__


def read_header(files: Iterable[Path]) -> dict[str, tuple[list[int], str, Path]]:
    """Every tensor's (shape, safetensors dtype, file) from the headers; no tensor data is read."""
    header: dict[str, tuple[list[int], str, Path]] = {}
    for path in files:
        with _open(path) as f:
            for key in f.keys():
                part = f.get_slice(key)
                header[key] = (list(part.get_shape()), part.get_dtype(), path)
    return header


def read_shapes(files: Iterable[Path]) -> dict[str, tuple[list[int], Path]]:
    """Every tensor's shape (and its file) from the safetensors headers; no tensor data is read."""
    return {k: (shape, path) for k, (shape, _, path) in read_header(files).items()}


def _expected(module: nn.Module) -> dict[str, list[int]]:
    return {k: list(t.shape) for k, t in _persistent(module).items()}


def _check(expected: dict[str, list[int]], found: dict[str, list[int]], source: Path) -> None:
    """One-line CheckpointError for missing, unexpected or mis-shaped tensors."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shaped = [k for k in expected if k in found and expected[k] != found[k]]
    if shaped:
        k = shaped[0]
        more = f" (and {len(shaped) - 1} more)" if len(shaped) > 1 else ""
        raise CheckpointError(
            f"{source}: {k}: checkpoint has {found[k]}, config expects {expected[k]}{more}; "
            "the config.json does not match these weights"
        )
    if missing:
        raise CheckpointError(
            f"{source}: missing tensors {_first(missing)}; the weights are incomplete or for another model"
        )
    if unexpected:
        raise CheckpointError(
            f"{source}: unexpected tensors {_first(unexpected)}; the weights are for another model"
        )


def _first(keys: list[str], n: int = 3) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")  # safetensors names of the dtypes a weight may be stored in


def load_into(
    module: nn.Module,
    files: list[Path],
    key_map: KeyMap = lambda k: k,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> None:
    """Check every tensor against `module` (built on meta), then assign them file by file;
    a weight with NaN or Inf values is a one-line CheckpointError naming it."""
    mapped = check_header(module, files, key_map)
    by_file: dict[Path, dict[str, str]] = {}
    for ours, (theirs, path) in mapped.items():
        by_file.setdefault(path, {})[theirs] = ours
    for path, keys in by_file.items():
        state = {}
        with _open(path) as f:
            for theirs, ours in keys.items():
                t = f.get_tensor(theirs)
                _check_finite(t, theirs, path)
                state[ours] = _aligned(t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype))
        module.load_state_dict(state, strict=False, assign=True)


def check_header(module: nn.Module, files: list[Path], key_map: KeyMap = lambda k: k) -> dict[str, tuple[str, Path]]:
    """Names, shapes and dtypes of the weight files against `module` (on meta), headers only.
    Returns our key -> (their key, file)."""
    header = read_header(files)
    mapped = {key_map(k): (k, s) for k, (s, _, _) in header.items()}
    mapped.pop(None, None)
    _check(_expected(module), {ours: s for ours, (_, s) in mapped.items()}, files[0].parent)
    expected = _persistent(module)
    for ours, (theirs, _) in mapped.items():
        stored = header[theirs][1]
        if expected[ours].is_floating_point() and stored not in FLOAT_DTYPES:
            raise CheckpointError(f"{header[theirs][2]}: {theirs} is stored as {stored}, not a float type "
                                  f"({', '.join(FLOAT_DTYPES)}); the weights are corrupt or not a model's")
    return {ours: (theirs, header[theirs][2]) for ours, (theirs, _) in mapped.items()}


def _check_finite(t: torch.Tensor, name: str, path: Path) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise CheckpointError(f"{path}: {name} has {bad} NaN/Inf values of {t.numel()}; the checkpoint is "
                              "broken (a diverged training run?): retrain or use an earlier checkpoint")


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """`t` at a 64-byte aligned address. safetensors hands out tensors at the file's offsets; BLAS
    kernels pick other code paths (and other rounding) for unaligned operands, so an unaligned
    weight gives a loaded model other logits than the same weights built in memory."""
    return t.clone() if t.device.type == "cpu" and t.data_ptr() % 64 else t


# ---- our checkpoints -----------------------------------------------------------------------
def load_checkpoint(
    path: Path, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> tuple[BlueLM, BlueLMConfig]:
    """Load a checkpoint folder into a `BlueLM` in eval mode: (model, config)."""
    path = Path(path)
    files = weight_files(path)
    config = BlueLMConfig.load(path / CONFIG)
    model = build_model(config, "meta")
    load_into(model, files, dtype=dtype, device=device)
    model.decoder.tie_weights()
    model.decoder.init_buffers(dtype, device)
    return model.eval(), config


def check_checkpoint(path: Path) -> tuple[BlueLMConfig, list[Path]]:
    """Validate a checkpoint folder cheaply: its config.json, and the weights' safetensors headers
    (names, shapes, dtypes) against that config; no tensor data is read. (config, weight files)."""
    path = Path(path)
    files = weight_files(path)
    config = BlueLMConfig.load(path / CONFIG)
    check_header(build_model(config, "meta"), files)
    return config, files


# ---- transformers checkpoints --------------------------------------------------------------
def _rules(pairs: list[tuple[str, str]]) -> KeyMap:
    compiled = [(re.compile(p), r) for p, r in pairs]

    def key_map(key: str) -> str | None:
        for pattern, repl in compiled:
            if pattern.match(key):
                return pattern.sub(repl, key) if repl else None
        return key  # left as is: reported as unexpected

    return key_map


_L = r"^model\.layers\.(\d+)\."
LLAMA_KEYS = _rules(
    [
        (r"^model\.embed_tokens\.", "embed."),
        (_L + r"self_attn\.(q|k|v|o)_proj\.", r"layers.\1.attn.\2."),
        (_L + r"self_attn\.(q|k)_norm\.", r"layers.\1.attn.\2_norm."),
        (_L + r"mlp\.(gate|up|down)_proj\.", r"layers.\1.mlp.\2."),
        (_L + r"input_layernorm\.", r"layers.\1.attn_norm."),
        (_L + r"post_attention_layernorm\.", r"layers.\1.mlp_norm."),
        (r"^model\.norm\.", "norm."),
        (r"^lm_head\.", "head."),
    ]
)

_V = r"^(?:vision_model\.)?"
SIGLIP_KEYS = _rules(
    [
        (_V + r"embeddings\.patch_embedding\.", "patch_embed."),
        (_V + r"embeddings\.position_embedding\.weight$", "pos_embed"),
        (_V + r"encoder\.layers\.(\d+)\.layer_norm(1|2)\.", r"layers.\1.norm\2."),
        (_V + r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.", r"layers.\1.attn.\2."),
        (_V + r"encoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"layers.\1.attn.out."),
        (_V + r"encoder\.layers\.(\d+)\.mlp\.", r"layers.\1.mlp."),
        (_V + r"post_layernorm\.", "post_norm."),
        (_V + r"head\.", ""),  # the attention-pooling head: not used
        (r"^(text_model\.|logit_)", ""),  # a full SigLIP checkpoint's text side
    ]
)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no config.json; a transformers checkpoint folder needs one") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None


def _rope(hf: dict) -> dict[str, Any]:
    """DecoderConfig's RoPE fields: theta, and Llama 3.1+'s frequency scaling (rope_type "llama3")."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    out: dict[str, Any] = {"rope_theta": float(rope.get("rope_theta", hf.get("rope_theta", 10_000.0)))}
    if kind == "llama3":
        try:
            out.update(rope_factor=float(rope["factor"]), rope_low_freq_factor=float(rope["low_freq_factor"]),
                       rope_high_freq_factor=float(rope["high_freq_factor"]),
                       rope_original_context=int(rope["original_max_position_embeddings"]))
        except KeyError as err:
            raise ConfigError(f"config.json: llama3 rope scaling without {err.args[0]!r}; re-download config.json"
                              ) from None
    elif kind != "default":
        raise ConfigError(f"rope type {kind!r} is not supported (default and llama3 RoPE are); "
                          "use a model without that scaling")
    return out


def hf_decoder_keys(tied: bool) -> KeyMap:
    """The key map of a transformers llama / qwen decoder (a tied model's stray lm_head ignored)."""
    return (lambda k: None if k.startswith("lm_head.") else LLAMA_KEYS(k)) if tied else LLAMA_KEYS


def decoder_config_from_hf(hf: dict, max_seq_len: int | None = None) -> DecoderConfig:
    """DecoderConfig from a transformers llama / qwen2 / qwen3 config.json dict."""
    try:
        return _decoder_config_from_hf(hf, max_seq_len)
    except KeyError as err:
        raise ConfigError(f"config.json: missing key {err.args[0]!r}; a {hf.get('model_type')} config needs it "
                          "(re-download config.json)") from None


def _decoder_config_from_hf(hf: dict, max_seq_len: int | None) -> DecoderConfig:
    kind = hf.get("model_type")
    if kind not in ("llama", "qwen2", "qwen3"):
        raise ConfigError(f"model_type {kind!r} is not supported; use a llama, qwen2 or qwen3 checkpoint")
    if hf.get("hidden_act", "silu") != "silu" or hf.get("mlp_bias"):
        raise ConfigError(f"{kind}: only a bias-free SiLU (SwiGLU) MLP is supported")
    if kind != "qwen2" and hf.get("attention_bias"):
        raise ConfigError(f"{kind}: attention_bias (bias on the output projection) is not supported")
    if hf.get("use_sliding_window"):
        raise ConfigError(f"{kind}: sliding-window attention is not supported; use a full-attention model")
    heads = hf["num_attention_heads"]
    return DecoderConfig(
        vocab_size=hf["vocab_size"], dim=hf["hidden_size"], layers=hf["num_hidden_layers"], heads=heads,
        kv_heads=hf.get("num_key_value_heads") or heads, ffn_dim=hf["intermediate_size"],
        **_rope(hf), norm_eps=hf.get("rms_norm_eps", 1e-6), qk_norm=kind == "qwen3",
        attn_bias=kind == "qwen2", tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        max_seq_len=max_seq_len or min(hf.get("max_position_embeddings", 4096), 4096),
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
    )


def load_hf_llama(
    path: Path, *, max_seq_len: int | None = None, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> tuple[Decoder, DecoderConfig]:
    """Load a transformers LLaMA-family folder (llama, qwen2, qwen3) into our `Decoder`."""
    path = Path(path)
    files = weight_files(path)
    cfg = decoder_config_from_hf(_read_json(path / CONFIG), max_seq_len)
    cfg.validate()
    with torch.device("meta"):
        decoder = Decoder(cfg)
    load_into(decoder, files, hf_decoder_keys(cfg.tie_embeddings), dtype=dtype, device=device)
    decoder.tie_weights()
    decoder.init_buffers(dtype, device)
    return decoder.eval(), cfg


def vision_config_from_hf(hf: dict) -> VisionConfig:
    """VisionConfig from a transformers siglip / siglip_vision_model config.json dict."""
    if hf.get("model_type") == "siglip":
        hf = hf.get("vision_config", {})
    elif hf.get("model_type") != "siglip_vision_model":
        raise ConfigError(f"model_type {hf.get('model_type')!r} is not a SigLIP vision model")
    if hf.get("hidden_act", "gelu_pytorch_tanh") not in ("gelu_pytorch_tanh", "gelu_tanh"):
        raise ConfigError(f"SigLIP hidden_act {hf['hidden_act']!r} is not supported (only tanh GELU)")
    return VisionConfig(
        image_size=hf.get("image_size", 224), patch_size=hf.get("patch_size", 16),
        width=hf.get("hidden_size", 768), layers=hf.get("num_hidden_layers", 12),
        heads=hf.get("num_attention_heads", 12), mlp_dim=hf.get("intermediate_size", 3072),
        channels=hf.get("num_channels", 3), norm_eps=hf.get("layer_norm_eps", 1e-6),
    )


def load_hf_siglip_vision(
    path: Path, *, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> tuple[VisionTower, VisionConfig]:
    """Load a transformers SigLIP (vision model or full) folder into our `VisionTower`."""
    path = Path(path)
    files = weight_files(path)
    cfg = vision_config_from_hf(_read_json(path / CONFIG))
    cfg.validate()
    with torch.device("meta"):
        tower = VisionTower(cfg)
    load_into(tower, files, SIGLIP_KEYS, dtype=dtype, device=device)
    return tower.eval(), cfg

