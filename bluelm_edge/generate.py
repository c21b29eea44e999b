"""The one generation loop, over the three-method decoder protocol of the runtime contract.

The eager `BlueLM` and the ExecuTorch program (`bluelm_edge.export.host`) both implement
`DecoderProtocol`; this loop builds the prompt embeddings (text + images), prefills in chunks,
samples (greedy, temperature, top-k, top-p; seeded), runs the thinking-budget controller between
the sampler and the decoder (forced tokens are fed by prefill and streamed flagged), stops on stop
tokens, and measures time to first token and prefill/decode speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from bluelm_edge.errors import ContextError
from bluelm_edge.text.thinking import Emitted, ThinkingBudget


class DecoderProtocol(Protocol):
    """What a model must offer to be generated from (the runtime contract's methods)."""

    max_context: int  # KV-cache length
    max_prefill: int  # longest chunk text_decoder accepts

    def vision_encoder(self, pixels: torch.Tensor) -> torch.Tensor: ...  # [T,3,S,S] -> [1,N,D]

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor: ...  # [1,L] -> [1,L,D]

    def text_decoder(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor: ...  # -> [1,V]

    def reset(self) -> None: ...


@dataclass
class Sampling:
    """Sampling settings; temperature 0 is greedy."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    max_new_tokens: int = 256


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    generated_tokens: int = 0  # emitted tokens, forced included
    thinking_tokens: int = 0
    ttft_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    stop_reason: str = ""  # "stop_token" | "max_new_tokens" | "context_full"

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tok_s(self) -> float:
        steps = self.generated_tokens - 1
        return steps / self.decode_s if self.decode_s > 0 and steps > 0 else 0.0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d.update(prefill_tok_s=self.prefill_tok_s, decode_tok_s=self.decode_tok_s)
        return d


@dataclass
class GenerationResult:
    tokens: list[int] = field(default_factory=list)  # emitted ids, forced included
    forced: list[bool] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)


TokenCallback = Callable[[int, bool], None]  # (token id, forced)


# ---- sampling ---------------------------------------------------------------------------------
def sample(logits: torch.Tensor, cfg: Sampling, gen: torch.Generator | None) -> int:
    """Pick one token id from logits [V]; greedy when temperature is 0."""
    logits = logits.float()
    if cfg.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / cfg.temperature
    if cfg.top_k > 0:
        kth = torch.topk(logits, min(cfg.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if cfg.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < cfg.top_p  # always keeps the first
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p * keep)
    return int(torch.multinomial(probs / probs.sum(), 1, generator=gen))


# ---- prompt embeddings -------------------------------------------------------------------------
def prompt_embeddings(
    decoder: DecoderProtocol, ids: Sequence[int], images: Sequence[torch.Tensor], image_token: int
) -> torch.Tensor:
    """token_embedding(ids) with each `<image>` placeholder row replaced, in order, by image rows."""
    ids_t = torch.tensor([list(ids)], dtype=torch.long)
    embeds = decoder.token_embedding(ids_t)
    slots = (ids_t[0] == image_token).nonzero().flatten()
    if not images:
        if len(slots):
            raise ValueError(f"prompt has {len(slots)} <image> tokens but no image was given")
        return embeds
    rows = torch.cat([decoder.vision_encoder(px)[0] for px in images], dim=0)
    if rows.shape[0] != len(slots):
        raise ValueError(f"images give {rows.shape[0]} embeddings but the prompt has {len(slots)} <image> tokens")
    embeds = embeds.clone()
    embeds[0, slots] = rows.to(embeds.dtype)
    return embeds


def _prefill(decoder: DecoderProtocol, embeds: torch.Tensor, start: int) -> torch.Tensor:
    """Feed embeds [1,L,D] at positions start.. in chunks; return the last logits [V]."""
    logits = None
    for lo in range(0, embeds.shape[1], decoder.max_prefill):
        chunk = embeds[:, lo : lo + decoder.max_prefill]
        positions = torch.arange(start + lo, start + lo + chunk.shape[1], dtype=torch.long)
        logits = decoder.text_decoder(chunk, positions)
    assert logits is not None, "empty prefill"
    return logits.reshape(-1)


EXPORT_HINT = "shorten the prompt or export with a larger --max-context"
EAGER_HINT = "shorten the prompt or pass a larger --max-context"


def check_fits(prompt_tokens: int, max_context: int, hint: str = EXPORT_HINT) -> None:
    """One clear line when a prompt leaves no room to generate in the context."""
    if prompt_tokens >= max_context:
        raise ContextError(f"prompt is {prompt_tokens} tokens but the context holds {max_context} (one more is "
                           f"needed to answer); {hint}")


def context_warning(requested: int | None, trained: int, name: str) -> str | None:
    """The warning for a --max-context beyond the positions the model was trained on, else None."""
    if requested is None or requested <= trained:
        return None
    return (f"--max-context {requested} is beyond the {trained} positions {name} was trained for; "
            f"text past position {trained} is likely garbage (use --max-context {trained} or less)")


# ---- the loop ----------------------------------------------------------------------------------
@torch.no_grad()
def generate(
    decoder: DecoderProtocol,
    prompt_ids: Sequence[int],
    *,
    stop_ids: Sequence[int],
    images: Sequence[torch.Tensor] = (),
    image_token: int = -1,
    sampling: Sampling | None = None,
    controller: ThinkingBudget | None = None,
    on_token: TokenCallback | None = None,
) -> GenerationResult:
    """Generate after `prompt_ids` until a stop token, max_new_tokens or a full context."""
    cfg = sampling or Sampling()
    gen = torch.Generator().manual_seed(cfg.seed) if cfg.temperature > 0 else None
    result = GenerationResult()
    stats = result.stats
    t0 = time.perf_counter()
    # before any runtime call; the decoder says how to get more context (re-export, or --max-context)
    check_fits(len(prompt_ids), decoder.max_context, getattr(decoder, "context_hint", EXPORT_HINT))
    decoder.reset()
    embeds = prompt_embeddings(decoder, prompt_ids, images, image_token)
    stats.prompt_tokens = pos = embeds.shape[1]
    logits = _prefill(decoder, embeds, 0)
    stats.prefill_s = time.perf_counter() - t0
    stop = set(stop_ids)
    while True:
        emitted = _next_emitted(logits, cfg, gen, controller)
        if not stats.ttft_s:
            stats.ttft_s = time.perf_counter() - t0
        for e in emitted:
            result.tokens.append(e.token)
            result.forced.append(e.forced)
            if on_token:
                on_token(e.token, e.forced)
        stats.generated_tokens = len(result.tokens)
        reason = _stop_reason(result.tokens, stop, cfg, pos + len(emitted), decoder.max_context)
        if reason:
            stats.stop_reason = reason
            break
        ids = torch.tensor([[e.token for e in emitted]], dtype=torch.long)
        logits = _prefill(decoder, decoder.token_embedding(ids), pos)
        pos += len(emitted)
    stats.decode_s = time.perf_counter() - t0 - stats.ttft_s
    stats.thinking_tokens = controller.thinking_tokens if controller else 0
    return result


def _next_emitted(
    logits: torch.Tensor, cfg: Sampling, gen: torch.Generator | None, controller: ThinkingBudget | None
) -> list[Emitted[int]]:
    """Sample until the controller emits something (banned tokens are masked, then dropped)."""
    if controller is None:
        return [Emitted(sample(logits, cfg, gen))]
    logits = logits.clone()
    banned = [t for t in controller.banned() if 0 <= t < logits.numel()]
    logits[banned] = float("-inf")
    while True:
        tok = sample(logits, cfg, gen)
        emitted = controller.step(tok)
        if emitted:
            return emitted
        logits[tok] = float("-inf")


def _stop_reason(tokens: list[int], stop: set[int], cfg: Sampling, pos: int, max_context: int) -> str:
    if tokens and tokens[-1] in stop:
        return "stop_token"
    if len(tokens) >= cfg.max_new_tokens:
        return "max_new_tokens"
    if pos >= max_context:
        return "context_full"
    return ""
