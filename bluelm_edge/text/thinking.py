"""The thinking-budget controller: one state machine over generated tokens (spec in DESIGN.md).

It sits between the sampler and the decoder. For each sampled token, `step(token)` returns what
is emitted for it: usually the token itself; sometimes forced tokens that the caller must feed by
prefill and stream flagged as forced (the budget message + `</think>`, a forced `<think>`, or
"Wait" in place of an early `</think>`); sometimes nothing (a token that is not allowed now;
samplers that can mask logits never produce it, see `banned()`).

Budget `None` = unlimited; `0` = non-thinking mode (the template's own form: `<think>` and
`</think>` are banned); `N > 0` = at most N sampled tokens inside the thinking block. Counting
starts when `<think>` is emitted, or at once when the prompt already opened it. There is never a
second `</think>`, and thinking cannot reopen after it closed. The Java port
(`android_demo/core/.../ThinkingBudget.java`) runs on token pieces instead of ids; both are
tested on `tests/vectors/thinking_budget.json`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)

# Fed (not sampled, not counted) when the budget runs out; the training data closes cut traces
# with exactly this text so the model learns to answer from partial thinking.
BUDGET_MESSAGE = "\nTime is up, so the answer is:\n"
# Fed instead of a `</think>` sampled before the minimum (s1-style budget forcing).
WAIT_MESSAGE = " Wait,"

BEFORE, THINKING, ANSWER = "before", "thinking", "answer"


@dataclass(frozen=True)
class Emitted(Generic[T]):
    """One emitted token: `forced` tokens were fed by the controller, not sampled."""

    token: T
    forced: bool = False


class ThinkingBudget(Generic[T]):
    """State machine over sampled tokens; tokens are ids (Python) or pieces (the Java port)."""

    def __init__(
        self,
        *,
        think_start: T,
        think_end: T,
        eos: Sequence[T],
        budget: int | None,
        budget_message: Sequence[T] = (),
        budget_suffix: Sequence[T] = (),
        min_thinking: int = 0,
        wait_message: Sequence[T] = (),
        prompt_opened: bool = False,
    ) -> None:
        if budget is not None and budget < 0:
            raise ValueError(f"thinking budget must be >= 0 or None, got {budget}")
        if min_thinking and budget is not None and min_thinking > budget:
            raise ValueError(f"minimum thinking ({min_thinking}) exceeds the budget ({budget})")
        self.think_start, self.think_end, self.eos = think_start, think_end, frozenset(eos)
        self.budget, self.min_thinking = budget, min_thinking
        self.budget_message, self.wait_message = tuple(budget_message), tuple(wait_message)
        self.budget_suffix = tuple(budget_suffix)  # fed after the forced `</think>` (Qwen3: "\n\n")
        self.thinking_tokens = 0
        if budget == 0:
            self.state = ANSWER
        else:
            self.state = THINKING if prompt_opened else BEFORE

    @property
    def thinking_enabled(self) -> bool:
        return self.budget != 0

    def banned(self) -> frozenset[T]:
        """Tokens a sampler should mask now (`step` drops them if they come anyway)."""
        if self.state == ANSWER:
            return frozenset((self.think_start, self.think_end))
        if self.state == BEFORE:
            return frozenset((self.think_end,))
        return frozenset((self.think_start,))

    def step(self, token: T) -> list[Emitted[T]]:
        """Emitted tokens for one sampled `token`, in order."""
        if token in self.banned():
            return []
        if self.state == BEFORE:
            if token == self.think_start:
                self.state = THINKING
                return [Emitted(token)]
            # Thinking mode always opens with <think>: force it, then `token` is a thinking token.
            self.state = THINKING
            return [Emitted(self.think_start, True), *self._thinking_step(token)]
        if self.state == THINKING:
            return self._thinking_step(token)
        return [Emitted(token)]

    def _thinking_step(self, token: T) -> list[Emitted[T]]:
        closing = token == self.think_end or token in self.eos
        if closing and self.thinking_tokens < self.min_thinking:
            return [Emitted(t, True) for t in self.wait_message]
        if token == self.think_end:
            self.state = ANSWER
            return [Emitted(token)]
        if token in self.eos:  # the model stopped inside thinking: close it, then it answers
            self.state = ANSWER
            return [Emitted(self.think_end, True)]
        self.thinking_tokens += 1
        out = [Emitted(token)]
        if self.budget is not None and self.thinking_tokens >= self.budget:
            self.state = ANSWER
            out += [Emitted(t, True) for t in (*self.budget_message, self.think_end, *self.budget_suffix)]
        return out
