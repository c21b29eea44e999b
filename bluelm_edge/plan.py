"""What a model or bundle will cost on each phone in the SoC catalogue, before it is deployed.

Arithmetic, not a measurement (`profile` measures on the phone): the weight bytes of each part at
the recipe's schemes (`qnn_backends/recipes/`: 4-bit weights + one 16-bit scale per group or
block, 8-bit per channel, ...), the bytes a decode step must read (decoder layers + output head +
the KV cache at the context; one embedding row is negligible), and the decode ceiling a chip's
memory bandwidth allows (`qnn_backends/socs.json`): bandwidth / bytes per step. Decode on a phone
is bandwidth-bound, so no program decodes faster than the ceiling; real runs reach a fraction of
it (our host decode: 0.69-0.95 of its measured copy bandwidth, `benchmarks/RESULTS.md`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bluelm_edge.errors import UsageError

SCALE_BYTES = 2  # one 16-bit scale per group / block (per-channel scales are negligible)
WEIGHT_BITS = {"fp32": 32, "fp16": 16, "16bit": 16, "8w": 8, "8da8w": 8, "16a8w": 8, "a16w8": 8, "8a8w": 8,
               "8bit": 8, "8da4w": 4, "16a4w": 4, "16a4w_block": 4, "a16w4": 4}
PART_SUBMODEL = {"vision": "vision", "adapter": "adapter", "decoder_embedding": "embeddings",
                 "decoder_layers": "decoder_linears", "output_head": "output_head"}


@dataclass(frozen=True)
class Plan:
    """A model at a recipe and context: bytes by part, per decode step, and the KV cache."""

    recipe: str
    backend: str
    context: int
    weight_bytes: dict[str, int]
    kv_cache_bytes: int
    decode_step_bytes: int

    @property
    def program_bytes(self) -> int:
        return sum(self.weight_bytes.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "program_bytes": self.program_bytes}


def fp32_recipe() -> Any:
    """The unquantized XNNPACK export (`--recipe fp32`) as a recipe: every part in fp32."""
    from bluelm_edge.quant.recipes import Recipe

    parts = [*PART_SUBMODEL.values(), "kv_cache"]
    return Recipe("fp32", "xnnpack", "XNNPACK without quantization", {p: {"scheme": "fp32"} for p in parts})


def bytes_per_weight(sub: dict[str, Any]) -> float:
    """Stored bytes of one weight under a recipe sub-model's scheme."""
    scheme = sub["scheme"]
    if scheme not in WEIGHT_BITS:
        raise UsageError(f"plan: scheme {scheme!r} has no size rule; known: {', '.join(sorted(WEIGHT_BITS))}")
    group = sub.get("group_size") or sub.get("block_size")
    per_group = sub.get("granularity") in ("per_group", "per_block") and group
    return WEIGHT_BITS[scheme] / 8 + (SCALE_BYTES / group if per_group else 0.0)


def make_plan(params: dict[str, int], config: Any, recipe: Any, context: int) -> Plan:
    """The plan of a model (parameters by part as `info` counts them, its config) at a recipe."""
    d = config.decoder
    if not 0 < context <= d.max_seq_len:
        raise UsageError(f"plan: --context {context} must be between 1 and the model's {d.max_seq_len}")
    tied = params["output_head"] == 0
    # a tied fp32 table serves embedding and head at once; quantized, the head is its own copy
    shared = tied and all(recipe.part(s)["scheme"] == "fp32" for s in ("embeddings", "output_head"))
    counts = {**params, "output_head": params["decoder_embedding"]} if tied and not shared else params
    weights = {p: int(counts[p] * bytes_per_weight(recipe.part(sub))) for p, sub in PART_SUBMODEL.items()}
    step_head = weights["decoder_embedding"] if shared else weights["output_head"]  # a step reads the head whole
    kv_bytes = bytes_per_weight(recipe.part("kv_cache"))
    kv = int(2 * d.layers * d.kv_heads * int(d.head_dim) * context * kv_bytes)
    step = weights["decoder_layers"] + step_head + kv
    return Plan(recipe.name, recipe.backend, context, weights, kv, step)


def per_soc(plan: Plan, socs: list[Any]) -> list[dict[str, Any]]:
    """Each chip: whether the plan's backend runs there, and its decode ceiling in tokens/s."""
    rows = []
    for soc in socs:
        runs = plan.backend in soc.backends
        bw = soc.memory_bandwidth_gbs
        ceiling = round(bw * 1e9 / plan.decode_step_bytes, 1) if runs and bw else None
        rows.append({"soc": soc.id, "name": soc.name, "backend_runs": runs, "memory_bandwidth_gbs": bw,
                     "decode_ceiling_tok_s": ceiling})
    return rows
