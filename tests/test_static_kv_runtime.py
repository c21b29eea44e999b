"""The app's Java `StaticKvRunner` (android_demo/core) on real static-KV `.pte` files in ExecuTorch's
runtime, served to the JVM by tests/static_kv_bridge.py through the runtime's Python bindings:
- `float`: the stand-in's static prefill/decode/token_embedding/vision_encoder program (fp32 graph
  I/O, lowered to XNNPACK, context 64, chunk 16);
- `kv`: the QNN export of the tiny preset (`--graph-io kv`: uint8 KV caches in and out) as a CPU
  `.pte` (`export/static_pte.py`: portable + quantized kernels, weight dequantization folded).
Greedy pieces: the Java runner's equal the Python runner's (`NpuDecoder` under LlmModule's
behaviour, `static_kv_vectors.drive`) on the same file through the same runtime, which equal the
Python runner's on the graphs before lowering (the fake-quant graphs for `kv`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import static_kv_vectors as skv
import torch

from bluelm_edge import contract
from bluelm_edge.export import lower_xnnpack
from bluelm_edge.export.npu_host import NpuDecoder
from bluelm_edge.paths import DEFAULT_MODEL_DIR
from bluelm_edge.text.tokenizer import Tokenizer

pytestmark = [pytest.mark.java, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (scripts/install.sh)")]
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = [{"call": "generate", "text": "[|Human|]: What is 530+627?[|AI|]:", "seq_len": 60},
          {"call": "resetContext"},
          {"call": "prefillPrompt", "text": "[|Human|]: <im_start>"},
          {"call": "prefillImage", "size": 64},
          {"call": "generate", "text": "<im_end> What is 17+25?[|AI|]:", "seq_len": 56, "stop_after": 4}]


@pytest.fixture(scope="module", params=["float", "kv"])
def program(request, tmp_path_factory):
    """(.pte, {method: callable graph before lowering}, metadata) of one variant."""
    pte = tmp_path_factory.mktemp("static-kv") / "static.pte"
    if request.param == "float":
        eps, meta = skv.float_exported()
        lower_xnnpack.lower(eps, meta, pte, parallel=False)
        return pte, {k: ep.module() for k, ep in eps.items()}, meta
    from bluelm_edge.export import archive, quant_io, static_pte

    out, _ = request.getfixturevalue("qnn_bundle")
    programs, info = archive.load_programs(out / contract.PROGRAM_PT2)
    meta = info["constants"]
    assert meta["get_kv_io_bit_width"] == 8 and meta["get_logits_bit_width"] == 32
    static_pte.write_cpu_pte(programs, meta, pte)
    return pte, quant_io.integer_methods({k: p.module() for k, p in programs.items()}, meta), meta


def runtime_methods(pte: Path) -> dict:
    """The program's methods through ExecuTorch's runtime, shaped as `NpuDecoder` calls them."""
    from executorch.runtime import Runtime

    prog = Runtime.get().load_program(pte)
    loaded = {name: prog.load_method(name) for name in contract.NPU_METHODS}

    def method(name):
        def call(*args):
            flat = [a for arg in args for a in (arg if isinstance(arg, list) else [arg])]
            outs = loaded[name].execute(flat)
            if name in contract.DECODER_STEPS:
                n = (len(outs) - 1) // 2
                return outs[0], list(outs[1:1 + n]), list(outs[1 + n:])
            return outs[0]
        return call

    return {name: method(name) for name in loaded}


def steps(results: list) -> list:
    return [{k: r[k] for k in ("prompt_tokens", "generated_tokens", "pieces")} for r in results if "pieces" in r]


@torch.no_grad()
def test_java_runner_on_the_runtime_equals_the_python_runner(program, tmp_path):
    from test_java_core import compile_core

    pte, graphs_methods, meta = program
    tokenizer = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
    eos = set(meta["get_eos_ids"])
    on_runtime = steps(skv.drive(NpuDecoder(runtime_methods(pte), meta), tokenizer, SCRIPT, eos))
    graphs = steps(skv.drive(NpuDecoder(graphs_methods, meta), tokenizer, SCRIPT, eos))
    assert on_runtime == graphs
    assert [len(s["pieces"]) for s in graphs] == [s["generated_tokens"] + 1 for s in graphs]
    assert len(graphs[1]["pieces"]) == 4  # the stop in the 4th callback

    (tmp_path / "script.json").write_text(json.dumps(SCRIPT))
    classpath = compile_core(tmp_path / "classes")
    args = [sys.executable, ROOT / "tests" / "static_kv_bridge.py", pte, DEFAULT_MODEL_DIR / "tokenizer.json",
            tmp_path / "script.json", tmp_path / "java.json"]
    proc = subprocess.run(["java", "-cp", classpath, "com.bluelm.edge.core.StaticKvRuntimeMain", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    java = steps(json.loads((tmp_path / "java.json").read_text()))
    assert java == on_runtime
