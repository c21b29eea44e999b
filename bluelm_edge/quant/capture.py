"""`calibrate`: run the fp32 model over a calibration set and save what quantizing needs.

A calibration folder holds the captured inputs of every contract method, so re-quantizing with
another recipe never re-runs calibration:

    calib/
      inputs.safetensors   s{i}.ids [1, L] int64 (token_embedding / forward), s{i}.pixels
                           [T, 3, S, S] (vision_encoder, image samples only), s{i}.embeds [1, L, D]
                           (text_decoder: token embeddings with the image rows spliced in, fp32)
      calibration.json     {"complete": true, samples, lengths, model, sha256 of inputs, ...}

The folder is built in a temporary sibling and renamed into place only when everything is
written (`io.atomic_dir`), and `load_calibration` checks `complete` and the checksum, so an
interrupted run leaves nothing a later step takes for finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bluelm_edge.errors import DataError
from bluelm_edge.io import atomic_dir, sha256_file
from bluelm_edge.model.config import BlueLMConfig
from bluelm_edge.quant.calibration import CalibSample

INPUTS, META = "inputs.safetensors", "calibration.json"


@dataclass
class Calibration:
    """Captured inputs, one dict per sample: ids [1, L], embeds [1, L, D], pixels [T, 3, S, S] or None."""

    samples: list[dict[str, torch.Tensor | None]]
    meta: dict

    def pixels(self) -> list[torch.Tensor]:
        return [s["pixels"] for s in self.samples if s["pixels"] is not None]

    def chunks(self, key: str, chunk: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(ids or embeds [1, c, ...], positions [c]) pieces of at most `chunk` tokens, in order."""
        out = []
        for s in self.samples:
            x = s[key]
            for lo in range(0, x.shape[1], chunk):
                piece = x[:, lo : lo + chunk]
                out.append((piece, torch.arange(lo, lo + piece.shape[1], dtype=torch.long)))
        return out


def config_digest(cfg: BlueLMConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def render_calib(sample: CalibSample, tokenizer, cfg: BlueLMConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(ids [1, L] truncated to the context, pixels [T, 3, S, S] or None) of one sample."""
    return render_with_mask(sample, tokenizer, cfg)[:2]


def render_with_mask(sample: CalibSample, tokenizer, cfg: BlueLMConfig) -> tuple:
    """(ids [1, L], pixels or None, loss mask [L] float) of one sample, truncated to the context."""
    from bluelm_edge.imaging import preprocess
    from bluelm_edge.text.chat import render

    tiles = [preprocess(img, cfg) for m in sample.messages for img in m.images]
    r = render(sample.messages, tokenizer, think=sample.think, add_generation_prompt=sample.generation_prompt,
               image_tokens=[t.n_tokens for t in tiles])
    pixels = torch.cat([t.pixels for t in tiles]) if tiles else None
    ids = _cut(torch.tensor([r.ids], dtype=torch.long), pixels, cfg)
    return ids, pixels, torch.tensor(r.loss_mask[: ids.shape[1]], dtype=torch.float32)


def _usable(samples: list[CalibSample], cfg: BlueLMConfig) -> list[CalibSample]:
    """The samples a model can take: all, or those without images for a text-only model."""
    usable = [s for s in samples if cfg.vision is not None or not any(m.images for m in s.messages)]
    if samples and not usable:
        raise DataError("no calibration sample without images for this text-only model; give a text set "
                        "with --calibration")
    return usable


def _calibrate_chat(model, cfg: BlueLMConfig, samples: list[CalibSample], chat, images=None) -> Calibration:
    usable = _usable(samples, cfg)
    read = images or _anyres(cfg)
    caps = [capture_sample(model, *_chat_sample(s, cfg, chat, read)) for s in usable]
    return Calibration(caps, {"samples": len(caps), "source": "in-memory", "format": chat.name})


def _chat_sample(s: CalibSample, cfg: BlueLMConfig, chat, read) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(ids [1, L] cut to the context, pixels [T, 3, S, S] or None) in the family's format, its
    images through the family's reader (`read`: image -> PreparedImage)."""
    prepared = [read(img) for m in s.messages for img in m.images]
    kw = {"think": s.think, "image_tokens": [p.n_tokens for p in prepared],
          "image_prompts": [p.prompt for p in prepared]}
    ids = chat.prompt_ids(s.messages, **kw) if s.generation_prompt else chat.conversation_ids(s.messages, **kw)
    ids_t = torch.tensor([ids], dtype=torch.long)
    pixels = torch.cat([p.pixels for p in prepared]) if prepared else None
    return _cut(ids_t, pixels, cfg), pixels


def _cut(ids: torch.Tensor, pixels: torch.Tensor | None, cfg: BlueLMConfig) -> torch.Tensor:
    """ids [1, L] cut to the context; a cut through an image is a one-line error."""
    n = cfg.decoder.max_seq_len
    if ids.shape[1] > n and pixels is not None and int((ids[0, n:] == cfg.tokens.image).sum()):
        raise DataError(f"a calibration sample is longer than the context ({n}) and its image would be cut; "
                        "shorten it")
    return ids[:, :n]


def _anyres(cfg: BlueLMConfig):
    from bluelm_edge.families.base import anyres_reader

    return anyres_reader(cfg)


@torch.no_grad()
def capture_sample(model, ids: torch.Tensor, pixels: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
    embeds = model.image_embeds(ids, pixels, None) if pixels is not None else model.token_embedding(ids)
    return {"ids": ids, "pixels": pixels, "embeds": embeds.float().contiguous()}


def run_calibration(
    model,
    tokenizer,
    cfg: BlueLMConfig,
    samples: list[CalibSample],
    out: Path,
    *,
    source: str = "default",
    on_sample: Callable[[int], None] | None = None,
    chat=None,
    images=None,
) -> Path:
    """Capture every sample's inputs and write the calibration folder `out` atomically. With `chat`
    and `images` (a family's ChatFormat and image reader) the samples are rendered in that family's
    format, as `calibrate_in_memory` does; a text-only model skips the samples with images."""
    from safetensors.torch import save_file

    if chat is not None:
        samples = _usable(samples, cfg)
        read = images or _anyres(cfg)
    if not samples:
        raise DataError(f"calibration set {source} is empty; give at least one sample")
    tensors, lengths = {}, []
    with atomic_dir(Path(out)) as tmp:
        for i, sample in enumerate(samples):
            rendered = (_chat_sample(sample, cfg, chat, read) if chat is not None
                        else render_calib(sample, tokenizer, cfg))
            captured = capture_sample(model, *rendered)
            tensors.update({f"s{i}.{k}": v for k, v in captured.items() if v is not None})
            lengths.append(int(captured["ids"].shape[1]))
            if on_sample:
                on_sample(i)
        save_file(tensors, str(tmp / INPUTS))
        meta = {"complete": True, "schema_version": 1, "samples": len(samples), "lengths": lengths,
                "images": sum(1 for i in range(len(samples)) if f"s{i}.pixels" in tensors),
                "thinking": sum(s.think for s in samples), "source": source, "model": cfg.name,
                "config_digest": config_digest(cfg), "inputs_sha256": sha256_file(tmp / INPUTS)}
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
    return Path(out)


def load_calibration(folder: Path, cfg: BlueLMConfig | None = None) -> Calibration:
    """Read a finished calibration folder; a missing, partial or mismatched one is a one-line error."""
    folder = Path(folder)
    meta_path = folder / META
    if not meta_path.is_file():
        raise DataError(f"{folder}: not a finished calibration (no {META}); run: bluelm-edge calibrate --out {folder}")
    meta = json.loads(meta_path.read_text())
    inputs = folder / INPUTS
    if not meta.get("complete") or not inputs.is_file() or sha256_file(inputs) != meta.get("inputs_sha256"):
        raise DataError(f"{folder}: calibration is incomplete or corrupt; rerun bluelm-edge calibrate --out {folder}")
    if cfg is not None and meta.get("config_digest") != config_digest(cfg):
        raise DataError(f"{folder}: calibrated for another model config ({meta.get('model')}); rerun calibrate")
    from safetensors.torch import load_file

    t = load_file(str(inputs))
    samples = [{"ids": t[f"s{i}.ids"], "embeds": t[f"s{i}.embeds"], "pixels": t.get(f"s{i}.pixels")}
               for i in range(meta["samples"])]
    return Calibration(samples, meta)


def calibrate_in_memory(model, tokenizer, cfg: BlueLMConfig, samples: list[CalibSample], chat=None,
                        images=None) -> Calibration:
    """The same captures without a folder (tests, and quantize without --calibration). With `chat`
    (a model family's ChatFormat) the samples are rendered in that family's format, their images
    preprocessed by `images` (the family's `image_reader`; default BlueLM's AnyRes), and a
    text-only model skips the samples with images."""
    if chat is not None:
        return _calibrate_chat(model, cfg, samples, chat, images)
    caps = [capture_sample(model, *render_calib(s, tokenizer, cfg)) for s in samples]
    return Calibration(caps, {"samples": len(caps), "source": "in-memory"})
