"""Piece-by-piece NPU quantization: the static program of a model too big to hold whole in fp32.

`quantize_npu_piecewise(model, recipe, calib, ...)` gives what `npu_quant.quantize_npu` gives
({method: quantized module} of the static contract, for `graphs.static.export_npu`) without the
fp32 decoder ever in memory at once (`benchmarks/export_full_npu.py` runs it on the 2.9B preset):

- `vision_encoder` and `token_embedding` are quantized as `quantize_npu` does, then the vision
  tower is released;
- the decoder one layer at a time: layer i is materialised (`materialize([name])`), its static
  step (`graphs.static.layer_step` under its eager module path `decoder.layers.i`, so the recipe's
  patterns match) is exported at `prefill_chunk` tokens and at 1, prepared with the recipe's
  quantizer, and calibrated by the host NPU runner over exactly the calls the whole program gets
  (`npu_quant.calibrate`: padded prefill chunks, then decode steps, against its own KV cache), its
  input at each call being the previous layer's output at that call; then converted, and the fp32
  layer released (`release([name])`); before converting, prefill's and decode's observers of the
  program's I/O (layer 0's input, mask, RoPE rows, the layer's cache) take one range (`quant_io.unify`);
- the final norm + head likewise, over the last layer's outputs (one logits range);
- the decode graph of every piece reads the prefill graph's weight tensors (equal values, one copy:
  upstream's weight sharing between the two graphs), and `prefill` / `decode` are the chains of
  the pieces' graphs (`Chain`), which `export_npu` traces into the same one-graph methods as the
  whole-model path.

Calibration sees the same fp32 activations as calibrating the whole static graph (prepared
graphs only observe), so every weight and every activation inside a layer gets the whole path's
quantization parameters; what differs is one requantization at each layer boundary (each layer
graph quantizes its own input). Mixed-precision recovery needs the whole model (its sensitivity
pass runs it), so `fallback` is given, not chosen here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from bluelm_edge import contract
from bluelm_edge.export import quant_io
from bluelm_edge.export.npu_host import NpuDecoder
from bluelm_edge.export.npu_quant import calibrate, drop_unread, forget_prepared, quantize_npu, share_constants
from bluelm_edge.graphs.static import example_inputs, layer_step
from bluelm_edge.quant.capture import Calibration
from bluelm_edge.quant.recipes import Recipe, get_recipe

STEPS = (contract.PREFILL, contract.DECODE)
Names = Callable[[list[str]], None]


class _Holder(nn.Module):
    """An empty module: gives a piece its eager attribute path (`decoder.layers.3`, `decoder.head`)."""


class LayerStep(nn.Module):
    """Decoder layer `index` as a static step of its own: (x, cos, sin, mask, [k], [v]) -> (x, [k], [v])."""

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        self.key = str(index)
        self.decoder = _Holder()
        self.decoder.layers = nn.ModuleDict({self.key: model.decoder.layers[index]})

    def forward(self, x, rope_cos, rope_sin, mask, k_caches, v_caches):
        x, k, v = layer_step(self.decoder.layers[self.key], x, rope_cos, rope_sin, mask, k_caches[0], v_caches[0])
        return x, [k], [v]


class HeadStep(nn.Module):
    """The decoder's final norm and output head: x [1, C, D] -> logits [1, C, V]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.decoder = _Holder()
        self.decoder.norm, self.decoder.head = model.decoder.norm, model.decoder.head

    def forward(self, x):
        return self.decoder.head(self.decoder.norm(x))


class _Piece(nn.Module):
    """A piece's converted graph behind a plain module: `torch.export` records a plain module's
    path for every node it traces (`layers.3`), not a GraphModule's, and the shard split and the
    per-layer weight count read that path."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, *args):
        return self.graph(*args)


class Chain(nn.Module):
    """The static step from its pieces' graphs: each layer's graph in order, then the head's."""

    def __init__(self, layers: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.layers, self.head = nn.ModuleList(_Piece(g) for g in layers), _Piece(head)

    def forward(self, embeds, rope_cos, rope_sin, mask, k_caches, v_caches):
        x, new_k, new_v = embeds, [], []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, rope_cos, rope_sin, mask, [k_caches[i]], [v_caches[i]])
            new_k += k
            new_v += v
        return self.head(x), new_k, new_v


class _Relay:
    """A piece's prepared graphs as host-runner methods: at call n its input is `inputs[n]` (the
    previous piece's output at that call; None: the runner's own), and every output is kept."""

    def __init__(self, graphs: dict[str, Any], inputs: list[torch.Tensor] | None) -> None:
        self.graphs, self.inputs, self.outputs = graphs, inputs, []

    def method(self, name: str):
        def call(x, cos, sin, mask, k_caches, v_caches):
            if self.inputs is not None:
                x = self.inputs[len(self.outputs)]
            out, k, v = self.graphs[name](x, cos, sin, mask, k_caches, v_caches)
            self.outputs.append(out)
            return out, k, v

        return call


def quantize_npu_piecewise(model: nn.Module, recipe: Recipe | str, calib: Calibration, *, soc: str | None,
                           chunk: int, vision_batch: int = contract.DEFAULT_VISION_BATCH,
                           names: Sequence[str] | None = None, fallback: Sequence[str] = (),
                           materialize: Names | None = None, release: Names | None = None,
                           on_piece: Names | None = None) -> dict[str, Any]:
    """{method: quantized module} of the static program, one decoder layer at a time (module docstring).

    `materialize(names)` / `release(names)` allocate and free modules by name (default: the model is
    already whole, nothing is freed); `on_piece(names)` hears each finished piece."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    names = list(names or contract.NPU_METHODS)
    materialize, release = materialize or (lambda _: None), release or (lambda _: None)
    done = on_piece or (lambda _: None)
    others = [n for n in names if n not in STEPS]
    out = quantize_npu(model, recipe, calib, soc=soc, chunk=chunk, vision_batch=vision_batch, names=others,
                       fallback=fallback) if others else {}
    if others:
        release([n for n in ("vision", "adapter") if getattr(model, n, None) is not None])
        done(others)
    steps = [n for n in STEPS if n in names]
    if not steps:
        return out
    cfg = model.cfg
    meta = {**contract.npu_metadata(cfg, chunk, vision_batch, quant_io.fp32_metadata(cfg.decoder.layers)),
            "get_n_layers": 1}
    graphs: dict[str, list] = {s: [] for s in steps}
    inputs = None
    for i in range(cfg.decoder.layers):
        piece = [f"decoder.layers.{i}"]
        materialize(piece)
        prepared = _prepare(LayerStep(model, i), _layer_inputs(cfg, steps, chunk), recipe, soc, fallback)
        relay = _Relay(prepared, inputs)
        calibrate(NpuDecoder({s: relay.method(s) for s in steps}, meta), calib)
        first = i == 0  # layer 0's input is the program's `embeds`; later ones are inside the program
        quant_io.unify(list(prepared.values()), lambda n, first=first: quant_io.is_io_input(n) or (first and n == "x"),
                       outputs=())
        inputs = relay.outputs
        for s, gm in _convert(prepared).items():
            graphs[s].append(gm)
        release(piece)
        return_freed_memory()
        done(piece)
    head = _quantize_head(model, inputs, steps, chunk, recipe, soc, fallback)
    done(["decoder.norm", "decoder.head"])
    out.update({s: Chain(graphs[s], head[s]) for s in steps})
    return out


def _layer_inputs(cfg, steps: list[str], chunk: int) -> dict[str, tuple]:
    """Example inputs of one layer's step at each method's length (one layer's caches)."""
    out = {}
    for s in steps:
        x, cos, sin, mask, k, v = example_inputs(cfg, chunk if s == contract.PREFILL else 1, cfg.decoder.max_seq_len)
        out[s] = (x, cos, sin, mask, k[:1], v[:1])
    return out


def _prepare(module: nn.Module, inputs: dict[str, tuple], recipe: Recipe, soc: str | None,
             fallback: Sequence[str]) -> dict[str, Any]:
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from bluelm_edge.quant.pt2e import make_quantizer

    out = {}
    with torch.no_grad():
        for name, args in inputs.items():
            gm = torch.export.export(module, args, strict=False).module()
            out[name] = prepare_pt2e(gm, make_quantizer(recipe, "decoder_linears", soc, fallback))
    return out


def _convert(prepared: dict[str, Any]) -> dict[str, Any]:
    """Convert each prepared graph, drop the fp32 tensors it no longer reads, and point the decode
    graph's constants at the prefill graph's equal ones (one copy of the piece's weights)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    out = {}
    for name in list(prepared):
        out[name] = drop_unread(convert_pt2e(prepared.pop(name)))
    forget_prepared()
    if len(out) == 2:
        share_constants(out[contract.DECODE], out[contract.PREFILL])
    return out


def _quantize_head(model: nn.Module, inputs: list[torch.Tensor], steps: list[str], chunk: int, recipe: Recipe,
                   soc: str | None, fallback: Sequence[str]) -> dict[str, Any]:
    """Norm + head, calibrated on the last layer's outputs of every call (each by its length)."""
    d = model.cfg.decoder.dim
    lengths = {s: chunk if s == contract.PREFILL else 1 for s in steps}
    prepared = _prepare(HeadStep(model), {s: (torch.zeros(1, n, d),) for s, n in lengths.items()}, recipe, soc,
                        fallback)
    by_length = {n: s for s, n in reversed(lengths.items())}  # chunk 1: prefill's graph is decode's shape
    with torch.no_grad():
        for x in inputs:
            prepared[by_length[x.shape[1]]](x)
    quant_io.unify(list(prepared.values()), lambda _: False, outputs=(0,))  # one logits encoding
    return _convert(prepared)


def return_freed_memory() -> None:
    """Give freed heap pages back to the OS (glibc `malloc_trim`; elsewhere nothing): a released
    layer's fp32 weights otherwise stay in the process's arenas, and RSS climbs ~0.2 GB a layer
    at 3B while the live tensors grow only by the layer's int8 codes."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
