"""The BlueLM chat template: messages -> token ids + loss mask (and the same as a string).

Owns the chat format (one place; the Java port reads `tests/vectors/chat_template.json`):

    <s>[|Human|]:<im_start><image>×n<im_end>{user}[|BlueThink|][|AI|]:<think>{trace}</think>{answer}</s>

- `<s>` once at the start; every user turn is `[|Human|]:`, its images, its text, then
  `[|BlueThink|]` in thinking mode, then `[|AI|]:`.
- The LAST assistant turn in thinking mode is `<think>{thinking}</think>{content}</s>`; a turn
  whose trace was cut by the budget (`thinking_truncated`) closes it with the controller's
  budget message, as the device does. Non-thinking mode and earlier assistant turns keep only
  `{content}</s>` (thinking stripped).
- With `add_generation_prompt` the conversation ends with a user turn and the text ends after
  `[|AI|]:` (in thinking mode the model generates `<think>` itself); every assistant turn in it
  is an earlier turn, so none keeps its thinking and the loss mask is all 0.
- The loss mask is 1 on the tokens the model must produce in the last assistant turn (all
  assistant turns with `train_on_all_turns`), including `<think>`, `</think>` and `</s>`; the
  forced budget message and the `</think>` after it are 0 (fed at inference, never sampled).

`render(...).ids == tokenizer.encode(render_text(...))`: every text piece sits between special
tokens, so encoding the pieces one by one equals encoding the whole string, which is what the
ExecuTorch runners do with a prompt string.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from bluelm_edge.errors import DataError
from bluelm_edge.model.config import SPECIAL_TOKENS, SpecialTokenIds
from bluelm_edge.text.thinking import BUDGET_MESSAGE

if TYPE_CHECKING:
    from bluelm_edge.text.tokenizer import Tokenizer

@dataclass(frozen=True)
class ChatTokens:
    """The chat-format special tokens as strings, named as in `SpecialTokenIds` (and the manifest)."""

    bos: str
    eos: str
    human: str
    ai: str
    blue_think: str
    think_start: str
    think_end: str
    im_start: str
    image: str
    im_end: str

    @classmethod
    def default(cls) -> ChatTokens:
        ids = SpecialTokenIds()
        return cls(**{f.name: SPECIAL_TOKENS[getattr(ids, f.name)] for f in fields(cls)})

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


TOKENS = ChatTokens.default()


@dataclass
class Message:
    """One chat turn. `images` only on user turns, `thinking` only on assistant turns."""

    role: Literal["user", "assistant"]
    content: str
    images: list[Any] = field(default_factory=list)  # paths or PIL images, in order
    thinking: str | None = None
    thinking_truncated: bool = False  # the trace was cut by the thinking budget

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise DataError(f"message role {self.role!r} is not 'user' or 'assistant'")
        if self.role == "assistant" and self.images:
            raise DataError("an assistant message cannot carry images; put them on the user turn")
        if self.role == "user" and (self.thinking is not None or self.thinking_truncated):
            raise DataError("a user message cannot carry thinking; put it on the assistant turn")


@dataclass
class Rendered:
    """Token ids of a rendered conversation and a 0/1 mask of the tokens to train on."""

    ids: list[int]
    loss_mask: list[int]


# A piece is (text, is_special, trained_on).
_Piece = tuple[str, bool, bool]


def render_text(
    messages: list[Message],
    *,
    think: bool,
    add_generation_prompt: bool,
    image_tokens: list[int] | None = None,
) -> str:
    """The rendered conversation as one string, special tokens written out."""
    pieces = _pieces(messages, think, add_generation_prompt, image_tokens, train_on_all_turns=False)
    return "".join(text for text, _, _ in pieces)


def render(
    messages: list[Message],
    tokenizer: Tokenizer,
    *,
    think: bool,
    add_generation_prompt: bool,
    image_tokens: list[int] | None = None,
    train_on_all_turns: bool = False,
) -> Rendered:
    """Token ids and loss mask of a conversation (see the module docstring for the format)."""
    pieces = _pieces(messages, think, add_generation_prompt, image_tokens, train_on_all_turns)
    ids: list[int] = []
    mask: list[int] = []
    for text, special, trained in pieces:
        piece_ids = [_special_id(tokenizer, text)] if special else tokenizer.encode(text)
        ids += piece_ids
        mask += [int(trained)] * len(piece_ids)
    return Rendered(ids, mask)


def _special_id(tokenizer: Tokenizer, text: str) -> int:
    i = tokenizer.token_to_id(text)
    assert i is not None, text  # Tokenizer checks every special token on load
    return i


def _pieces(
    messages: list[Message],
    think: bool,
    add_generation_prompt: bool,
    image_tokens: list[int] | None,
    train_on_all_turns: bool,
) -> list[_Piece]:
    _check_turns(messages, add_generation_prompt)
    counts = _image_counts(messages, image_tokens)
    last_assistant = len(messages) - 1 if messages[-1].role == "assistant" else -1
    pieces: list[_Piece] = [(TOKENS.bos, True, False)]
    for i, m in enumerate(messages):
        if m.role == "user":
            pieces += _user(m, think, [counts.pop(0) for _ in m.images])
        else:
            last = i == last_assistant
            pieces += _assistant(m, think and last, last or train_on_all_turns)
    return [p for p in pieces if p[0]]  # empty text pieces encode to nothing


def _user(m: Message, think: bool, image_counts: list[int]) -> list[_Piece]:
    pieces: list[_Piece] = [(TOKENS.human, True, False)]
    for n in image_counts:
        pieces.append((TOKENS.im_start, True, False))
        pieces += [(TOKENS.image, True, False)] * n
        pieces.append((TOKENS.im_end, True, False))
    pieces.append((m.content, False, False))
    if think:
        pieces.append((TOKENS.blue_think, True, False))
    pieces.append((TOKENS.ai, True, False))
    return pieces


def _assistant(m: Message, with_thinking: bool, trained: bool) -> list[_Piece]:
    pieces: list[_Piece] = []
    if with_thinking:
        pieces += [(TOKENS.think_start, True, trained), (m.thinking or "", False, trained)]
        if m.thinking_truncated:  # fed by the budget controller on device: not trained on
            pieces += [(BUDGET_MESSAGE, False, False), (TOKENS.think_end, True, False)]
        else:
            pieces.append((TOKENS.think_end, True, trained))
    pieces += [(m.content, False, trained), (TOKENS.eos, True, trained)]
    return pieces


def _check_turns(messages: list[Message], add_generation_prompt: bool) -> None:
    if not messages:
        raise DataError("a conversation needs at least one user message")
    for i, m in enumerate(messages):
        want = "user" if i % 2 == 0 else "assistant"
        if m.role != want:
            raise DataError(f"message {i} is {m.role!r} but should be {want!r}: turns alternate, user first")
    last = messages[-1].role
    if add_generation_prompt and last != "user":
        raise DataError("add_generation_prompt needs the conversation to end with a user message")
    if not add_generation_prompt and last != "assistant":
        raise DataError("the conversation ends with a user message: pass add_generation_prompt=True")


def _image_counts(messages: list[Message], image_tokens: list[int] | None) -> list[int]:
    n_images = sum(len(m.images) for m in messages)
    counts = list(image_tokens or [])
    if len(counts) != n_images:
        raise DataError(
            f"the conversation has {n_images} image(s) but image_tokens gives {len(counts)} count(s); "
            "pass one count per image (imaging.preprocess(...).n_tokens)"
        )
    if any(not isinstance(n, int) or n < 1 for n in counts):
        raise DataError(f"image_tokens must be positive integers, got {counts}")
    return counts
