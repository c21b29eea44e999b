"""One lowered decoder for both runners: `forward` built from the lowered `text_decoder`.

ExecuTorch's `TextLLMRunner` calls `forward(tokens, positions)`; its `MultimodalRunner` calls
`token_embedding(tokens)` then `text_decoder(embeddings, positions)`. Exporting and lowering
`forward` on its own lowers the whole decoder a second time (about half of the export's lowering
time). Instead, `compose_forward` splices the two *lowered* edge programs into a third: the
embedding's graph feeds the decoder's graph, which keeps its XNNPACK delegates (the same lowered
modules, so the `.pte` carries their weights once) and its KV-cache buffers under the same names
(so `share_mutable_buffers` gives all three methods one cache). Nothing is traced or lowered again.

The two programs were exported separately, so the embedding's fake tensors belong to another
fake mode and another symbol for the sequence length; they are rebuilt in the decoder's mode,
with its sequence symbol (both methods take the same dynamic L).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import fx
from torch._guards import detect_fake_mode
from torch.export import ExportedProgram
from torch.export.exported_program import ModuleCallEntry, ModuleCallSignature
from torch.export.graph_signature import ExportGraphSignature, InputKind, InputSpec, TensorArgument

_STATE_KINDS = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR,
                InputKind.CUSTOM_OBJ, InputKind.TOKEN)


def _inputs(program: ExportedProgram) -> list[tuple[InputSpec, fx.Node]]:
    return list(zip(program.graph_signature.input_specs, program.graph.find_nodes(op="placeholder"), strict=True))


def _user_inputs(program: ExportedProgram) -> list[fx.Node]:
    return [n for s, n in _inputs(program) if s.kind == InputKind.USER_INPUT]


def _refaker(decoder_input: fx.Node) -> Callable[[Any], Any]:
    """Rebuild a fake value in the decoder's fake mode, its dynamic dims as the decoder's L."""
    val = decoder_input.meta["val"]
    seq, mode = val.shape[1], detect_fake_mode([val])

    def refake(v: Any) -> Any:
        if isinstance(v, torch.SymInt):
            return seq
        if isinstance(v, torch.Tensor):
            with mode:
                return torch.empty([seq if isinstance(d, torch.SymInt) else d for d in v.shape], dtype=v.dtype)
        if isinstance(v, (list, tuple)):
            return type(v)(refake(x) for x in v)
        return v

    return refake


class _Builder:
    """The new graph, its input specs and its root module, filled program by program."""

    def __init__(self) -> None:
        self.graph = fx.Graph()
        self.root = torch.nn.Module()
        self.specs: list[InputSpec] = []
        self.by_target: dict[tuple, fx.Node] = {}

    def placeholder(self, name: str, like: fx.Node, spec: InputSpec | None, refake: Callable | None) -> fx.Node:
        """A new placeholder like `like` (`spec` None: a user input)."""
        kind, target, persistent = (InputKind.USER_INPUT, None, None) if spec is None else \
            (spec.kind, spec.target, spec.persistent)
        key = (kind, target)
        if target is not None and key in self.by_target:  # the same state in both programs
            return self.by_target[key]
        new = self.graph.placeholder(name)
        new.meta = copy.copy(like.meta)
        if refake is not None and "val" in new.meta:
            new.meta["val"] = refake(new.meta["val"])
        if target is not None:
            self.by_target[key] = new
        self.specs.append(InputSpec(kind, TensorArgument(new.name), target, persistent))
        return new

    def copy_body(self, program: ExportedProgram, env: dict, refake: Callable | None) -> Any:
        """Copy `program`'s nodes after its placeholders; returns its output's (mapped) args."""
        for node in program.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                return fx.node.map_arg(node.args[0], lambda n: env[n])
            if node.op == "get_attr":
                setattr(self.root, node.target, getattr(program.graph_module, node.target))
            env[node] = self.graph.node_copy(node, lambda n: env[n])
            if refake is not None and "val" in env[node].meta:
                env[node].meta["val"] = refake(env[node].meta["val"])
        raise ValueError("program has no output node")


def compose_forward(embedding: ExportedProgram, decoder: ExportedProgram) -> ExportedProgram:
    """`forward(tokens, positions)` = `decoder(embedding(tokens), positions)`, from the two lowered
    edge programs (their graphs, delegates and state shared, not copied)."""
    tokens, = _user_inputs(embedding)
    embeds, positions = _user_inputs(decoder)
    refake = _refaker(embeds)
    b, env_e, env_d = _Builder(), {}, {}
    pairs = [(s, n, env_e, refake) for s, n in _inputs(embedding)]
    pairs += [(s, n, env_d, None) for s, n in _inputs(decoder)]
    taken: set[str] = set()
    for kind in _STATE_KINDS:  # state placeholders first, grouped by kind, as torch.export orders them
        for spec, node, env, fake in pairs:
            if spec.kind == kind:
                name = node.name if node.name not in taken else f"{node.name}_emb"
                env[node] = b.placeholder(name, node, spec, fake)
                taken.add(env[node].name)
    env_e[tokens] = b.placeholder("tokens", tokens, None, refake)
    env_d[positions] = b.placeholder(positions.name, positions, None, None)
    env_d[embeds] = b.copy_body(embedding, env_e, refake)[0]
    outputs = b.copy_body(decoder, env_d, None)
    b.graph.output(outputs)
    gm = fx.GraphModule(b.root, b.graph)
    out_specs = [copy.copy(s) for s in decoder.graph_signature.output_specs]
    for spec, node in zip(out_specs, outputs, strict=True):
        spec.arg = TensorArgument(node.name)
    return ExportedProgram(
        root=gm, graph=gm.graph, graph_signature=ExportGraphSignature(b.specs, out_specs),
        state_dict={**embedding.state_dict, **decoder.state_dict},
        range_constraints={**embedding.range_constraints, **decoder.range_constraints},
        module_call_graph=_call_graph(decoder, env_e[tokens].name, env_d[positions].name),
        example_inputs=None, constants={**embedding.constants, **decoder.constants},
        verifiers=decoder.verifiers)


def _call_graph(decoder: ExportedProgram, tokens: str, positions: str) -> list[ModuleCallEntry]:
    old = decoder.module_call_graph[0].signature
    sig = ModuleCallSignature(inputs=[TensorArgument(tokens), TensorArgument(positions)],
                              outputs=copy.deepcopy(old.outputs), in_spec=old.in_spec, out_spec=old.out_spec,
                              forward_arg_names=[tokens, positions])
    return [ModuleCallEntry("", sig), *decoder.module_call_graph[1:]]
