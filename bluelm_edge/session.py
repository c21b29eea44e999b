"""A chat session: conversation history -> prompt ids + image tiles -> the one generation loop.

Used by `chat` and `run` (eager model or ExecuTorch bundle alike, through `DecoderProtocol`) and
by evaluation. Streams decoded text as it is generated, split into thinking and answer, with the
controller's forced text flagged. Images go through the family's `image_reader` (default BlueLM's
AnyRes), which gives the tiles and what the chat format needs to write each image's prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bluelm_edge.families.base import ImageReader, PreparedImage, anyres_reader
from bluelm_edge.generate import EAGER_HINT, DecoderProtocol, GenerationStats, Sampling, generate
from bluelm_edge.model.config import BlueLMConfig
from bluelm_edge.text.chat import Message
from bluelm_edge.text.formats import BlueLMFormat, ChatFormat, can_think
from bluelm_edge.text.thinking import ThinkingBudget
from bluelm_edge.text.tokenizer import Tokenizer

# on_text(kind, text): kind is "think", "answer" or "forced"
TextCallback = Callable[[str, str], None]


class EagerDecoder:
    """`DecoderProtocol` over the eager `BlueLM` module (or a graph form of it: same methods)."""

    def __init__(self, model: Any, max_prefill: int = 128) -> None:
        self.model = model.eval()
        self.max_context = model.cfg.decoder.max_seq_len
        self.max_prefill = max_prefill
        self.context_hint = EAGER_HINT  # what to do when a prompt does not fit

    def set_max_context(self, max_context: int) -> None:
        """Resize the KV cache (and RoPE tables) to `max_context` positions."""
        from bluelm_edge.graphs.methods import set_max_context

        set_max_context(self.model, max_context)
        self.max_context = max_context

    def vision_encoder(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.vision_encoder(pixels)

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.token_embedding(ids)

    def text_decoder(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.text_decoder(embeds, positions)

    def reset(self) -> None:
        self.model.reset_cache()


@dataclass
class Reply:
    thinking: str
    answer: str
    tokens: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)


def make_controller(
    tokenizer: Tokenizer, *, think: bool, budget: int | None, min_thinking: int = 0,
    chat: ChatFormat | None = None,
) -> ThinkingBudget:
    """The budget controller for a turn with the family's tags and messages (`chat`, default
    BlueLM's): `think=False`, or a family that cannot think, is budget 0 (non-thinking mode)."""
    chat = chat or BlueLMFormat(tokenizer)
    s, spec = chat.tokens, chat.thinking
    think = think and can_think(chat)
    return ThinkingBudget(
        think_start=s.think_start,
        think_end=s.think_end,
        eos=s.eos_ids,
        budget=budget if think else 0,
        budget_message=tokenizer.encode(spec.budget_message) if think else (),
        budget_suffix=tokenizer.encode(spec.budget_suffix) if think else (),
        min_thinking=min_thinking if think else 0,
        wait_message=tokenizer.encode(spec.wait_message) if think else (),
    )


class _Streamer:
    """Turns emitted ids into text pieces, tracking whether we are inside the thinking block."""

    def __init__(self, tokenizer: Tokenizer, on_text: TextCallback | None, special: Any = None) -> None:
        self.tok, self.on_text = tokenizer, on_text
        self.special = special or tokenizer.special
        self.parts: dict[str, list[int]] = {"think": [], "answer": []}
        self.kind = "answer"
        self.sent: dict[str, str] = {"think": "", "answer": ""}

    def __call__(self, token: int, forced: bool) -> None:
        s = self.special
        if token == s.think_start:
            self.kind = "think"
            return
        if token == s.think_end:
            self.kind = "answer"
            return
        if token in s.eos_ids:
            return
        self.parts[self.kind].append(token)
        text = self.tok.decode(self.parts[self.kind], skip_special=True)
        new = text[len(self.sent[self.kind]) :]
        if new and not new.endswith("\ufffd"):  # wait for the rest of a UTF-8 character
            self.sent[self.kind] = text
            if self.on_text:
                self.on_text("forced" if forced else self.kind, new)

    def text(self, kind: str) -> str:
        return self.tok.decode(self.parts[kind], skip_special=True)


class ChatSession:
    """Multi-turn chat over any `DecoderProtocol`; each turn re-renders the whole conversation."""

    def __init__(self, decoder: DecoderProtocol, tokenizer: Tokenizer, config: BlueLMConfig,
                 chat: ChatFormat | None = None, images: ImageReader | None = None) -> None:
        self.decoder, self.tokenizer, self.config = decoder, tokenizer, config
        self.chat = chat or BlueLMFormat(tokenizer)  # the family's format (default: ours)
        self.read_image = images or anyres_reader(config)  # the family's preprocessing (default: ours)
        self.history: list[Message] = []
        self.images: list[PreparedImage] = []  # every image of the conversation so far, in order

    def ask(
        self,
        text: str,
        images: Sequence[Any] = (),
        *,
        think: bool = True,
        budget: int | None = None,
        min_thinking: int = 0,
        sampling: Sampling | None = None,
        on_text: TextCallback | None = None,
    ) -> Reply:
        prepared = [*self.images, *(self.read_image(img) for img in images)]
        user = Message("user", text, images=list(images))
        think = think and can_think(self.chat)
        ids = self.chat.prompt_ids([*self.history, user], think=think, image_tokens=[p.n_tokens for p in prepared],
                                   image_prompts=[p.prompt for p in prepared])
        special = self.chat.tokens
        streamer = _Streamer(self.tokenizer, on_text, special)
        result = generate(
            self.decoder, ids, stop_ids=special.eos_ids,
            images=[p.pixels for p in prepared], image_token=special.image,
            sampling=sampling, controller=make_controller(self.tokenizer, think=think, budget=budget,
                                                          min_thinking=min_thinking, chat=self.chat),
            on_token=streamer,
        )
        reply = Reply(streamer.text("think"), streamer.text("answer").strip(), result.tokens,
                      result.forced, result.stats)
        self.history += [user, Message("assistant", reply.answer)]
        self.images = prepared
        return reply

    def reset(self) -> None:
        self.history, self.images = [], []
