"""The runtime contract: the one place that names what a `.pte`, a bundle and the app agree on.

Owns the method names (ExecuTorch's multimodal-runner convention plus `forward` for
`TextLLMRunner`), the metadata constant methods baked into the `.pte`, the bundle file names,
the manifest schema version and its `app` and `runtime` sections (which ExecuTorch runtime a
bundle needs, and the one comparison the app repeats in Java), and the results-JSON schema.
The bundle writer, the host runner, the device layer and the Android app all read these names
from here (Java mirrors them in `android_demo/core`); change them here and bump the versions.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from bluelm_edge.model.config import SPECIAL_TOKENS, BlueLMConfig
from bluelm_edge.text.thinking import BUDGET_MESSAGE, WAIT_MESSAGE  # one source: the controller

# ---- methods --------------------------------------------------------------------------------
VISION_ENCODER = "vision_encoder"  # pixels [T, 3, S, S] float32 normalised -> [1, T*N, D]
TOKEN_EMBEDDING = "token_embedding"  # ids [1, L] int64 -> [1, L, D]
TEXT_DECODER = "text_decoder"  # embeds [1, L, D], positions [L] int64 -> logits [1, V]
FORWARD = "forward"  # ids [1, L], positions [L] -> logits [1, V] (TextLLMRunner)
METHODS = (VISION_ENCODER, TOKEN_EMBEDDING, TEXT_DECODER, FORWARD)

DEFAULT_PREFILL_CHUNK = 128  # tokens per text_decoder call (dynamic L in 1..chunk)
NPU_PREFILL_CHUNK = 128  # QNN / NeuroPilot: tokens of the static `prefill` graph (upstream's ar_len)
DEFAULT_VISION_BATCH = 1  # tiles per vision_encoder call (fixed; more tiles run in chunks)

# ---- bundle ---------------------------------------------------------------------------------
SCHEMA_VERSION = 1
RESULTS_SCHEMA_VERSION = 1
MODEL_PTE = "model.pte"
PROGRAM_PT2 = "program.pt2"  # lowering-ready quantized programs (no vendor SDK)
COVERAGE_JSON = "coverage.json"
TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG_JSON = "tokenizer_config.json"  # BOS/EOS for ExecuTorch's C++ HF tokenizer
CONFIG_JSON = "config.json"
MANIFEST_JSON = "manifest.json"
BACKENDS = ("xnnpack", "qnn", "mediatek")

# Manifest `app.tokens` keys -> index into config.SPECIAL_TOKENS (the tokenizer's first ids).
TOKEN_KEYS = {
    "bos": 1, "eos": 2, "human": 3, "ai": 4, "blue_think": 5, "think_start": 6, "think_end": 7,
    "im_start": 8, "image": 9, "im_end": 10,
}


METADATA_KEYS = (  # the constant methods of `metadata` (what `bundle verify` asks a program for)
    "get_max_seq_len", "get_max_context_len", "get_vocab_size", "get_n_layers", "get_bos_id", "get_eos_ids",
    "use_kv_cache", "enable_dynamic_shape", "get_think_start_id", "get_think_end_id", "get_image_token_id",
    "get_tile_size", "get_tokens_per_tile", "get_vision_batch", "get_max_prefill", "get_default_thinking_budget",
)


def metadata(cfg: BlueLMConfig, prefill_chunk: int, vision_batch: int) -> dict[str, Any]:
    """The constant methods every `.pte` carries: ExecuTorch's runner keys, then ours."""
    t, d = cfg.tokens, cfg.decoder
    budget = cfg.default_thinking_budget
    return {
        "get_max_seq_len": d.max_seq_len,
        "get_max_context_len": d.max_seq_len,
        "get_vocab_size": d.vocab_size,
        "get_n_layers": d.layers,
        "get_bos_id": t.bos,
        "get_eos_ids": t.eos_ids,
        "use_kv_cache": True,
        "enable_dynamic_shape": prefill_chunk > 1,  # False: runners prefill one token a call
        "get_think_start_id": t.think_start,
        "get_think_end_id": t.think_end,
        "get_image_token_id": t.image,
        "get_tile_size": cfg.vision.image_size if cfg.vision else 0,  # 0: a text-only model
        "get_tokens_per_tile": cfg.image_tokens_per_tile,
        "get_vision_batch": vision_batch,
        "get_max_prefill": prefill_chunk,
        "get_default_thinking_budget": -1 if budget is None else budget,  # -1: unlimited
    }


# ---- the static NPU program (QNN / MediaTek): `graphs/static.py`, driven by `export/npu_host.py` ----
PREFILL = "prefill"  # one static step of `prefill_chunk` tokens (see NPU_IO)
DECODE = "decode"  # the same step at 1 token, same weights
NPU_METHODS = (VISION_ENCODER, TOKEN_EMBEDDING, PREFILL, DECODE)
DECODER_STEPS = (PREFILL, DECODE)
NPU_GRAPH_CONTRACT = "bluelm-static-kv/2"  # bump when the I/O below changes; `lower` refuses others
NPU_RUNNER = "static-kv"  # manifest `runner`: chunked prefill + decode, KV cache updated by the runner
NPU_GRAPH_CONTRACT_VERSION = 2  # the same as an int constant method (`get_graph_contract_version`)
# Flattened I/O order of `prefill` / `decode` (C = chunk or 1, S = cache length, n = layers). Each
# tensor is fp32 or, where the metadata gives it a bit width below 32, unsigned integers at that
# width (QNN: 8-bit KV cache, 16-bit the rest; `bluelm_edge/export/quant_io.py`): real = (q - zero_point) * scale.
NPU_IO = {
    "inputs": ["embeds [1, C, D]", "rope_cos [C, hd]", "rope_sin [C, hd]", "mask [1, C, S + C]",
               "k_cache_0..n-1 [1, KV, S, hd]", "v_cache_0..n-1 [1, KV, S, hd]"],
    "outputs": ["logits [1, C, V]", "k_new_0..n-1 [1, KV, C, hd]", "v_new_0..n-1 [1, KV, C, hd]"],
}
# I/O tensors with one encoding each: get_<role>_bit_width (32: fp32), get_<role>_scale, get_<role>_zero_point
# (token_embedding_out / vision_encoder_out: those methods' outputs, which the runner dequantizes
# and, joined into the prompt's embeddings, quantizes again at `embeds`' encoding)
NPU_IO_ROLES = ("embeds", "rope_cos", "rope_sin", "mask", "logits", "token_embedding_out", "vision_encoder_out")
NPU_METADATA_KEYS = ("get_prefill_chunk", "get_cache_len", "get_head_dim", "get_kv_heads", "get_rope_theta",
                     "get_mask_value", "get_pad_id", "get_graph_contract_version",
                     # the caches: one bit width (upstream's key), then per cache k_0..k_{n-1}, v_0..v_{n-1}
                     "get_kv_io_bit_width", "get_kv_scales", "get_kv_zero_points",
                     *(f"get_{role}_{part}" for role in NPU_IO_ROLES for part in ("bit_width", "scale", "zero_point")))
# Llama 3 RoPE scaling (`DecoderConfig.rope_scaling`), written when the model has it; absent: plain RoPE
NPU_ROPE_SCALING_KEYS = ("get_rope_factor", "get_rope_low_freq_factor", "get_rope_high_freq_factor",
                         "get_rope_original_context")


def npu_metadata(cfg: BlueLMConfig, prefill_chunk: int, vision_batch: int, io: dict[str, Any]) -> dict[str, Any]:
    """`metadata` for the static NPU program plus what its runner needs to build the I/O; `io`: the
    constant methods declaring the I/O encodings (`export.quant_io.metadata`; all fp32:
    `quant_io.fp32_metadata`)."""
    from bluelm_edge.model.decoder import MASK_VALUE

    d = cfg.decoder
    out = metadata(cfg, prefill_chunk, vision_batch)
    out["enable_dynamic_shape"] = False
    out.update({"get_prefill_chunk": prefill_chunk, "get_cache_len": d.max_seq_len, "get_head_dim": int(d.head_dim),
                "get_kv_heads": d.kv_heads, "get_rope_theta": float(d.rope_theta), "get_mask_value": MASK_VALUE,
                "get_pad_id": cfg.tokens.pad, "get_graph_contract_version": NPU_GRAPH_CONTRACT_VERSION})
    out.update(io)
    scaling = d.rope_scaling()
    if scaling is not None:
        values = (float(scaling[0]), float(scaling[1]), float(scaling[2]), scaling[3])
        out.update(zip(NPU_ROPE_SCALING_KEYS, values, strict=True))
    return out


def npu_rope_scaling(meta: dict[str, Any]) -> tuple[float, float, float, int] | None:
    """The Llama 3 RoPE scaling an NPU program's metadata declares, or None."""
    if NPU_ROPE_SCALING_KEYS[3] not in meta:
        return None
    f, low, high, ctx = (meta[k] for k in NPU_ROPE_SCALING_KEYS)
    return float(f), float(low), float(high), int(ctx)


def npu_manifest(prefill_chunk: int, shards: int = 1, graph_io: str = "float") -> dict[str, Any]:
    """The manifest's extra keys of a QNN / MediaTek bundle: which runner drives its program, into
    how many NPU contexts (QNN) / chunks (MediaTek) the lowering cuts its decoder, and which of its
    I/O crosses as integers (`quant_io.GRAPH_IO`)."""
    return {"runner": NPU_RUNNER, "graph_contract": NPU_GRAPH_CONTRACT, "methods": list(NPU_METHODS),
            "prefill_chunk": prefill_chunk, "shards": shards, "graph_io": graph_io}


def app_section(cfg: BlueLMConfig, vision_batch: int, chat: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's `app` object: what the Android app needs without opening the `.pte`.

    `chat` is the model family's chat format as data (`ChatFormat.manifest()`: family, its Jinja
    `chat_template` or None for BlueLM's, template tokens, `thinking` tags and messages, token
    strings); without it, BlueLM's. The app reads tokens, template and budget message from here."""
    ids = asdict(cfg.tokens)
    thinking = (chat or {}).get("thinking") or {}
    return {
        "max_context": cfg.decoder.max_seq_len,
        "vocab_size": cfg.decoder.vocab_size,
        "eos_ids": cfg.tokens.eos_ids,
        "tokens": (chat or {}).get("tokens") or {key: SPECIAL_TOKENS[index] for key, index in TOKEN_KEYS.items()},
        "token_ids": {key: ids[key] for key in TOKEN_KEYS},
        "thinking": {
            "default_budget": cfg.default_thinking_budget,
            "budget_message": thinking.get("budget_message", BUDGET_MESSAGE),
            "budget_suffix": thinking.get("budget_suffix", ""),
            "wait_message": thinking.get("wait_message", WAIT_MESSAGE),
        },
        "chat": chat or {"family": "bluelm", "chat_template": None},
        "image": {
            "tile_size": cfg.vision.image_size if cfg.vision else 0,
            "max_tiles": cfg.max_tiles,
            "tokens_per_tile": cfg.image_tokens_per_tile,
            "thumbnail": True,
            "mean": list(cfg.image_mean),
            "std": list(cfg.image_std),
            "vision_batch": vision_batch,
        },
    }


def bundle_id(model_id: str, backend: str, recipe: str, digest: str) -> str:
    """`<model>-<backend>-<recipe>-<8 hex>`: the folder name the app and `deploy` use."""
    prefix = f"{model_id}-{backend}-" if not recipe.startswith(f"{backend}-") else f"{model_id}-"
    return f"{prefix}{recipe}-{digest[:8]}"


# ---- which runner drives a bundle's program: the app runs ExecuTorch's LlmModule ----------------
# Manifest `runner`: absent for LlmModule programs (XNNPACK), NPU_RUNNER for the static NPU program.
# Java mirror: android_demo/core RuntimeVersion.runnerRefusal, on tests/vectors/runtime_version.json.
def runner_refusal(bundle: str, runner: str | None, graph_contract: str | None,
                   graph_io: str | None = None) -> str | None:
    """None when the demo app can drive the bundle's program, else the one line it shows. The app
    drives LlmModule programs (no runner) and static-kv programs of this graph contract whose I/O
    ExecuTorch's Java Module can pass (`graph_io` kv or float: uint8 and fp32; it has no uint16)."""
    if runner is None:
        return None
    if runner != NPU_RUNNER:
        return f"bundle {bundle} names runner '{runner}', which this app does not know; re-export it"
    if graph_contract != NPU_GRAPH_CONTRACT:
        return (f"bundle {bundle} is a static-kv program of graph contract {graph_contract or '(none)'}; this app "
                f"drives {NPU_GRAPH_CONTRACT}: re-export it")
    if graph_io == "full":
        return (f"bundle {bundle} passes 16-bit integers across the NPU boundary (--graph-io full), which "
                "ExecuTorch's Java API cannot: re-export with --graph-io kv for the app, or deploy with "
                "--target runner for a native runner")
    if graph_io not in ("kv", "float"):
        return f"bundle {bundle} does not say which graph I/O its program takes (graph_io); re-export it"
    return None


# ---- runtime version: the exporter's ExecuTorch wheel vs the runtime the app carries ----------
# The manifest's `runtime` section: {"executorch": <wheel that wrote the program>, "min_runtime":
# <oldest runtime that may load it>, "qnn_sdk": <QNN SDK that compiled it, qnn bundles only>}.
# A program is refused by a runtime older than `min_runtime` (an older runtime cannot parse node
# types a newer exporter writes, e.g. XNNSin in 1.5.1 vs a 1.0.1 runtime). Java mirror:
# android_demo/core RuntimeVersion; both are checked on tests/vectors/runtime_version.json.
VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[.+\-a-zA-Z].*)?$")


def release(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of `1.5.1`, `1.5`, `1.5.1+cpu`, `1.6.0rc1`, `1.6.0.dev20260801`.

    A pre-release or dev build of X counts as X (it may write what X writes)."""
    m = VERSION_RE.match(version.strip())
    if m is None:
        raise ValueError(f"{version!r} is not a version (MAJOR.MINOR[.PATCH])")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def is_version(value: Any) -> bool:
    """Whether `value` is a version string `release` reads."""
    return isinstance(value, str) and VERSION_RE.match(value.strip()) is not None


def runtime_section(exporter: str, backend: str, qnn_sdk: str | None = None) -> dict[str, Any]:
    """The manifest's `runtime` object for a program written by executorch `exporter`."""
    section: dict[str, Any] = {"executorch": exporter, "min_runtime": ".".join(map(str, release(exporter)))}
    if backend == "qnn":
        section["qnn_sdk"] = qnn_sdk
    return section


def runtime_refusal(bundle: str, runtime: dict[str, Any] | None, carried: str) -> str | None:
    """None when a runtime `carried` may load the bundle, else the one line the app shows."""
    needed = (runtime or {}).get("min_runtime")
    if not isinstance(needed, str):
        return (f"bundle {bundle} does not record the ExecuTorch runtime it needs (exported before "
                "bluelm-edge recorded it); re-export it")
    try:
        too_new = release(needed) > release(carried)
    except ValueError:
        return f"bundle {bundle} records ExecuTorch runtime '{needed}', which is not a version; re-export it"
    if not too_new:
        return None
    return (f"bundle {bundle} needs ExecuTorch runtime {needed} or newer (exported with executorch "
            f"{runtime.get('executorch') or needed}); this app carries {carried}: rebuild the app with "
            f"executorch {needed} in android_demo/runtime.json, or re-export with executorch=={carried}")
