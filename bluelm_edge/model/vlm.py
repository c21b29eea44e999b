"""The BlueLM vision-language model and its three runtime-contract methods.

`BlueLM(cfg)` holds `vision` (ViT), `adapter` (2x2 merge + MLP) and `decoder`. The methods named
as in ExecuTorch's multimodal runner convention are what export wraps and what the generation
loop calls on the eager model:

- `vision_encoder(pixels[T, 3, S, S]) -> [1, T * tokens_per_tile, D]` (pixels normalised)
- `token_embedding(ids[1, L]) -> [1, L, D]`
- `text_decoder(embeds[1, L, D], positions[L]) -> logits[1, V]` (last position; writes the cache)

plus `forward_train` (batched, causal, no cache) for training and `reset_cache`.
"""

from __future__ import annotations

import torch
from torch import nn

from bluelm_edge.errors import DataError
from bluelm_edge.model.config import BlueLMConfig
from bluelm_edge.model.connector import build_adapter
from bluelm_edge.model.decoder import Decoder
from bluelm_edge.model.vision import VisionTower


class BlueLM(nn.Module):
    """ViT + token-merge adapter + LLaMA-style decoder with a static KV cache (a text-only model,
    `cfg.vision is None`, has the decoder only)."""

    def __init__(self, cfg: BlueLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.decoder
        self.vision = VisionTower(cfg.vision) if cfg.vision else None
        self.adapter = build_adapter(cfg) if cfg.vision else None
        self.decoder = Decoder(d)
        self.apply(_init_weights)
        self.decoder.tie_weights()

    # ---- the runtime contract -------------------------------------------------------------
    def vision_encoder(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: [T, 3, S, S] normalised -> [1, T * tokens_per_tile, D]."""
        if self.vision is None:
            raise DataError(f"{self.cfg.name} is a text-only model; it takes no images")
        tokens = self.adapter(self.vision(pixels))  # [T, N, D]
        return tokens.reshape(1, -1, tokens.shape[-1])

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: [1, L] int64 -> [1, L, D]."""
        return self.decoder.embed_tokens(ids)

    def text_decoder(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """embeds: [1, L, D], positions: [L] int64 -> logits [1, V] of the last position."""
        h = self.decoder.hidden(embeds, positions)  # [1, L, D]
        return self.decoder.head(h[:, -1, :])

    def reset_cache(self) -> None:
        self.decoder.reset_cache()

    # ---- training -------------------------------------------------------------------------
    def image_embeds(self, ids: torch.Tensor, pixels: torch.Tensor | None, image_mask: torch.Tensor | None):
        """Token embeddings [B, L, D] with the `<image>` rows replaced by vision features, in order."""
        embeds = self.token_embedding(ids)
        if pixels is None:
            return embeds
        if image_mask is None:
            image_mask = ids == self.cfg.tokens.image
        feats = self.vision_encoder(pixels)[0].to(embeds.dtype)  # [T * N, D]
        slots = int(image_mask.sum())
        if slots != feats.shape[0]:
            raise DataError(
                f"{slots} <image> placeholder tokens but {feats.shape[0]} image features "
                f"({pixels.shape[0]} tiles x {self.cfg.image_tokens_per_tile}); make them match"
            )
        embeds = embeds.clone()
        embeds[image_mask] = feats
        return embeds

    def forward_train(
        self,
        ids: torch.Tensor,
        pixels: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids: [B, L]; pixels: [T, 3, S, S] for all images in order; image_mask: [B, L] bool.

        Returns logits [B, L, V] from the causal decoder (no cache). With pixels but no mask, the
        mask is `ids == tokens.image`.
        """
        return self.decoder.forward_full(self.image_embeds(ids, pixels, image_mask))

    forward = forward_train


def _init_weights(module: nn.Module) -> None:
    """Small normal init (std 0.02, zero biases), as GPT/LLaMA training code does; norms stay at 1."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
