"""The training loop: AdamW, warmup + cosine, clipping, masked loss, bf16 autocast, DDP, resume.

Reads top to bottom: settings -> setup (model, tokenizer, optimizer; resume if the output folder
holds a training state) -> the loop (one global batch a step, each DDP rank a disjoint slice of
it) -> periodic held-out evaluation -> checkpoints. The data of a step is a pure function of
(seed, step), and the optimizer moments and RNG are saved, so a resumed run ends exactly where an
uninterrupted one does. Under `torchrun` the same code runs with one process a rank (gloo on CPU,
nccl on GPU); gradients are averaged by DDP and the loss is normalised by the global count of
trained tokens, so N processes compute what one process computes on the whole batch.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from bluelm_edge.datasets.chats import SHORT_SHARE, example_messages
from bluelm_edge.datasets.tasks import get_tasks
from bluelm_edge.errors import UsageError
from bluelm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from bluelm_edge.model.config import BlueLMConfig, preset
from bluelm_edge.model.vlm import BlueLM
from bluelm_edge.text.tokenizer import Tokenizer
from bluelm_edge.train import data, state


# ---- settings ---------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 32  # global, over all ranks
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    vision_lr_mult: float = 1.0  # learning-rate factor for the ViT + adapter
    seed: int = 0
    bf16: bool = True
    tasks: list[str] = field(default_factory=list)  # empty: all
    image_share: float = 0.5  # share of image-task examples (when both kinds are trained)
    task_weights: dict[str, float] = field(default_factory=dict)  # overrides of the registry's Task.weight
    no_think: float = 0.25
    cut: float = 0.15
    short_cut: float = SHORT_SHARE  # share of the cuts within the first chats.SHORT_CUT words
    vocab_size: int = 384
    eval_every: int = 250
    eval_size: int = 16  # held-out examples per task and form for the periodic evaluation
    save_every: int = 250
    max_tokens: int = 2048  # padded tokens per forward pass (length-bucketed micro-batches)


@dataclass
class Run:
    """Everything the loop works on."""

    cfg: TrainConfig
    model: BlueLM
    config: BlueLMConfig
    tokenizer: Tokenizer
    opt: torch.optim.Optimizer
    out: Path
    step: int = 0
    history: list[dict] = field(default_factory=list)
    chats: list | None = None
    rank: int = 0
    world: int = 1
    ddp: nn.Module | None = None

    @property
    def net(self) -> nn.Module:
        return self.ddp if self.ddp is not None else self.model


# ---- distributed --------------------------------------------------------------------------------
def init_distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _all_sum(x: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(x)
    return x


# ---- setup ----------------------------------------------------------------------------------------
def init_weights(model: BlueLM) -> None:
    """GPT-style decoder init: N(0, 0.02) matrices, residual projections scaled by depth (the ViT
    and adapter keep PyTorch's defaults)."""
    depth = model.cfg.decoder.layers
    for name, p in model.decoder.named_parameters():
        if p.dim() >= 2:
            residual = name.endswith(("attn.o.weight", "mlp.down.weight"))
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * depth) if residual else 0.02)


def new_model(cfg: TrainConfig, tokenizer: Tokenizer, preset_name: str) -> tuple[BlueLM, BlueLMConfig]:
    config = preset(preset_name)
    config.decoder.vocab_size = tokenizer.vocab_size
    config.validate()
    torch.manual_seed(cfg.seed)
    model = BlueLM(config)
    init_weights(model)
    return model, config


def make_optimizer(model: BlueLM, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        vision = name.startswith(("vision.", "adapter."))
        groups.setdefault((vision, p.dim() >= 2), []).append(p)
    params = [
        {"params": ps, "weight_decay": cfg.weight_decay if decay else 0.0,
         "lr_mult": cfg.vision_lr_mult if vision else 1.0}
        for (vision, decay), ps in sorted(groups.items())
    ]
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine down to cfg.lr * min_lr_ratio at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def setup(
    cfg: TrainConfig, out: Path, *, preset_name: str = "tiny", init: Path | None = None,
    chats: list | None = None,
) -> Run:
    """Build a fresh run, fine-tune from `init`, or resume from a training state in `out`."""
    rank, world = init_distributed()
    if cfg.batch_size % world:
        raise UsageError(f"--batch-size {cfg.batch_size} must be a multiple of the {world} processes")
    source = out if state.has_state(out) else init
    if source is not None:
        model, config = load_checkpoint(source)
        model.train()
        tokenizer = Tokenizer.from_file(Path(source) / "tokenizer.json")
    else:
        tokenizer = data.build_tokenizer(get_tasks(cfg.tasks), cfg.vocab_size)
        model, config = new_model(cfg, tokenizer, preset_name)
    run = Run(cfg, model, config, tokenizer, make_optimizer(model, cfg), Path(out), chats=chats,
              rank=rank, world=world)
    if state.has_state(out):
        _resume(run)
    if world > 1:
        run.ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True, broadcast_buffers=False)
    return run


def _resume(run: Run) -> None:
    meta = state.read_meta(run.out)
    saved, now = meta["train_config"], asdict(run.cfg)
    differ = [k for k in now if k not in ("eval_every", "save_every") and saved.get(k) != now[k]]
    if differ:
        raise UsageError(
            f"{run.out} holds an unfinished run with other settings ({differ[0]}: {saved.get(differ[0])!r} "
            f"there, {now[differ[0]]!r} now); rerun with the same options to resume, or use another --out"
        )
    state.restore(run.out, run.model, run.opt)
    run.step, run.history = meta["step"], meta["history"]


# ---- one step -------------------------------------------------------------------------------------
def local_samples(run: Run, step: int) -> list[data.Sample]:
    """This rank's slice of the global batch of `step`."""
    cfg = run.cfg
    if run.chats is not None:
        pairs = data.chat_messages(run.chats, cfg.seed, step, cfg.batch_size)
    else:
        tasks = get_tasks(cfg.tasks)
        weights = _task_weights(tasks, cfg.image_share, cfg.task_weights)
        mix = data.Mix(no_think=cfg.no_think, cut=cfg.cut, short=cfg.short_cut)
        pairs = data.step_messages(cfg.seed, step, cfg.batch_size, tasks, weights, mix)
    per = cfg.batch_size // run.world
    mine = pairs[run.rank * per : (run.rank + 1) * per]
    return [data.render_sample(m, run.tokenizer, run.config, think) for m, think in mine]


def _task_weights(tasks, image_share: float, overrides: dict[str, float] | None = None) -> list[float]:
    """Each task's share: `image_share` for the image tasks, the rest for text, split by weight
    (the registry's `Task.weight` unless `overrides` names the task)."""
    w = {t.name: (overrides or {}).get(t.name, t.weight) for t in tasks}
    w_img = sum(w[t.name] for t in tasks if t.kind == "image")
    w_txt = sum(w[t.name] for t in tasks if t.kind != "image")
    if not w_img or not w_txt:
        return [w[t.name] for t in tasks]
    return [image_share * w[t.name] / w_img if t.kind == "image" else (1 - image_share) * w[t.name] / w_txt
            for t in tasks]


def token_losses(net: nn.Module, batch: data.Batch, bf16: bool) -> torch.Tensor:
    """Per-target cross-entropy [B, L-1] (float32), not yet masked."""
    with torch.autocast("cuda" if batch.ids.is_cuda else "cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = net(batch.ids, batch.pixels)  # [B, L, V]
    targets = batch.ids[:, 1:]
    ce = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets.flatten(), reduction="none")
    return ce.view_as(targets)


def train_step(run: Run, step: int) -> tuple[float, int]:
    """One optimizer step; returns (global mean loss, tokens this rank processed)."""
    pad = run.tokenizer.special.pad
    batches = [data.collate(g, pad) for g in data.length_buckets(local_samples(run, step), run.cfg.max_tokens)]
    count = _all_sum(sum(b.targets_mask.sum() for b in batches).reshape(1), run.world).clamp(min=1)
    loss_sum = torch.zeros(())
    for i, batch in enumerate(batches):
        sync = run.ddp is None or i == len(batches) - 1
        with contextlib.nullcontext() if sync else run.ddp.no_sync():
            part = (token_losses(run.net, batch, run.cfg.bf16) * batch.targets_mask).sum()
            (part * run.world / count).backward()
        loss_sum += part.detach()
    for p in run.model.parameters():  # unused this step (e.g. the ViT on a text-only batch)
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    for g in run.opt.param_groups:
        g["lr"] = lr_at(step, run.cfg) * g["lr_mult"]
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    total = _all_sum(loss_sum.reshape(1), run.world)
    return float(total / count), sum(b.n_tokens for b in batches)


# ---- held-out evaluation (teacher-forced; greedy accuracy is `bluelm-edge eval`) -------------------
@torch.no_grad()
def heldout_eval(run: Run) -> dict[str, float]:
    """Per task and form: mean loss and the share of held-out examples whose every trained token
    is the argmax (teacher-forced exact match: greedy decoding reproduces the whole reply)."""
    from bluelm_edge.datasets.tasks import eval_examples

    run.model.eval()
    out: dict[str, float] = {}
    for task in get_tasks(run.cfg.tasks):
        for form in ("think", "no_think"):
            exs = eval_examples(task.name, run.cfg.eval_size)
            samples = [data.render_sample(example_messages(ex, form), run.tokenizer, run.config,
                                          form == "think") for ex in exs]
            batch = data.collate(samples, run.tokenizer.special.pad)
            out[f"{task.name}/{form}/exact"] = _tf_exact(run, batch)
    run.model.train()
    return out


def _tf_exact(run: Run, batch: data.Batch) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=run.cfg.bf16):
        logits = run.model(batch.ids, batch.pixels)
    wrong = (logits[:, :-1].argmax(-1) != batch.ids[:, 1:]) & (batch.targets_mask > 0)
    return float((~wrong.any(1)).float().mean())


def _eval_due(run: Run) -> bool:
    every = run.cfg.eval_every
    return bool(every) and run.step % every == 0 and run.rank == 0 and run.chats is None


# ---- checkpoints ------------------------------------------------------------------------------------
def save(run: Run, with_state: bool = True) -> None:
    if run.rank != 0:
        return
    extra = {"tokenizer.json": run.tokenizer.to_json_str(),
             "tokenizer_config.json": _json(run.tokenizer.tokenizer_config())}
    meta = {"step": run.step, "train_config": asdict(run.cfg), "history": run.history}
    extra[state.LOG_JSON] = _json(meta)
    if with_state:
        extra |= state.state_files(run.model, run.opt, meta)
    save_checkpoint(run.model, run.config, run.out, extra_files=extra)


def _json(obj) -> str:
    import json

    return json.dumps(obj, indent=2) + "\n"


# ---- the loop ---------------------------------------------------------------------------------------
Callback = Callable[[Run, float, int, float], None]  # (run, loss, tokens, seconds) after each step


def train(run: Run, *, stop_after: int | None = None, on_step: Callback | None = None) -> Run:
    """Train from run.step to cfg.steps (or stop, saving a resumable checkpoint, after
    `stop_after` steps in total). The final checkpoint keeps no optimizer state."""
    cfg = run.cfg
    last = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    try:
        while run.step < last:
            t0 = time.perf_counter()
            loss, tokens = train_step(run, run.step)
            run.step += 1
            run.history.append({"step": run.step, "loss": round(loss, 5)})
            seconds = time.perf_counter() - t0
            if _eval_due(run) and run.step < cfg.steps:
                run.history[-1]["eval"] = heldout_eval(run)
            if on_step:
                on_step(run, loss, tokens, seconds)
            if cfg.save_every and run.step % cfg.save_every == 0 and run.step < last:
                save(run)
    except KeyboardInterrupt:
        save(run)
        raise
    if run.step >= cfg.steps and cfg.eval_every and run.rank == 0 and run.chats is None:
        run.history[-1]["eval"] = heldout_eval(run)
    save(run, with_state=run.step < cfg.steps)
    return run
