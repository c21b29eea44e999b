"""Quantized graph I/O of the static NPU program (QNN): what crosses the HTP boundary each call.

Upstream's Qualcomm Llama export tags the decoder's inputs and outputs (`TagQuantIO`) so the lowered
program takes and returns integer tensors (`BuildQuantIo`): the KV cache at 8 bits, the other
I/O at 16, no fp32 across the boundary. This module gives the same contract to our program:

- `unify(graphs, ...)`: after calibration, before conversion, the prefill and decode graphs'
  observers of each I/O tensor take the union of their ranges, so both graphs read and write the
  one cache (and the runner builds one mask, one set of RoPE rows) at the same encoding;
- `encodings(programs)`: each I/O's encoding (scale, zero point, bits) read off the converted
  graph's edge quantize / dequantize nodes, checked equal between the methods;
- `metadata(enc)`: those encodings as the program's constant methods (`contract.NPU_IO_ROLES`:
  `get_<role>_bit_width` / `_scale` / `_zero_point`, upstream's `get_kv_io_bit_width`,
  `get_logits_scale` / `get_logits_zero_point`, and the caches' `get_kv_scales` /
  `get_kv_zero_points`), which the runner reads to quantize its inputs and dequantize logits;
- `IntegerIo(method, meta)`: the converted (fake-quant, fp32-I/O) graph as the lowered program
  presents it: integer tensors in and out (`IntegerOutput`: `token_embedding` / `vision_encoder`,
  whose outputs the runner dequantizes and re-quantizes at `embeds`' encoding once joined).
  Exact: the graph quantizes each input with the same encoding the runner used, and
  q(dq(q(x))) = q(x);
- `tag_fn(meta)`: the `TagQuantIO` callback that marks the same tensors for QNN's lowering.

Roles: inputs by placeholder name (`embeds`, `rope_cos`, `rope_sin`, `mask`, `k_caches_<i>`,
`v_caches_<i>`), outputs by position (`logits`, then the n new keys, then the n new values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bluelm_edge import contract

FLOAT = 32  # bit width of an fp32 (not quantized) I/O tensor
DECODER_INPUTS = ("embeds", "rope_cos", "rope_sin", "mask")


@dataclass(frozen=True)
class Encoding:
    """One tensor's affine encoding: real = (q - zero_point) * scale, q in [0, 2**bits - 1]."""

    scale: float
    zero_point: int
    bits: int

    @property
    def dtype(self) -> torch.dtype:  # the host's container, as the quantizer's graphs use it
        return torch.uint8 if self.bits == 8 else torch.int32

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return _ops()[0](x.float(), self.scale, self.zero_point, 0, 2**self.bits - 1, self.dtype)

    def dequantize(self, q: torch.Tensor) -> torch.Tensor:
        return _ops()[1](q, self.scale, self.zero_point, 0, 2**self.bits - 1, self.dtype)


def quantize(e: Encoding | None, t: torch.Tensor) -> torch.Tensor:
    """`t` in encoding `e` (None: fp32, unchanged)."""
    return t if e is None else e.quantize(t)


def dequantize(e: Encoding | None, t: torch.Tensor) -> torch.Tensor:
    """Real values of codes `t` in encoding `e` (None: already fp32)."""
    return t if e is None else e.dequantize(t)


def _ops() -> tuple[Any, Any]:
    """(quantize, dequantize) per tensor: the ops the quantizers' graphs call (registered on first use)."""
    from bluelm_edge.export.archive import register_quantized_ops

    register_quantized_ops()
    ns = torch.ops.quantized_decomposed
    return ns.quantize_per_tensor.default, ns.dequantize_per_tensor.default


def _encoding(node: torch.fx.Node) -> Encoding:
    scale, zp, qmin, qmax, _ = node.args[1:6]
    bits = (int(qmax) - int(qmin) + 1).bit_length() - 1
    if int(qmin) != 0 or 2**bits != int(qmax) + 1 or bits not in (8, 16):
        raise ValueError(f"{node.name}: graph I/O must be unsigned 8 or 16 bit, not [{qmin}, {qmax}]")
    return Encoding(float(scale), int(zp), bits)


def is_io_input(name: str) -> bool:
    """Whether a placeholder of the static step is one of the contract's I/O tensors."""
    return name in DECODER_INPUTS or name.startswith(("k_caches_", "v_caches_"))


# ---- before conversion: one encoding per I/O for both methods --------------------------------------
def _observer(gm: torch.fx.GraphModule, node: torch.fx.Node) -> Any:
    from torchao.quantization.pt2e import ObserverBase

    if node.op != "call_module":
        return None
    mod = gm.get_submodule(node.target)
    return mod if isinstance(mod, ObserverBase) and hasattr(mod, "min_val") else None


def _io_observers(gm: torch.fx.GraphModule, inputs: Callable[[str], bool], outputs: Sequence[int]) -> dict:
    found = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder" and inputs(node.name):
            obs = [o for o in (_observer(gm, u) for u in node.users) if o is not None]
            if obs:
                found[("in", node.name)] = obs[0]
    leaves = torch.utils._pytree.tree_leaves(list(gm.graph.nodes)[-1].args)
    for i in outputs:
        obs = _observer(gm, leaves[i]) if i < len(leaves) else None
        if obs is not None:
            found[("out", i)] = obs
    return found


def unify(graphs: Sequence[torch.fx.GraphModule], inputs: Callable[[str], bool] = is_io_input,
          outputs: Sequence[int] = (0,)) -> int:
    """Give each I/O observer (inputs by name, outputs by position) of every prepared graph the union
    of their calibrated ranges; returns how many I/O tensors were joined."""
    groups: dict = {}
    for gm in graphs:
        for key, obs in _io_observers(gm, inputs, outputs).items():
            groups.setdefault(key, []).append(obs)
    for obs in groups.values():
        lo = torch.stack([o.min_val.detach().reshape(()) for o in obs]).min()
        hi = torch.stack([o.max_val.detach().reshape(()) for o in obs]).max()
        for o in obs:
            o.min_val.copy_(lo.reshape(o.min_val.shape))
            o.max_val.copy_(hi.reshape(o.max_val.shape))
    return len(groups)


# ---- after conversion: read the encodings off the graphs -------------------------------------------
def graph_encodings(graph: torch.fx.Graph) -> dict[str, Encoding | None]:
    """{role: encoding, or None where the tensor is fp32} of one converted static step graph."""
    out: dict[str, Encoding | None] = {}
    for node in graph.nodes:
        if node.op == "placeholder" and is_io_input(node.name):
            quants = {_encoding(u) for u in node.users if u.op == "call_function" and u.target == _ops()[0]}
            if len(quants) > 1:
                raise ValueError(f"input {node.name} is quantized at {len(quants)} encodings; it needs one")
            out[node.name] = quants.pop() if quants else None
    leaves = torch.utils._pytree.tree_leaves(list(graph.nodes)[-1].args)
    n = (len(leaves) - 1) // 2
    names = ["logits", *(f"k_new_{i}" for i in range(n)), *(f"v_new_{i}" for i in range(n))]
    for name, leaf in zip(names, leaves, strict=True):
        out[name] = _dequantized(leaf)
    return out


def _dequantized(leaf: torch.fx.Node) -> Encoding | None:
    """The encoding a graph output leaves at (its dequantize node's), or None for an fp32 output."""
    return _encoding(leaf) if leaf.op == "call_function" and leaf.target == _ops()[1] else None


def output_encoding(program: Any) -> Encoding | None:
    """The encoding of a one-output method's output (`token_embedding`, `vision_encoder`), or None."""
    return _dequantized(torch.utils._pytree.tree_leaves(list(_graph(program).nodes)[-1].args)[0])


OUTPUT_ROLES = {contract.TOKEN_EMBEDDING: "token_embedding_out", contract.VISION_ENCODER: "vision_encoder_out"}


def encodings(programs: dict[str, Any]) -> dict[str, Encoding | None]:
    """The program's I/O encodings: the decoder steps' shared ones (`prefill` and `decode` must
    agree) and the outputs of `token_embedding` / `vision_encoder`."""
    found = {name: graph_encodings(_graph(programs[name])) for name in contract.DECODER_STEPS if name in programs}
    first, *rest = found.values()
    for other in rest:
        differ = sorted(k for k in first if first[k] != other.get(k))
        if differ:
            raise ValueError(f"prefill and decode encode {', '.join(differ)} differently; unify before converting")
    for i in range(sum(k.startswith("k_caches_") for k in first)):
        for kind in ("k", "v"):
            if first[f"{kind}_caches_{i}"] != first[f"{kind}_new_{i}"]:
                raise ValueError(f"layer {i}'s new {kind} entries leave at another encoding than its cache")
    for method, role in OUTPUT_ROLES.items():
        first[role] = output_encoding(programs[method]) if method in programs else None
    return first


def _graph(program: Any) -> torch.fx.Graph:
    return program.graph_module.graph if hasattr(program, "graph_module") else program.graph


def metadata(enc: dict[str, Encoding | None]) -> dict[str, Any]:
    """The constant methods declaring the program's I/O encodings (`contract.NPU_IO_ROLES`)."""
    out: dict[str, Any] = {}
    for role in contract.NPU_IO_ROLES:
        e = enc.get(role)
        out[f"get_{role}_bit_width"] = e.bits if e else FLOAT
        out[f"get_{role}_scale"] = e.scale if e else 1.0
        out[f"get_{role}_zero_point"] = e.zero_point if e else 0
    caches = [enc.get(f"{kind}_caches_{i}") for kind in ("k", "v")
              for i in range(sum(k.startswith("k_caches_") for k in enc))]
    widths = {e.bits if e else FLOAT for e in caches}
    if len(widths) > 1:
        raise ValueError(f"the KV caches mix bit widths {sorted(widths)}; the runner keeps one cache dtype")
    out["get_kv_io_bit_width"] = widths.pop() if widths else FLOAT
    out["get_kv_scales"] = [e.scale if e else 1.0 for e in caches]
    out["get_kv_zero_points"] = [e.zero_point if e else 0 for e in caches]
    return out


GRAPH_IO = ("kv", "full", "float")  # `export --graph-io`: what crosses the boundary as integers


def select(enc: dict[str, Encoding | None], mode: str) -> dict[str, Encoding | None]:
    """The encodings a program of graph-I/O `mode` keeps: `full` all (upstream's native runner: 8-bit
    KV, 16-bit the rest), `kv` the caches and new entries only (8-bit; embeddings, mask, RoPE rows and
    logits fp32: what ExecuTorch's Java Module passes, it has no uint16), `float` none."""
    if mode not in GRAPH_IO:
        raise ValueError(f"graph I/O {mode!r} is not one of {', '.join(GRAPH_IO)}")
    keep = {"full": lambda k: True, "kv": lambda k: "_caches_" in k or "_new_" in k, "float": lambda k: False}[mode]
    return {k: (e if keep(k) else None) for k, e in enc.items()}


def fp32_metadata(layers: int) -> dict[str, Any]:
    """`metadata` of a program whose I/O is all fp32 (MediaTek, `--graph-io float`, the fp32 graphs)."""
    return metadata({f"{kind}_caches_{i}": None for kind in ("k", "v") for i in range(layers)})


# ---- the runner's side -----------------------------------------------------------------------------
def runner_encodings(meta: dict[str, Any]) -> dict[str, Encoding | None]:
    """{role: encoding or None} the runner quantizes / dequantizes with, from the metadata; the
    caches as `k_<i>` / `v_<i>` (absent keys: fp32, a program written before contract 2)."""
    out: dict[str, Encoding | None] = {}
    for role in contract.NPU_IO_ROLES:
        bits = int(meta.get(f"get_{role}_bit_width", FLOAT))
        out[role] = None if bits == FLOAT else Encoding(float(meta[f"get_{role}_scale"]),
                                                        int(meta[f"get_{role}_zero_point"]), bits)
    bits, n = int(meta.get("get_kv_io_bit_width", FLOAT)), int(meta["get_n_layers"])
    for j, kind in enumerate(("k", "v")):
        for i in range(n):
            out[f"{kind}_{i}"] = None if bits == FLOAT else Encoding(
                float(meta["get_kv_scales"][j * n + i]), int(meta["get_kv_zero_points"][j * n + i]), bits)
    return out


def quantized(meta: dict[str, Any]) -> bool:
    """Whether the program's metadata declares any integer I/O."""
    return any(int(meta.get(f"get_{r}_bit_width", FLOAT)) != FLOAT for r in contract.NPU_IO_ROLES) or int(
        meta.get("get_kv_io_bit_width", FLOAT)) != FLOAT


class IntegerIo:
    """A converted static step graph (fp32 I/O, quantize/dequantize at its edges) called the way the
    lowered program is: the quantized inputs and outputs are integer tensors (module docstring)."""

    def __init__(self, method: Callable[..., Any], meta: dict[str, Any]) -> None:
        self.method, self.enc = method, runner_encodings(meta)

    def _in(self, role: str, t: torch.Tensor) -> torch.Tensor:
        return dequantize(self.enc[role], t)

    def _out(self, role: str, t: torch.Tensor) -> torch.Tensor:
        return quantize(self.enc[role], t)

    def __call__(self, x, cos, sin, mask, k_caches, v_caches):
        n = len(k_caches)
        args = [self._in(r, t) for r, t in zip(DECODER_INPUTS, (x, cos, sin, mask), strict=True)]
        ks = [self._in(f"k_{i}", t) for i, t in enumerate(k_caches)]
        vs = [self._in(f"v_{i}", t) for i, t in enumerate(v_caches)]
        logits, new_k, new_v = self.method(*args, ks, vs)
        return (self._out("logits", logits), [self._out(f"k_{i}", new_k[i]) for i in range(n)],
                [self._out(f"v_{i}", new_v[i]) for i in range(n)])


class IntegerOutput:
    """`token_embedding` / `vision_encoder` (fake-quant, fp32 output) returning its output as the
    lowered program does: integers at the method's output encoding (fp32 where it has none)."""

    def __init__(self, method: Callable[..., Any], encoding: Encoding | None) -> None:
        self.method, self.encoding = method, encoding

    def __call__(self, *args):
        return quantize(self.encoding, self.method(*args))


def integer_methods(methods: dict[str, Callable[..., Any]], meta: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """`methods` as the lowered program presents them when the metadata declares integer I/O: the
    decoder steps behind `IntegerIo`, `token_embedding` / `vision_encoder` behind `IntegerOutput`."""
    if not quantized(meta):
        return methods
    enc = runner_encodings(meta)
    wrap = {**dict.fromkeys(contract.DECODER_STEPS, lambda m: IntegerIo(m, meta)),
            **{k: (lambda m, r=r: IntegerOutput(m, enc[r])) for k, r in OUTPUT_ROLES.items()}}
    return {k: wrap[k](m) if k in wrap else m for k, m in methods.items()}


# ---- QNN lowering: the same tensors tagged for TagQuantIO ---------------------------------------------
_TORCH_DTYPES = {8: torch.uint8, 16: torch.uint16}


def tag_fn(meta: dict[str, Any], method: str, boundary: str | None = None) -> Callable[[torch.fx.Node],
                                                                                     torch.dtype | None]:
    """The `get_quant_io_dtype_fn` of QNN's `TagQuantIO` for `method` of this program: a decoder
    step's placeholders by name and outputs by position, and (as upstream) the tensors crossing a
    shard boundary (`boundary`, an op name) at the 16-bit I/O width; `token_embedding` /
    `vision_encoder`: their output."""
    from bluelm_edge.export.coverage import op_name

    enc = runner_encodings(meta)
    n = int(meta["get_n_layers"])
    out_roles = ["logits", *(f"k_{i}" for i in range(n)), *(f"v_{i}" for i in range(n))]
    if method in OUTPUT_ROLES:
        out_roles = [OUTPUT_ROLES[method]]
    io_bits = 16 if quantized(meta) else None  # the hidden state between shards, as upstream

    def role_of(node: torch.fx.Node) -> str | None:
        if node.op == "placeholder" and is_io_input(node.name) and method in contract.DECODER_STEPS:
            name = node.name
            return name.replace("_caches_", "_") if "_caches_" in name else name
        outputs = [u for u in node.users if u.op == "output"]
        if outputs:
            leaves = torch.utils._pytree.tree_leaves(outputs[0].args)
            return out_roles[leaves.index(node)] if leaves.index(node) < len(out_roles) else None
        return None

    def dtype(node: torch.fx.Node) -> torch.dtype | None:
        role = role_of(node)
        if role is not None and enc.get(role) is not None:
            return _TORCH_DTYPES[enc[role].bits]
        ops = [op_name(n) for n in (node, *node.users) if n.op == "call_function"]
        crosses = boundary is not None and boundary in ops
        return _TORCH_DTYPES[io_bits] if crosses and io_bits else None

    return dtype
