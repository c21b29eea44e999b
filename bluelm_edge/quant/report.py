"""The quantization quality report: each recipe against fp32 on held-out data (`eval --compare`).

`compare_recipes(model_dir, recipes, ...) -> dict` (and `compare_loaded` for a model in memory)
measures, per recipe: perplexity of the held-out answers (thinking traces included), mean KL
divergence and top-1 agreement of next-token distributions against fp32, task accuracy at
thinking budgets 0 and none (greedy, through `session.ChatSession` and the one generation loop,
decoded draft-and-verify by `quant.verify.VerifiedDecoder`: fp32 proposes, the quantized model
checks whole sequences at once, so its greedy tokens cost a few calls, not one per token),
vision-embedding cosine similarity, and the estimated weight size. Recipes with accuracy
recovery are measured twice (without and with it) and the recovered fraction of the KL and
perplexity loss is reported.

Evaluation is the fast way: the quantized model runs whole sequences at once (batched over
positions): torchao-quantized eager modules for XNNPACK; for QNN/MediaTek the vendor-quantized
(fake-quant Q/DQ) graphs of vision_encoder, token_embedding and the cached decoder returning
every position's logits, so the KV-cache quantization is part of what is measured.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bluelm_edge.quant.calibration import CalibSample
from bluelm_edge.quant.capture import Calibration, render_with_mask
from bluelm_edge.quant.recipes import Recipe, get_recipe
from bluelm_edge.quant.recovery import weight_bits


class _AllLogits(nn.Module):
    """Cached decoder path returning logits for every position (same graph as text_decoder)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.decoder.forward(embeds, positions)


class QuantRunner:
    """One model variant: embeds(ids, pixels), all_logits(embeds), vision(pixels), and a decoder."""

    def __init__(self, model: nn.Module, graphs: dict[str, Any] | None = None) -> None:
        self.model, self.graphs = model, graphs or {}
        self.max_context = model.cfg.decoder.max_seq_len
        self.max_prefill = 128

    def vision_encoder(self, pixels: torch.Tensor) -> torch.Tensor:
        g = self.graphs.get("vision_encoder")
        return torch.cat([g(t[None]) for t in pixels], dim=1) if g else self.model.vision_encoder(pixels)

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        g = self.graphs.get("token_embedding")
        return g(ids) if g else self.model.token_embedding(ids)

    def all_logits(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        g = self.graphs.get("all_logits")
        return g(embeds, positions) if g else self.model.decoder.forward(embeds, positions)

    def text_decoder(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.all_logits(embeds, positions)[:, -1]

    def reset(self) -> None:
        self.model.reset_cache()
        for g in self.graphs.values():
            for name, buf in g.named_buffers():
                if name.endswith("_cache"):
                    buf.zero_()

    def embeds(self, ids: torch.Tensor, pixels: torch.Tensor | None) -> torch.Tensor:
        e = self.token_embedding(ids)
        if pixels is not None:
            e = e.clone()
            e[ids == self.model.cfg.tokens.image] = self.vision_encoder(pixels)[0].to(e.dtype)
        return e


# ---- building the variants --------------------------------------------------------------------
@torch.no_grad()
def build_variant(model: nn.Module, recipe: Recipe, calib: Calibration, fallback: Sequence[str]) -> QuantRunner:
    """A quantized copy of `model` per recipe, ready to evaluate (the original is untouched)."""
    qmodel = copy.deepcopy(model)
    if recipe.backend == "xnnpack":
        from bluelm_edge.quant.xnnpack import quantize_xnnpack_

        return QuantRunner(quantize_xnnpack_(qmodel, recipe, fallback))
    from bluelm_edge.graphs import methods
    from bluelm_edge.quant.api import calibration_feed
    from bluelm_edge.quant.pt2e import quantize_graph

    wrappers = methods.wrappers(qmodel)
    examples = methods.example_inputs(qmodel, 128, 1)
    seq = torch.export.Dim("seq", min=1, max=qmodel.cfg.decoder.max_seq_len)
    specs = {
        "vision_encoder": (wrappers["vision_encoder"], examples["vision_encoder"], None, "vision"),
        "token_embedding": (wrappers["token_embedding"], examples["token_embedding"], ({1: seq},), "embeddings"),
        "all_logits": (_AllLogits(qmodel), examples["text_decoder"], ({1: seq}, {0: seq}), "decoder_linears"),
    }
    feeds = {"vision_encoder": calibration_feed("vision_encoder", calib, 10**6, 1),
             "token_embedding": [(s["ids"],) for s in calib.samples],
             "all_logits": [(s["embeds"], torch.arange(s["embeds"].shape[1])) for s in calib.samples]}
    graphs = {}
    for name, (module, example, shapes, part) in specs.items():
        qmodel.reset_cache()
        graphs[name] = quantize_graph(module, example, recipe, lambda g, n=name: [g(*a) for a in feeds[n]],
                                      part=part, fallback=fallback, dynamic_shapes=shapes)
    return QuantRunner(qmodel, graphs)


# ---- metrics --------------------------------------------------------------------------------------
@torch.no_grad()
def text_metrics(ref: QuantRunner, run: QuantRunner, data: list[dict]) -> dict[str, float]:
    """Perplexity of the trained-on tokens, KL(fp32 || quant) and top-1 agreement over them."""
    nll = kl = agree = count = 0.0
    for d in data:
        ref.reset()
        run.reset()
        pos = torch.arange(d["ids"].shape[1])
        p = F.log_softmax(ref.all_logits(d["ref_embeds"], pos)[0, :-1].float(), -1)
        q = F.log_softmax(run.all_logits(run.embeds(d["ids"], d["pixels"]), pos)[0, :-1].float(), -1)
        mask = d["mask"]
        target = d["ids"][0, 1:]
        nll += float(-(q.gather(1, target[:, None])[:, 0] * mask).sum())
        kl += float((F.kl_div(q, p, log_target=True, reduction="none").sum(-1) * mask).sum())
        agree += float(((p.argmax(-1) == q.argmax(-1)).float() * mask).sum())
        count += float(mask.sum())
    return {"perplexity": math.exp(nll / count), "kl": kl / count, "top1_agreement": agree / count}


@torch.no_grad()
def vision_cosine(ref: QuantRunner, run: QuantRunner, data: list[dict]) -> float | None:
    sims = [F.cosine_similarity(ref.vision_encoder(d["pixels"])[0], run.vision_encoder(d["pixels"])[0], dim=-1)
            for d in data if d["pixels"] is not None]
    return float(torch.cat(sims).mean()) if sims else None


def task_accuracy(runner: QuantRunner, tokenizer, cfg, examples: list, budget: int | None,
                  max_new_tokens: int = 160, draft: QuantRunner | None = None) -> float:
    """Exact-match accuracy of greedy answers at a thinking budget (0 = non-thinking mode).

    With a `draft` (the fp32 runner), a quantized runner is decoded through `VerifiedDecoder`:
    the same greedy tokens, in a few whole-sequence calls instead of one call per token."""
    from bluelm_edge.generate import Sampling
    from bluelm_edge.quant.verify import VerifiedDecoder
    from bluelm_edge.session import ChatSession

    decoder = runner
    if draft is not None and draft is not runner:
        decoder = VerifiedDecoder(runner, draft, draft_tokens=max_new_tokens, stop_ids=[cfg.tokens.eos])
    right = 0
    for ex in examples:
        session = ChatSession(decoder, tokenizer, cfg)
        images = [ex.image()] if ex.image_spec is not None else []
        reply = session.ask(ex.question, images, think=budget != 0, budget=budget,
                            sampling=Sampling(max_new_tokens=max_new_tokens))
        right += ex.check(reply.answer)
    return right / max(len(examples), 1)


def weight_bytes(model: nn.Module, recipe: Recipe | None, fallback: Sequence[str] = ()) -> int:
    """Estimated weight storage: fp32, or each sub-model's weight bits plus fp16 scales per
    group/block/channel; the recipe's sensitive layers and the fallback layers at their precision."""
    from bluelm_edge.quant.pt2e import high_precision

    high = high_precision(recipe, fallback) if recipe is not None else None
    total = 0
    for name, p in model.named_parameters():
        bits, group = _param_bits(name, p, recipe, high)
        total += p.numel() * bits // 8 + (2 * p.numel() // group if group else 0)
    return total


def _param_bits(name: str, p: torch.Tensor, recipe: Recipe | None, high) -> tuple[int, int | None]:
    import re

    from bluelm_edge.quant.pt2e import SUBMODEL_PATTERNS

    if recipe is None or p.dim() < 2:
        return 32, None
    module = name.rsplit(".", 1)[0]
    if high and any(re.search(pat, module) for pat in high[1]):
        return weight_bits(high[0]["scheme"]), p.shape[-1]
    for part, pattern in SUBMODEL_PATTERNS.items():
        if re.search(pattern, module):
            spec = recipe.part(part)
            if spec["scheme"] == "fp32":
                return 32, None
            group = spec.get("group_size") or spec.get("block_size") or p.shape[-1]
            return weight_bits(spec["scheme"]), group
    return 32, None


# ---- the report -------------------------------------------------------------------------------------
def heldout_data(model: nn.Module, tokenizer, cfg, n: int, tasks: Sequence[str] | None = None):
    """(text data, examples): n held-out examples spread over the tasks, rendered in thinking mode."""
    from bluelm_edge.datasets.chats import example_messages
    from bluelm_edge.datasets.tasks import eval_examples, get_tasks
    from bluelm_edge.quant.capture import capture_sample

    names = [t.name for t in get_tasks(tasks)]
    examples = [ex for i in range(n) for ex in [eval_examples(names[i % len(names)], i // len(names) + 1)[-1]]]
    data = []
    for ex in examples:
        ids, pixels, mask = render_with_mask(CalibSample(example_messages(ex, "think"), True), tokenizer, cfg)
        cap = capture_sample(model, ids, pixels)
        data.append({"ids": ids, "pixels": pixels, "ref_embeds": cap["embeds"],
                     "mask": mask[1:]})
    return data, examples


def _measure(ref, run, data, tokenizer, cfg, examples, budgets, max_new_tokens) -> dict[str, Any]:
    out = text_metrics(ref, run, data)
    out["vision_cosine"] = vision_cosine(ref, run, data)
    for b in budgets:
        key = f"accuracy_budget_{'none' if b is None else b}"
        out[key] = task_accuracy(run, tokenizer, cfg, examples, b, max_new_tokens, draft=ref)
    return out


def compare_loaded(model, tokenizer, cfg, recipes: Sequence[str | Recipe], calib: Calibration, *,
                   heldout: int = 24, accuracy_examples: int = 12, budgets=(0, None),
                   tasks: Sequence[str] | None = None, max_new_tokens: int = 160, progress=None) -> dict[str, Any]:
    """The report for a model in memory (see the module docstring)."""
    from bluelm_edge.quant.recovery import choose_fallback

    data, examples = heldout_data(model, tokenizer, cfg, heldout, tasks)
    examples = examples[:accuracy_examples]
    ref = QuantRunner(model)
    fp32 = _measure(ref, ref, data, tokenizer, cfg, examples, budgets, max_new_tokens)
    fp32["size_bytes"] = weight_bytes(model, None)
    report = {"fp32": fp32, "recipes": {}, "heldout": len(data), "accuracy_examples": len(examples)}
    for r in recipes:
        recipe = get_recipe(r) if not isinstance(r, Recipe) else r
        fallback = choose_fallback(model, recipe, calib)
        variant = build_variant(model, recipe, calib, [])
        entry = _measure(ref, variant, data, tokenizer, cfg, examples, budgets, max_new_tokens)
        entry.update(size_bytes=weight_bytes(model, recipe), backend=recipe.backend)
        if fallback:
            variant = build_variant(model, recipe, calib, fallback)
            after = _measure(ref, variant, data, tokenizer, cfg, examples, budgets, max_new_tokens)
            entry = {"before_recovery": entry, **after, "fallback_layers": fallback,
                     "recovered_kl_fraction": _recovered(entry["kl"], after["kl"], 0.0),
                     "recovered_ppl_fraction": _recovered(entry["perplexity"], after["perplexity"], fp32["perplexity"])}
            entry.update(size_bytes=weight_bytes(model, recipe, fallback), backend=recipe.backend)
        report["recipes"][recipe.name] = entry
        if progress:
            progress(recipe.name)
    return report


def _recovered(before: float, after: float, base: float) -> float | None:
    """Fraction of the quantization loss (before - base) that recovery removed."""
    loss = before - base
    return (before - after) / loss if loss > 1e-12 else None


def compare_recipes(model_dir: Path, recipes: Sequence[str], *, calibration: Path | None = None,
                    samples: int = 16, **kw) -> dict[str, Any]:
    """Load a checkpoint, calibrate (or read `calibration`), and return `compare_loaded`'s report."""
    from bluelm_edge.model.checkpoint import load_checkpoint
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import calibrate_in_memory, load_calibration
    from bluelm_edge.text.tokenizer import Tokenizer

    model, cfg = load_checkpoint(Path(model_dir))
    tokenizer = Tokenizer.from_file(Path(model_dir) / "tokenizer.json")
    calib = (load_calibration(calibration, cfg) if calibration
             else calibrate_in_memory(model, tokenizer, cfg, load_set(samples=samples)))
    report = compare_loaded(model, tokenizer, cfg, recipes, calib, **kw)
    report["model"] = str(model_dir)
    return report
