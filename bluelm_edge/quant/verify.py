"""Draft-and-verify decoding: greedy generation from a slow quantized model in a few batched calls.

`VerifiedDecoder(run, draft)` implements the generation loop's `DecoderProtocol` for `run` (a
quantized `QuantRunner`, whose fake-quant graphs cost tens of milliseconds a call), so the one
generation loop, the thinking-budget controller and the chat template are used unchanged. It
keeps the sequence fed so far; when asked for the logits after it, it answers from the last
verification if that covered the sequence, otherwise it lets the fast `draft` model (fp32 eager)
propose a greedy continuation and runs `run` once over prompt + proposal (positions batched,
cache reset), keeping the logits of every position. Each answer is `run`'s own logits for exactly
the sequence fed (the proposal is only a guess of what will be fed next), so the generated tokens
are `run`'s, while the number of `run` calls is one per divergence between the two models
instead of one per token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class VerifiedDecoder:
    """`run`'s logits for every prefix, computed in whole-sequence calls proposed by `draft`."""

    def __init__(self, run, draft, *, draft_tokens: int = 128, stop_ids: Sequence[int] = ()) -> None:
        self.run, self.draft = run, draft
        self.max_context, self.max_prefill = run.max_context, run.max_prefill
        self.draft_tokens, self.stop_ids = draft_tokens, set(stop_ids)
        self.verify_calls = 0  # whole-sequence calls of `run` (what the batching saves is per-token calls)
        self._embed_memo: dict[int, torch.Tensor] = {}
        self._fed: torch.Tensor | None = None  # [1, n, D] everything fed since reset()
        self._verified: torch.Tensor | None = None  # [1, L, D] embeds that `_logits` belongs to
        self._logits: torch.Tensor | None = None  # [L, V]

    def reset(self) -> None:
        self._fed = None

    @property
    def _n(self) -> int:
        return 0 if self._fed is None else self._fed.shape[1]

    def vision_encoder(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.run.vision_encoder(pixels)

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """`run`'s embeddings; single tokens are memoised (the table lookup does not change)."""
        if ids.numel() != 1:
            return self.run.token_embedding(ids)
        key = int(ids)
        if key not in self._embed_memo:
            self._embed_memo[key] = self.run.token_embedding(ids.reshape(1, 1))
        return self._embed_memo[key]

    def text_decoder(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if int(positions[0]) != self._n:
            raise ValueError(f"positions start at {int(positions[0])}, expected {self._n} (feed in order)")
        self._fed = embeds if self._fed is None else torch.cat([self._fed, embeds], dim=1)
        if not self._covered():
            self._verify(self._fed)
        return self._logits[self._n - 1][None]

    def _covered(self) -> bool:
        if self._verified is None or self._verified.shape[1] < self._n:
            return False
        return torch.equal(self._verified[:, : self._n], self._fed)

    @torch.no_grad()
    def _verify(self, fed: torch.Tensor) -> None:
        full = torch.cat([fed, self._propose(fed)], dim=1)
        self.run.reset()
        positions = torch.arange(full.shape[1], dtype=torch.long)
        self._logits = self.run.all_logits(full, positions)[0]
        self._verified = full
        self.verify_calls += 1

    @torch.no_grad()
    def _propose(self, fed: torch.Tensor) -> torch.Tensor:
        """The draft's greedy continuation of `fed`, as `run`'s embeddings of the proposed tokens."""
        room = min(self.draft_tokens, self.max_context - fed.shape[1] - 1)
        if room <= 0:
            return fed[:, :0]
        self.draft.reset()
        n = fed.shape[1]
        logits = None
        for lo in range(0, n, self.draft.max_prefill):
            chunk = fed[:, lo : lo + self.draft.max_prefill]
            logits = self.draft.text_decoder(chunk, torch.arange(lo, lo + chunk.shape[1], dtype=torch.long))
        out = []
        for i in range(room):
            tok = int(torch.argmax(logits.reshape(-1)))
            emb = self.token_embedding(torch.tensor([[tok]]))
            out.append(emb)
            if tok in self.stop_ids or i == room - 1:
                break
            logits = self.draft.text_decoder(emb, torch.tensor([n + i], dtype=torch.long))
        return torch.cat(out, dim=1)
