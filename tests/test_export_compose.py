"""One lowering of the decoder: `forward` composed from the lowered `token_embedding` +
`text_decoder` (export/compose.py), and XNNPACK passes skipped where they have no work
(export/xnnpack_passes.py).

Composed `forward` must give bit-identical logits to `token_embedding` then `text_decoder` in the
ExecuTorch runtime, through prefill and cached decode, share their delegates (one copy of the
decoder's weights in the `.pte`) and their KV cache; skipping idle passes must leave the program
bytes unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

import pytest
import torch

from bluelm_edge import contract

pytestmark = pytest.mark.slow


def _program(path):
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(path.read_bytes())
    return getattr(program, "program", program)


def _load(path):
    from bluelm_edge.export.host import _runtime  # the runtime with our kernels and custom ops

    return _runtime().load_program(str(path))


def test_forward_equals_embedding_then_decoder(geometry_export):
    """Bit-identical logits through prefill and decode; the last step runs `text_decoder` in the
    program `forward` filled, so it also proves the methods share one KV cache."""
    pte = geometry_export[0].out / contract.MODEL_PTE
    a, b = _load(pte), _load(pte)
    forward, a_embed, a_decode = (a.load_method(m) for m in
                                  (contract.FORWARD, contract.TOKEN_EMBEDDING, contract.TEXT_DECODER))
    embed, decode = b.load_method(contract.TOKEN_EMBEDDING), b.load_method(contract.TEXT_DECODER)
    steps = [(torch.tensor([[1, 17, 40, 99, 7, 25, 3]]), torch.arange(7)),
             (torch.tensor([[12]]), torch.tensor([7])), (torch.tensor([[5]]), torch.tensor([8]))]
    for i, (ids, pos) in enumerate(steps):
        want = decode.execute([embed.execute([ids])[0], pos])[0]
        got = forward.execute([ids, pos])[0] if i < 2 else a_decode.execute([a_embed.execute([ids])[0], pos])[0]
        assert torch.equal(got, want), (i, (got - want).abs().max())


def test_forward_shares_the_decoders_delegates_and_cache(geometry_export):
    path = geometry_export[0].out / contract.MODEL_PTE
    program = _program(path)
    plans = {p.name: p for p in program.execution_plan}
    fwd, dec = plans[contract.FORWARD], plans[contract.TEXT_DECODER]
    blobs = program.backend_delegate_data

    def data(plan):
        return [bytes(blobs[d.processed.index].data) for d in plan.delegates]

    # the same lowered modules: identical XNNPACK graphs, whose weights are named data (stored once)
    assert len(fwd.delegates) == len(dec.delegates) > 0 and data(fwd) == data(dec)
    # what forward adds to the file is its copy of the graph descriptions only: < 2% of the file
    assert sum(map(len, data(fwd))) < 0.02 * path.stat().st_size


def _geometry_programs():
    from bluelm_edge.export.pipeline import ExportOptions, load_source
    from bluelm_edge.graphs import methods
    from bluelm_edge.graphs.forms import graph_source
    from bluelm_edge.quant.recipes import get_recipe
    from bluelm_edge.quant.xnnpack import quantize_xnnpack_

    model, config, _, _ = load_source(ExportOptions(preset="geometry"))
    methods.set_max_context(model, 256)
    quantize_xnnpack_(model, get_recipe("xnnpack-8da4w"))
    src = graph_source("xnnpack", model)
    names = [contract.VISION_ENCODER, contract.TEXT_DECODER]
    return (lambda: methods.export_methods(src, 256, 1, modules=methods.wrappers(src, names))), \
        contract.metadata(config, 256, 1), config


def test_idle_passes_and_the_vision_worker_change_nothing(tmp_path, monkeypatch):
    """Skipping idle passes: byte-identical. A failed worker: the parent lowers vision itself,
    byte-identical again. The worker's result: the same outputs in the runtime."""
    import bluelm_edge.export.xnnpack_passes as passes
    from bluelm_edge.export import lower_worker, lower_xnnpack

    programs, meta, config = _geometry_programs()
    skip = passes.skip_idle_passes
    monkeypatch.setattr(passes, "skip_idle_passes", contextlib.nullcontext)
    lower_xnnpack.lower(programs(), meta, tmp_path / "all_passes.pte", parallel=False)
    monkeypatch.setattr(passes, "skip_idle_passes", skip)
    lower_xnnpack.lower(programs(), meta, tmp_path / "skip.pte", parallel=False)
    assert lower_worker.worth_it(programs()[contract.VISION_ENCODER])
    lower_xnnpack.lower(programs(), meta, tmp_path / "worker.pte", parallel=True)
    with monkeypatch.context() as m:
        m.setattr(lower_worker, "_child", lambda *a: os._exit(1))
        lower_xnnpack.lower(programs(), meta, tmp_path / "fallback.pte", parallel=True)

    def digest(name):
        return hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()

    assert digest("all_passes.pte") == digest("skip.pte") == digest("fallback.pte")
    s = config.vision.image_size
    pixels = torch.randn(1, 3, s, s, generator=torch.Generator().manual_seed(0))
    embeds, pos = torch.randn(1, 5, config.decoder.dim, generator=torch.Generator().manual_seed(1)), torch.arange(5)
    outs = []
    for name in ("skip.pte", "worker.pte"):
        program = _load(tmp_path / name)
        outs.append((program.load_method(contract.VISION_ENCODER).execute([pixels])[0],
                     program.load_method(contract.TEXT_DECODER).execute([embeds, pos])[0]))
    assert all(torch.equal(a, b) for a, b in zip(*outs, strict=True))


def test_idle_pass_table():
    from bluelm_edge.export.xnnpack_passes import has_work

    assert not has_work("DecomposeConcatenate", {"aten.linear", "aten.mul"})
    assert has_work("DecomposeConcatenate", {"aten.cat"})
    assert has_work("ChannelsLastTaggedReshapePass", set())  # not in the table: always runs
