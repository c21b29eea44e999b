"""Piecewise materialisation for models too big to hold in fp32: meta model -> weights, one piece at a time.

`materialize_and_quantize(model, recipe, seed)` takes a `BlueLM` built on the meta device and, for
each piece (every block of a layer list, then the rest of each top-level part), allocates that
piece on the CPU in float32, fills it with seeded random weights and applies the XNNPACK recipe's torchao
`quantize_` to it before moving on, so the fp32 model never sits whole in memory (the largest
piece of `bluelm-2.5-3b` is its 100k x 2560 output head, 1 GB in fp32).

The random init is defined per tensor: a generator seeded from (seed, tensor name) draws
N(0, 0.02) for weights (linears, embeddings, the patch conv, positions), zeros for biases and
ones for norm weights. Weights therefore do not depend on the order pieces are built in, and
`materialize_(model, seed)` (everything at once) gives exactly the same tensors.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch
from torch import nn

from bluelm_edge.model.decoder import RMSNorm
from bluelm_edge.model.vlm import BlueLM
from bluelm_edge.quant.recipes import Recipe

INIT_STD = 0.02
_NORMS = (RMSNorm, nn.LayerNorm)


def pieces(model: nn.Module) -> list[list[str]]:
    """Module-name groups built together: each layer-list block, then each top-level part's rest.

    A rest group lists the part's non-list children and the part itself (its direct parameters,
    e.g. `vision.pos_embed`); the part is materialised without recursing into its children.
    """
    out: list[list[str]] = []
    for part, module in model.named_children():
        rest = [part]
        for name, child in module.named_children():
            if isinstance(child, nn.ModuleList):
                out += [[f"{part}.{name}.{i}"] for i in range(len(child))]
            else:
                rest.append(f"{part}.{name}")
        out.append(rest)
    return out


def _seed_of(seed: int, name: str) -> int:
    return zlib.crc32(f"{seed}:{name}".encode())


def init_tensor_(name: str, tensor: torch.Tensor, owner: nn.Module, seed: int) -> None:
    """Fill one parameter in place: norms' weights 1, biases 0, everything else N(0, INIT_STD)."""
    with torch.no_grad():
        if name.endswith(".bias") or (name.endswith("bias") and isinstance(owner, _NORMS)):
            tensor.zero_()
        elif isinstance(owner, _NORMS):
            tensor.fill_(1.0)
        else:
            gen = torch.Generator(device=tensor.device).manual_seed(_seed_of(seed, name))
            tensor.normal_(0.0, INIT_STD, generator=gen)


def _owned(model: nn.Module, names: list[str]) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, recurse) for a piece: a top-level part alone is taken without its children."""
    top = {n for n, _ in model.named_children()}
    return [(n, model.get_submodule(n), not (n in top and len(names) > 1)) for n in names]


def materialize_piece(model: nn.Module, names: list[str], seed: int, device: str = "cpu") -> None:
    """Allocate and initialise one piece (`pieces`) of a meta model in float32."""
    owned = _owned(model, names)
    for _, module, recurse in owned:
        module.to_empty(device=device, recurse=recurse)
    _retie(model)
    seen: set[int] = set()
    for name, module, recurse in owned:
        mods = module.named_modules(prefix=name) if recurse else [(name, module)]
        for mname, mod in mods:
            for pname, param in mod.named_parameters(recurse=False):
                if id(param) not in seen:  # a tied weight is filled once, under its first name
                    seen.add(id(param))
                    init_tensor_(f"{mname}.{pname}", param, mod, seed)


def _retie(model: nn.Module) -> None:
    """Re-tie a tied head to the embedding (`to_empty` gives each module its own tensor)."""
    decoder = getattr(model, "decoder", None)
    if decoder is not None and decoder.cfg.tie_embeddings and decoder.embed.weight.device.type != "meta":
        decoder.tie_weights()


def _finish(model: BlueLM, device: str) -> BlueLM:
    """RoPE tables and zeroed KV caches (fp32) on `device`; eval mode."""
    model.decoder.init_buffers(torch.float32, device)
    return model.eval()


def materialize_(model: BlueLM, seed: int = 0, device: str = "cpu") -> BlueLM:
    """The whole meta model at once with the same per-tensor init (the reference for the piecewise path)."""
    model.to_empty(device=device)
    _retie(model)
    seen: set[int] = set()
    for mname, mod in model.named_modules():
        for pname, param in mod.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                init_tensor_(f"{mname}.{pname}" if mname else pname, param, mod, seed)
    return _finish(model, device)


def materialize_and_quantize(
    model: BlueLM,
    recipe: Recipe | None,
    seed: int = 0,
    *,
    device: str = "cpu",
    on_piece: Callable[[list[str]], None] | None = None,
) -> BlueLM:
    """Materialise, initialise and quantize (`recipe` None: keep float) a meta `BlueLM` piece by piece."""
    from bluelm_edge.quant.xnnpack import quantize_xnnpack_

    for names in pieces(model):
        materialize_piece(model, names, seed, device)
        if recipe is not None:
            quantize_xnnpack_(model, recipe, only=_quant_scope(model, names))
        if on_piece is not None:
            on_piece(names)
    return _finish(model, device)


def _quant_scope(model: nn.Module, names: list[str]) -> list[str]:
    """Names whose modules a piece owns (a part taken alone contributes only its direct children
    that are in the piece, which are listed separately)."""
    top = {n for n, _ in model.named_children()}
    return [n for n in names if not (n in top and len(names) > 1)]
