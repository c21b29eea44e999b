"""The app's static-KV runner contract on shared vectors (tests/vectors/static_kv_runner.json, written
by tests/static_kv_vectors.py from a QNN export with `--graph-io kv` and the stand-in's fp32 static
graphs): the Python runner (`NpuDecoder` under LlmModule's behaviour) replayed on the recorded
outputs sends exactly the recorded inputs and streams the recorded pieces, as the Java
`StaticKvRunner` must (StaticKvRunnerTest, run by test_java_core.py); a broken vector fails both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import static_kv_vectors as skv
import torch

from bluelm_edge.export.npu_host import NpuDecoder
from bluelm_edge.text.tokenizer import Tokenizer

DOC = json.loads(skv.OUT.read_text())


def python_agrees(doc: dict) -> bool:
    tokenizer = Tokenizer.from_json_str(json.dumps(doc["tokenizer"]))
    for v in doc["variants"]:
        replay = skv.Replay(v["calls"])
        try:
            with torch.no_grad():
                got = skv.drive(NpuDecoder(replay.methods, v["metadata"]), tokenizer, v["script"],
                                set(v["metadata"]["get_eos_ids"]))
        except AssertionError:
            return False
        if got != v["results"] or replay.at != len(v["calls"]):
            return False
    return True


def test_python_runner_replays_the_vectors():
    kinds = {v["name"]: v for v in DOC["variants"]}
    assert sorted(kinds) == ["float", "kv"]
    bits = {name: v["metadata"]["get_kv_io_bit_width"] for name, v in kinds.items()}
    assert bits == {"kv": 8, "float": 32}
    methods = {c["method"] for v in DOC["variants"] for c in v["calls"]}
    assert methods == {"token_embedding", "vision_encoder", "prefill", "decode"}
    assert any(c["inputs"][4]["dtype"] == "uint8" for c in kinds["kv"]["calls"] if c["method"] == "decode")
    generated = [r for v in DOC["variants"] for r in v["results"] if "pieces" in r]
    assert all(r["generated_tokens"] > 0 for r in generated)
    assert python_agrees(DOC)


def break_cache_update(doc: dict) -> None:
    """Claim the second prefill chunk was sent another cache (as if the first chunk's rows were stored wrong)."""
    calls = doc["variants"][0]["calls"]
    later = [c for c in calls if c["method"] in ("prefill", "decode")][1]
    later["inputs"][4]["sha256"] = "0" * 64


def break_pieces(doc: dict) -> None:
    """Claim the stop in the third callback came one piece later."""
    step = next(r for r in doc["variants"][1]["results"] if r.get("pieces"))
    step["pieces"] = step["pieces"][:-1]


@pytest.mark.java
@pytest.mark.parametrize("breaker", [break_cache_update, break_pieces])
def test_broken_vector_fails_java_and_python(breaker, tmp_path):
    from test_java_core import compile_core, run_junit

    if shutil.which("javac") is None:
        pytest.skip("needs a JDK")
    doc = json.loads(json.dumps(DOC))
    breaker(doc)
    for f in Path(skv.OUT).parent.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / skv.OUT.name).write_text(json.dumps(doc))
    proc = run_junit(compile_core(tmp_path / "classes"), tmp_path, ["StaticKvRunnerTest"])
    assert proc.returncode != 0 and "Failures: 1" in proc.stdout, proc.stdout[-2000:]
    assert not python_agrees(doc)
