"""Chat formats: how a model family turns a conversation into prompt ids, and its thinking tokens.

A `ChatFormat` is what the chat session, the budget controller and the bundle manifest ask about
a model's conversation format, so none of them knows a model name:

- `prompt_ids(messages, think=..., image_tokens=..., image_prompts=...)`: the prompt for the next
  assistant turn (each image as its family's `PreparedImage` gave it: a count of `<image>` tokens
  for BlueLM's format, the text its `<image>` placeholder becomes for a template's);
- `tokens`: the special-token ids (think tags, stop ids; `NO_TOKEN` where the family has none);
- `thinking`: the family's `ThinkingSpec` (tags, budget message), or None if it cannot think;
- `manifest()`: the same as data for the bundle's manifest (the app renders from it).

`BlueLMFormat` is our own format (`text/chat.py`); `TemplateFormat` renders a checkpoint's
Jinja `chat_template` (`text/template.py`) and encodes the string, as `apply_chat_template` does;
with `parts` (Idefics3) every message's content is a list of typed parts, images first, as the
multimodal processors take it, and each rendered `<image>` is then replaced by its image's prompt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bluelm_edge.model.config import NO_TOKEN, SpecialTokenIds
from bluelm_edge.text import segments
from bluelm_edge.text.chat import Message, render
from bluelm_edge.text.template import render_template
from bluelm_edge.text.thinking import BUDGET_MESSAGE, WAIT_MESSAGE

if TYPE_CHECKING:
    from bluelm_edge.text.tokenizer import Tokenizer


@dataclass(frozen=True)
class ThinkingSpec:
    """A thinking family's tags and the text the budget controller feeds when the budget runs out:
    `budget_message` + `think_end` + `budget_suffix`. `switch` is the template variable that turns
    thinking on or off (Qwen3: `enable_thinking`); None: the template has no switch."""

    think_start: str = "<think>"
    think_end: str = "</think>"
    budget_message: str = BUDGET_MESSAGE
    budget_suffix: str = ""
    wait_message: str = WAIT_MESSAGE
    switch: str | None = None


class ChatFormat(Protocol):
    name: str
    tokens: SpecialTokenIds
    thinking: ThinkingSpec | None

    def prompt_ids(self, messages: list[Message], *, think: bool, image_tokens: list[int] | None = None,
                   image_prompts: list[str | None] | None = None) -> list[int]: ...

    def conversation_ids(self, messages: list[Message], *, think: bool, image_tokens: list[int] | None = None,
                         image_prompts: list[str | None] | None = None) -> list[int]: ...  # ends with an answer

    def manifest(self) -> dict[str, Any]: ...


class BlueLMFormat:
    """Our own chat format (`text/chat.py`), thinking switched by `[|BlueThink|]`."""

    name = "bluelm"
    thinking = ThinkingSpec()

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer, self.tokens = tokenizer, tokenizer.special

    def prompt_ids(self, messages: list[Message], *, think: bool, image_tokens: list[int] | None = None,
                   image_prompts: list[str | None] | None = None) -> list[int]:
        return render(messages, self.tokenizer, think=think, add_generation_prompt=True,
                      image_tokens=image_tokens).ids

    def conversation_ids(self, messages: list[Message], *, think: bool, image_tokens: list[int] | None = None,
                         image_prompts: list[str | None] | None = None) -> list[int]:
        return render(messages, self.tokenizer, think=think, add_generation_prompt=False,
                      image_tokens=image_tokens).ids

    def manifest(self) -> dict[str, Any]:
        return {"family": self.name, "chat_template": None, "thinking": asdict(self.thinking)}


class TemplateFormat:
    """A checkpoint's own Jinja chat template; thinking through the family's switch variable."""

    def __init__(self, name: str, template: str, tokenizer: Tokenizer, thinking: ThinkingSpec | None,
                 special: dict[str, str | None], *, parts: bool = False) -> None:
        self.name, self.template, self.tokenizer = name, template, tokenizer
        self.tokens, self.thinking, self.special, self.parts = tokenizer.special, thinking, special, parts

    def render_text(self, messages: list[Message], *, think: bool, add_generation_prompt: bool = True,
                    image_prompts: list[str | None] | None = None) -> str:
        """The prompt string (what `apply_chat_template(..., tokenize=False)` gives), each image's
        `<image>` replaced by its prompt (what the processor then does)."""
        has_images = any(m.images for m in messages)
        if has_images and not self.parts:
            raise_no_images(self.name)
        extra = {self.thinking.switch: think} if self.thinking and self.thinking.switch else {}
        dicts = [_as_dict(m, think, self.parts) for m in messages]
        text = render_template(self.template, dicts, add_generation_prompt=add_generation_prompt,
                               special=self.special, **extra)
        return self._expand(text, image_prompts or []) if self.parts else text

    def _expand(self, text: str, prompts: list[str | None]) -> str:
        """`text` with its i-th image placeholder (the tokenizer's image token) replaced by prompt i."""
        from bluelm_edge.errors import DataError

        pieces = text.split(self.tokenizer.id_to_token(self.tokens.image) or "<image>")
        if len(pieces) - 1 != len(prompts) or None in prompts:
            raise DataError(f"the rendered prompt has {len(pieces) - 1} image placeholder(s) but {len(prompts)} "
                            "image(s) were given; do not type the image token in the message")
        return pieces[0] + "".join(p + rest for p, rest in zip(prompts, pieces[1:], strict=True))

    def prompt_ids(self, messages: list[Message], *, think: bool, image_tokens: list[int] | None = None,
                   image_prompts: list[str | None] | None = None) -> list[int]:
        return self.tokenizer.encode(self.render_text(messages, think=think, image_prompts=image_prompts))

    def conversation_ids(self, messages: list[Message], *, think: bool, image_tokens: list[int] | None = None,
                         image_prompts: list[str | None] | None = None) -> list[int]:
        return self.tokenizer.encode(self.render_text(messages, think=think, add_generation_prompt=False,
                                                      image_prompts=image_prompts))

    def renderer(self) -> segments.Renderer:
        """The template as `text/segments` cuts it into the app's form."""
        t = self.thinking
        return segments.Renderer(self.template, self.special, t.switch if t else None, self.parts,
                                 t.think_start if t else None, t.think_end if t else None)

    def manifest(self) -> dict[str, Any]:
        """`segments`: the template in the app's form, or None and `segments_problem` saying why."""
        ids = {k: v for k, v in asdict(self.tokens).items() if k not in ("pad", "more_eos")}
        tokens = {k: self.tokenizer.id_to_token(v) if v != NO_TOKEN else None for k, v in ids.items()}
        seg, problem = segments.derive_or_reason(self.renderer())
        return {"family": self.name, "chat_template": self.template, "template_tokens": self.special,
                "thinking": asdict(self.thinking) if self.thinking else None, "tokens": tokens,
                "segments": seg, "segments_problem": problem}


def _as_dict(m: Message, think: bool, parts: bool = False) -> dict[str, Any]:
    """A message as templates take it; an assistant's thinking as `reasoning_content` (Qwen3). With
    `parts`, content is `[{"type": "image"}] * n + [{"type": "text", "text": ...}]` (images first,
    as SmolVLM's template expects: it writes "User:" without the space when an image leads)."""
    content: Any = m.content
    if parts:
        content = [{"type": "image"} for _ in m.images] + [{"type": "text", "text": m.content}]
    d: dict[str, Any] = {"role": m.role, "content": content}
    if think and m.thinking is not None:
        d["reasoning_content"] = m.thinking
    return d


def raise_no_images(name: str) -> None:
    from bluelm_edge.errors import DataError

    raise DataError(f"{name} is a text-only model; it takes no images (drop the image)")


def can_think(chat: ChatFormat) -> bool:
    return chat.thinking is not None and NO_TOKEN not in (chat.tokens.think_start, chat.tokens.think_end)
