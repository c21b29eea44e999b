"""Model configuration: dataclasses for the vision tower, adapter, decoder and whole model.

A checkpoint's `config.json` is `BlueLMConfig.to_dict()`; every command builds the model from it
(never from code defaults), so shapes the papers do not give are only guesses in the presets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bluelm_edge import validate
from bluelm_edge.errors import ConfigError

# The BlueLM special tokens, in the order they take the first ids of every tokenizer we train.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",
    "<s>",
    "</s>",
    "[|Human|]:",
    "[|AI|]:",
    "[|BlueThink|]",
    "<think>",
    "</think>",
    "<im_start>",
    "<image>",
    "<im_end>",
)


NO_TOKEN = -1  # a special token the model's family does not have (e.g. images in a text model)


@dataclass
class SpecialTokenIds:
    """Ids of the special tokens in the model's vocabulary (BlueLM's by default; another family
    fills the ones it has and leaves the rest at NO_TOKEN; `more_eos`: further stop ids)."""

    pad: int = 0
    bos: int = 1
    eos: int = 2
    human: int = 3
    ai: int = 4
    blue_think: int = 5
    think_start: int = 6
    think_end: int = 7
    im_start: int = 8
    image: int = 9
    im_end: int = 10
    more_eos: list[int] = field(default_factory=list)

    @property
    def eos_ids(self) -> list[int]:
        return [self.eos, *self.more_eos]


@dataclass
class VisionConfig:
    """SigLIP-style ViT: conv patch embedding, learned positions, pre-LN blocks, post-LN."""

    image_size: int = 378  # one AnyRes tile, square
    patch_size: int = 14
    width: int = 1152
    layers: int = 27
    heads: int = 16
    mlp_dim: int = 4304
    channels: int = 3
    norm_eps: float = 1e-6

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    def validate(self) -> None:
        _require(self.image_size % self.patch_size == 0, "vision.image_size must be a multiple of patch_size")
        _require(self.width % self.heads == 0, f"vision.heads ({self.heads}) must divide width {self.width}")
        _positive(self, "image_size", "patch_size", "width", "layers", "heads", "mlp_dim", "channels")


@dataclass
class AdapterConfig:
    """2x2 space-to-depth merge of patch tokens, then Linear-GELU-Linear to the decoder width."""

    merge: int = 2  # tokens are merged in merge x merge blocks (odd grids are zero-padded)
    hidden_dim: int | None = None  # None: the decoder width
    kind: str = "mlp"  # "mlp": Linear-GELU-Linear (BlueLM); "linear": one bias-free Linear (Idefics3)

    def validate(self) -> None:
        _require(self.merge >= 1, "adapter.merge must be >= 1")
        _require(self.kind in ADAPTER_KINDS, f"adapter.kind {self.kind!r} must be one of: {', '.join(ADAPTER_KINDS)}")


ADAPTER_KINDS = ("mlp", "linear")


@dataclass
class DecoderConfig:
    """LLaMA-style decoder: RMSNorm, RoPE, grouped-query attention, SwiGLU, static KV cache."""

    vocab_size: int = 100_352
    dim: int = 2560
    layers: int = 28
    heads: int = 20
    kv_heads: int = 4
    ffn_dim: int = 6912
    rope_theta: float = 1_000_000.0
    norm_eps: float = 1e-6
    qk_norm: bool = False  # RMSNorm over each head's q and k before RoPE (Qwen3-style)
    attn_bias: bool = False  # bias on the q/k/v projections (Qwen2-style); never on the output projection
    embed_norm: bool = False  # LayerNorm after the token embedding, as in BlueLM-7B
    tie_embeddings: bool = False
    max_seq_len: int = 4096  # KV cache length (the context)
    head_dim: int | None = None  # None: dim // heads
    # Llama 3.1+'s RoPE frequency scaling (transformers' rope_type "llama3"); 0: plain RoPE
    rope_original_context: int = 0
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0

    def __post_init__(self) -> None:
        if self.head_dim is None and self.heads and self.dim % self.heads == 0:
            self.head_dim = self.dim // self.heads

    def validate(self) -> None:
        _positive(self, "vocab_size", "dim", "layers", "heads", "kv_heads", "ffn_dim", "max_seq_len")
        _require(
            self.head_dim is not None or self.dim % self.heads == 0,
            f"decoder.heads ({self.heads}) must divide dim ({self.dim}) unless head_dim is given",
        )
        _require(
            self.heads % self.kv_heads == 0,
            f"decoder.kv_heads ({self.kv_heads}) must divide heads ({self.heads})",
        )
        _require(self.head_dim is not None and self.head_dim % 2 == 0, "decoder.head_dim must be even (RoPE)")
        _require(self.rope_original_context >= 0 and self.rope_factor > 0
                 and self.rope_high_freq_factor > self.rope_low_freq_factor > 0,
                 "decoder.rope_*: Llama 3 RoPE scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0")

    def rope_scaling(self) -> tuple[float, float, float, int] | None:
        """(factor, low_freq_factor, high_freq_factor, original context) of Llama 3 scaling, or None."""
        if not self.rope_original_context:
            return None
        return self.rope_factor, self.rope_low_freq_factor, self.rope_high_freq_factor, self.rope_original_context


@dataclass
class BlueLMConfig:
    """The whole multimodal model plus what its tokenizer and image processor must agree on."""

    name: str = "bluelm-2.5-3b"
    vision: VisionConfig | None = field(default_factory=VisionConfig)  # None: a text-only model
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    tokens: SpecialTokenIds = field(default_factory=SpecialTokenIds)
    max_tiles: int = 9  # AnyRes tiles per image, not counting the global thumbnail
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    default_thinking_budget: int | None = None  # None: unlimited

    @property
    def image_tokens_per_tile(self) -> int:
        if self.vision is None:
            return 0
        merged = -(-self.vision.grid // self.adapter.merge)  # ceil: odd grids are padded
        return merged * merged

    def validate(self) -> BlueLMConfig:
        if self.vision is not None:
            self.vision.validate()
        self.adapter.validate()
        self.decoder.validate()
        _require(self.max_tiles >= 1, "max_tiles must be >= 1")
        ids = asdict(self.tokens)
        for value in ids.pop("more_eos"):
            _require(0 <= value < self.decoder.vocab_size, f"tokens.more_eos ({value}) is outside the vocab")
        for key, value in ids.items():
            if value == NO_TOKEN and key not in ("bos", "eos"):  # a token this model's family lacks
                continue
            _require(0 <= value < self.decoder.vocab_size, f"tokens.{key} ({value}) is outside the vocab")
        return self

    # ---- JSON round trip -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_mean"], d["image_std"] = list(self.image_mean), list(self.image_std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> BlueLMConfig:
        """Build and validate from the JSON form; unknown keys and wrong types are a ConfigError."""
        validate.check_dataclass(_TopLevel, d, where, ConfigError)
        cfg = cls(
            name=d.get("name", "custom"),
            vision=_optional(VisionConfig, d.get("vision", {}), where, "vision"),
            adapter=_build(AdapterConfig, d.get("adapter", {}), where, "adapter"),
            decoder=_build(DecoderConfig, d.get("decoder", {}), where, "decoder"),
            tokens=_build(SpecialTokenIds, d.get("tokens", {}), where, "tokens"),
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k not in _NESTED and k != "name"},
        )
        return cfg.validate()

    def save(self, path: Path) -> None:
        from bluelm_edge.io import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> BlueLMConfig:
        """Read a config.json: UTF-8 JSON naming its model and giving the essential shapes."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no config.json; a checkpoint folder needs one")
        d = validate.read_json(path, ConfigError)
        validate.check_config_file(d, path, ConfigError)
        try:
            return cls.from_dict(d, str(path))
        except ConfigError as err:  # a value check (validate()) names no file: add it
            if str(err).startswith(str(path)):
                raise
            raise ConfigError(f"{path}: {err}") from None


_NESTED = {"vision", "adapter", "decoder", "tokens"}


@dataclass
class _TopLevel:
    """The JSON form's top level, for key and type checks (sections are checked by their class)."""

    name: str
    vision: dict | None
    adapter: dict
    decoder: dict
    tokens: dict
    max_tiles: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    default_thinking_budget: int | None


def _optional(kind: type, d: Any, where: str, section: str) -> Any:
    return None if d is None else _build(kind, d, where, section)


def _build(kind: type, d: Any, where: str, section: str) -> Any:
    validate.check_dataclass(kind, d, where, ConfigError, section)
    return kind(**d)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config: {message}")


def _positive(obj: Any, *names: str) -> None:
    for n in names:
        _require(isinstance(getattr(obj, n), int) and getattr(obj, n) > 0, f"{n} must be a positive integer")


# ---- presets ---------------------------------------------------------------------------------
def bluelm_2_5_3b() -> BlueLMConfig:
    """BlueLM-2.5-3B-like: SigLIP2-so400m ViT (patch 14, 378 px, 1152 wide, 27 layers) + 2.5B decoder.

    Given by the reports: ~2.9B in total, ~400M ViT with 27 layers, 2x2 downsampling + 2-layer MLP,
    a 2.5B LLaMA-style decoder, up to 4x4 AnyRes tiles. Guessed here (not published): decoder width
    2560, 28 layers, 20 heads of 128 with 4 KV heads, SwiGLU 6912, a 100k vocabulary with an untied
    head, RoPE theta 1e6 — a shape in the Qwen2.5-3B / LLaMA-3.2-3B family that lands at 2.5B.
    """
    return BlueLMConfig(name="bluelm-2.5-3b", max_tiles=16).validate()


def tiny() -> BlueLMConfig:
    """The stand-in that trains on a 2-core CPU in minutes: same architecture, ~5M parameters.

    64-px tiles of 8-px patches (8x8 grid -> 16 image tokens after the 2x2 merge), a 3-layer ViT
    and a 4-layer decoder with GQA. The vocabulary is the trained tokenizer's (set at training).
    """
    return BlueLMConfig(
        name="bluelm-tiny",
        vision=VisionConfig(image_size=64, patch_size=8, width=128, layers=3, heads=4, mlp_dim=512),
        adapter=AdapterConfig(merge=2),
        decoder=DecoderConfig(
            vocab_size=1024, dim=256, layers=4, heads=8, kv_heads=2, ffn_dim=768,
            rope_theta=10_000.0, norm_eps=1e-5, max_seq_len=512, tie_embeddings=True,
        ),
        max_tiles=1,
        default_thinking_budget=None,
    ).validate()


def geometry() -> BlueLMConfig:
    """The 3B model's geometry at a size CI can export: 378-px tiles of 14-px patches (27 x 27,
    padded to 28 and merged 2x2 -> 196 tokens a tile), grouped-query attention 4:1, 4 AnyRes tiles,
    a 1024-token context; one ViT layer and two decoder layers of width 128. Tests use it to run
    real-size images and long prompts through ExecuTorch's runners."""
    return BlueLMConfig(
        name="bluelm-geometry",
        vision=VisionConfig(image_size=378, patch_size=14, width=64, layers=1, heads=2, mlp_dim=128),
        adapter=AdapterConfig(merge=2),
        decoder=DecoderConfig(
            vocab_size=1024, dim=128, layers=2, heads=8, kv_heads=2, ffn_dim=256,
            rope_theta=1_000_000.0, norm_eps=1e-6, max_seq_len=1024, tie_embeddings=False,
        ),
        max_tiles=4,
    ).validate()


PRESETS = {"bluelm-2.5-3b": bluelm_2_5_3b, "tiny": tiny, "geometry": geometry}


def preset(name: str) -> BlueLMConfig:
    """Return a fresh config for the named preset, or a ConfigError listing the valid names."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()
