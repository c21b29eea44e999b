"""Quantized graph I/O of the QNN static program (`bluelm_edge/export/quant_io.py`): the decoder steps take and
return integers, by `--graph-io` mode: `kv` (the default) the 8-bit KV cache, `full` also 16-bit
embeddings, mask, RoPE rows and logits as upstream's Qualcomm Llama does. The host runner drives
them through that contract with logits bit-identical to the fake-quant graphs' own fp32 I/O, and
QNN's lowering passes keep exactly those tensors quantized across the HTP boundary."""

from __future__ import annotations

import json

import pytest
import torch

from bluelm_edge import contract
from bluelm_edge.export import archive, lower_qnn, quant_io
from bluelm_edge.export.npu_host import NpuDecoder


def _programs(qnn_bundle, mode=None):
    """The bundle's programs and metadata (its own: `--graph-io kv`), or the metadata of graph-I/O
    `mode` over the same graphs (the modes differ only in which encodings the metadata keeps)."""
    out, _ = qnn_bundle
    programs, info = archive.load_programs(out / contract.PROGRAM_PT2)
    meta = info["constants"]
    if mode is not None:
        meta = {**meta, **quant_io.metadata(quant_io.select(quant_io.encodings(programs), mode))}
    return programs, meta


def test_the_program_declares_one_encoding_per_io_tensor(qnn_bundle):
    """Both steps agree on every I/O encoding; the caches are 8-bit and the new entries leave at their
    cache's encoding (the runner stores the bytes); in `full` the rest is 16-bit (the mask's two
    values exact), in the bundle's own `kv` mode fp32."""
    programs, own = _programs(qnn_bundle)
    assert own["get_kv_io_bit_width"] == 8 and [own[f"get_{r}_bit_width"] for r in contract.NPU_IO_ROLES] == [32] * 7
    assert json.loads((qnn_bundle[0] / "manifest.json").read_text())["graph_io"] == "kv"
    _, meta = _programs(qnn_bundle, "full")
    assert own["get_kv_scales"] == meta["get_kv_scales"] and own["get_kv_zero_points"] == meta["get_kv_zero_points"]
    enc = quant_io.encodings(programs)
    n = int(meta["get_n_layers"])
    assert meta["get_graph_contract_version"] == 2 and meta["get_kv_io_bit_width"] == 8
    assert [meta[f"get_{r}_bit_width"] for r in contract.NPU_IO_ROLES] == [16] * 7
    assert len(meta["get_kv_scales"]) == len(meta["get_kv_zero_points"]) == 2 * n
    for i in range(n):
        assert enc[f"k_new_{i}"] == enc[f"k_caches_{i}"] and enc[f"k_caches_{i}"].bits == 8
        assert meta["get_kv_scales"][i] == enc[f"k_caches_{i}"].scale
        assert meta["get_kv_zero_points"][n + i] == enc[f"v_caches_{i}"].zero_point
    mask = quant_io.runner_encodings(meta)["mask"]
    q = mask.quantize(torch.tensor([0.0, float(meta["get_mask_value"])]))
    assert q.tolist() == [65535, 0] and mask.dequantize(q).tolist() == [0.0, float(meta["get_mask_value"])]


@pytest.mark.parametrize("mode", ["full", "kv"])
@torch.no_grad()
def test_integer_io_runner_equals_the_fake_quant_graphs(qnn_bundle, mode):
    """The runner quantizing its inputs and keeping a uint8 cache gives the same logits, bit for bit,
    as feeding the same graphs fp32 (which quantize at their edges), through 3 prefill chunks (the
    last padded) and 5 decode steps; its cache is a quarter of the fp32 one."""
    programs, meta = _programs(qnn_bundle, mode)
    fp32_io = {**meta, **quant_io.fp32_metadata(int(meta["get_n_layers"]))}
    ints, floats = NpuDecoder.from_programs(programs, meta), NpuDecoder.from_programs(programs, fp32_io)
    assert isinstance(ints.methods[contract.DECODE], quant_io.IntegerIo)
    pad = torch.zeros(1, int(meta["get_prefill_chunk"]), dtype=torch.long)
    want = torch.int32 if mode == "full" else torch.float32  # 16-bit codes leave the method, or fp32
    assert ints.methods[contract.TOKEN_EMBEDDING](pad).dtype == want
    assert ints.k_cache[0].dtype == torch.uint8 and floats.k_cache[0].dtype == torch.float32
    vocab = int(meta["get_vocab_size"])
    ids = torch.randint(11, vocab, (1, 40), generator=torch.Generator().manual_seed(3))
    emb = ints.token_embedding(ids)
    assert torch.equal(emb, floats.token_embedding(ids))
    size = int(meta["get_tile_size"])
    tile = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(4))
    assert torch.equal(ints.vision_encoder(tile), floats.vision_encoder(tile))
    a, b = ints.text_decoder(emb, torch.arange(40)), floats.text_decoder(emb, torch.arange(40))
    assert ints.calls[contract.PREFILL] == 3 and torch.equal(a, b)
    for step in range(5):
        nxt = ints.token_embedding(a.argmax(-1, keepdim=True))
        a, b = ints.text_decoder(nxt, torch.tensor([40 + step])), floats.text_decoder(nxt, torch.tensor([40 + step]))
        assert torch.equal(a, b)
    held = lambda r: sum(t.numel() * t.element_size() for t in (*r.k_cache, *r.v_cache))
    assert held(floats) == 4 * held(ints)
    stored = ints.k_cache[0][0, :, :45]  # what the graph returned, stored as returned
    assert torch.equal(quant_io.runner_encodings(meta)["k_0"].dequantize(stored), floats.k_cache[0][0, :, :45])


def _tags(ep):
    from executorch.backends.qualcomm.utils.constants import QCOM_QUANTIZED_IO

    q_ops = ("quantized_decomposed.quantize_per_tensor", "quantize_per_tensor")
    inputs = {n.name: (n.meta.get(QCOM_QUANTIZED_IO), any(any(q in str(u.target) for q in q_ops) for u in n.users))
              for n in ep.graph.nodes if n.op == "placeholder" and quant_io.is_io_input(n.name)}
    outs = list(ep.graph.nodes)[-1].args[0]
    return inputs, [o.meta.get(QCOM_QUANTIZED_IO) for o in outs]


def test_qnn_passes_keep_the_tagged_io_quantized(qnn_bundle):
    """After QNN's to-edge and preprocess passes (what runs right before the SDK), every decoder I/O
    tensor is tagged with its integer dtype and gets no quantize node: it crosses the boundary as
    integers (`full`). With `kv` only the caches and new entries are; with the fp32 I/O metadata
    (`--graph-io float`) nothing is tagged and each input is quantized inside the graph."""
    programs, meta = _programs(qnn_bundle, "full")
    decode = {contract.DECODE: programs[contract.DECODE]}
    n = int(meta["get_n_layers"])
    edge = lower_qnn.preprocess(lower_qnn.edge_programs(decode, "SM8650", n, 1, meta))[contract.DECODE]
    inputs, outputs = _tags(edge)
    assert len(inputs) == 4 + 2 * n
    for name, (dtype, quantized_inside) in inputs.items():
        want = torch.uint8 if "_caches_" in name else torch.uint16
        assert dtype == want and not quantized_inside, name
    assert outputs == [torch.uint16] + [torch.uint8] * (2 * n)
    _, kv = _programs(qnn_bundle)
    inputs, outputs = _tags(lower_qnn.preprocess(lower_qnn.edge_programs(decode, "SM8650", n, 1, kv))[contract.DECODE])
    assert {k: v for k, v in inputs.items() if "_caches_" in k} == {k: (torch.uint8, False) for k in inputs
                                                                 if "_caches_" in k}
    assert all(inputs[r] == (None, True) for r in quant_io.DECODER_INPUTS)
    assert outputs == [None] + [torch.uint8] * (2 * n)
    fp32_io = {**meta, **quant_io.fp32_metadata(n)}
    plain = lower_qnn.preprocess(lower_qnn.edge_programs(decode, "SM8650", n, 1, fp32_io))[contract.DECODE]
    inputs, outputs = _tags(plain)
    assert all(dtype is None and inside for dtype, inside in inputs.values())
    assert outputs == [None] * (1 + 2 * n)
    others = {k: programs[k] for k in (contract.TOKEN_EMBEDDING, contract.VISION_ENCODER)}
    for name, ep in lower_qnn.edge_programs(others, "SM8650", n, 1, meta).items():
        assert _tags(ep)[1] == [torch.uint16], name  # the embeddings leave the HTP as 16-bit codes


def test_shard_boundaries_cross_at_the_io_width(qnn_bundle):
    """Cut in 2 shards, the tensors entering the boundary op are tagged 16-bit as upstream does, so
    the hidden state passes between HTP contexts quantized."""
    from executorch.backends.qualcomm.utils.constants import QCOM_QUANTIZED_IO

    from bluelm_edge.export import coverage, shards

    programs, meta = _programs(qnn_bundle)
    n = int(meta["get_n_layers"])
    edge = lower_qnn.edge_programs({contract.DECODE: programs[contract.DECODE]}, "SM8650", n, 2, meta)
    cuts = [x for x in edge[contract.DECODE].graph.nodes
            if x.op == "call_function" and coverage.op_name(x) == shards.FALLBACK]
    assert cuts and all(x.meta.get(QCOM_QUANTIZED_IO) == torch.uint16 for x in cuts)
    assert all(a.meta.get(QCOM_QUANTIZED_IO) == torch.uint16 for x in cuts for a in x.args
               if isinstance(a, torch.fx.Node))


def test_io_metadata_is_a_valid_program_method(tmp_path):
    """The encodings as constant methods (floats, ints, lists of both) emit into a `.pte` and read back
    through ExecuTorch's runtime with the values written."""
    from executorch.exir import to_edge
    from executorch.runtime import Runtime

    io = quant_io.metadata({"embeds": quant_io.Encoding(1.5e-5, 31571, 16),
                            "k_caches_0": quant_io.Encoding(0.0799, 135, 8),
                            "v_caches_0": quant_io.Encoding(0.0731, 122, 8)})
    ep = torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),))
    pte = tmp_path / "m.pte"
    pte.write_bytes(to_edge(ep, constant_methods=io).to_executorch().buffer)
    program = Runtime.get().load_program(pte)
    read = {k: program.load_method(k).execute([]) for k in io}
    assert read["get_embeds_bit_width"] == [16] and read["get_embeds_zero_point"] == [31571]
    assert abs(read["get_embeds_scale"][0] - 1.5e-5) < 1e-12
    assert read["get_kv_io_bit_width"] == [8] and read["get_logits_bit_width"] == [32]
    assert read["get_kv_zero_points"] == [135, 122] and abs(read["get_kv_scales"][1] - 0.0731) < 1e-9


def test_run_drives_a_qnn_bundle_on_the_host(qnn_bundle):
    """`bluelm-edge run` on a lowering-ready QNN bundle answers through the host NPU runner over its
    program.pt2 (integer I/O, weight dequantization folded): the same greedy tokens as the plain,
    unfolded graphs; `--profile` there is one line (no ETDump without a .pte)."""
    import json

    from typer.testing import CliRunner

    from bluelm_edge.cli.main import app
    from bluelm_edge.export.bundle import BundleError
    from bluelm_edge.export.host import load_bundle_parts
    from bluelm_edge.generate import Sampling
    from bluelm_edge.session import ChatSession

    out, _ = qnn_bundle
    res = CliRunner().invoke(app, ["run", str(out), "--prompt", "What is 530+627?", "--max-new-tokens", "24",
                                   "--json"], env={"QNN_SDK_ROOT": ""})
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["tokens"]
    _, tokenizer, config, chat, images = load_bundle_parts(out)
    plain = ChatSession(NpuDecoder.from_archive(out / contract.PROGRAM_PT2), tokenizer, config, chat, images)
    want = plain.ask("What is 530+627?", budget=config.default_thinking_budget,
                     sampling=Sampling(max_new_tokens=24)).tokens
    assert got == want and len(got) > 0
    res = CliRunner().invoke(app, ["run", str(out), "--prompt", "hi", "--profile"], env={"QNN_SDK_ROOT": ""})
    assert isinstance(res.exception, BundleError) and "--profile times a .pte" in str(res.exception)  # one line
