"""Every expectation in tests/vectors/runner_behaviour.json against ExecuTorch's own runner
(TextLLMRunner, and MultimodalRunner for the KV position) on the shared exported tiny bundle.

The Java model of LlmModule (android_demo/core RunnerModel) is tested on the same file
(test_java_core.py), so the model cannot drift from the runner. Upstream error codes are not
visible from Python (the bindings say "Generation failed"): the codes in the file come from the
upstream sources; the messages are asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import runner_scenarios as rs
from tests.runner_vectors import Greedy, byte_table, utf8_merge

pytestmark = pytest.mark.slow
VECTORS = Path(__file__).parent / "vectors" / "runner_behaviour.json"


def check_vectors(doc: dict, bundle: Path) -> list[str]:
    """The disagreements between the file and the real runner (empty when all hold)."""
    from tokenizers import Tokenizer

    bad: list[str] = []
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    table = byte_table(bundle / "tokenizer.json")
    lm = Greedy(bundle)
    for text, ids in doc["encode"].items():
        if tok.encode(text, add_special_tokens=False).ids != ids:
            bad.append(f"encode {text!r}")
    bad += [f"vocab {t}" for t, h in doc["vocab"].items() if table[int(t)].hex() != h]
    bad += [f"lm {ctx[-4:]}" for ctx, nxt in doc["lm"] if lm(ctx) != nxt]
    text_runner, mm_runner = rs.runner(bundle), rs.runner(bundle, "multimodal")
    for sc in doc["scenarios"]:
        bad += [f"{sc['name']}: {m}" for m in _check_scenario(sc, bundle, table, text_runner, mm_runner)]
    return bad


def _check_scenario(sc: dict, bundle: Path, table: dict, text_runner, mm_runner) -> list[str]:
    bad = []
    seen = rs.run_scenario(bundle, sc, "text", text_runner)
    for i, (call, got) in enumerate(zip(sc["calls"], seen, strict=True)):
        exp = call["expect"]
        if "error" in exp:
            if got.get("python_error") != exp["error"]["python"]:
                bad.append(f"call {i} error {got.get('python_error')}")
            continue
        if "tokens" not in exp:
            continue
        parts = [table[t] for t in exp["tokens"]]
        if utf8_merge(parts) != exp["pieces"]:
            bad.append(f"call {i} JNI pieces")
        decodable = []
        for p in parts:  # the runner passes each token's bytes: Python fails at the first lone byte
            try:
                decodable.append(p.decode("utf-8"))
            except UnicodeDecodeError:
                break
        if got["pieces"] != decodable or got.get("python_error") != exp.get("python_error"):
            bad.append(f"call {i} pieces {got['pieces']} {got.get('python_error')}")
        if "python_error" not in exp and (got["generated_tokens"], got["prompt_tokens"]) != (
                exp["generated_tokens"], exp["prompt_tokens"]):
            bad.append(f"call {i} stats {got['generated_tokens']} {got['prompt_tokens']}")
    final = sc["calls"][-1]["expect"]["pos"]
    ran = [c["expect"] for c in sc["calls"] if "generated_tokens" in c["expect"]]
    probed = rs.position_after(bundle, sc, mm_runner)  # Python aborts at a lone byte: no position then
    if len(sc["kv"]) != final or probed != (final if ran and "python_error" not in ran[-1] else None):
        bad.append(f"KV position (want {final})")
    return bad


@pytest.fixture(scope="module")
def bundle(fp32_export) -> Path:
    return fp32_export[0].out


def test_every_vector_expectation_holds_on_the_real_runner(bundle):
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    names = {s["name"] for s in doc["scenarios"]}
    assert names == {s["name"] for s in rs.SCENARIOS} and len(names) == 11
    assert check_vectors(doc, bundle) == []


def test_the_kv_scenario_tells_the_two_rules_apart(bundle):
    """Had the runner kept its last emitted token in the cache, the continuation would differ."""
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    sc = next(s for s in doc["scenarios"] if s["name"] == "last_token_left_out_of_kv_cache")
    first, second = (c["expect"] for c in sc["calls"])
    prompt = doc["encode"]["three sun !"] + first["tokens"]  # all three emitted tokens cached
    alt = Greedy(bundle)(prompt + doc["encode"][" red"])
    assert alt != second["tokens"][0]


@pytest.mark.java
def test_broken_vector_fails_both(bundle, tmp_path):
    """One broken expectation (the first-callback stop claimed to work) fails the real runner's
    check here and the Java model's JUnit test."""
    import shutil

    from tests.test_java_core import _broken_copy, break_runner_first_stop, compile_core, run_junit

    if shutil.which("javac") is None:
        pytest.skip("needs a JDK (scripts/install.sh)")
    case = _broken_copy(tmp_path, "runner_behaviour.json", break_runner_first_stop)
    doc = json.loads((tmp_path / "runner_behaviour.json").read_text(encoding="utf-8"))
    assert any(m.startswith(case) for m in check_vectors(doc, bundle))
    proc = run_junit(compile_core(tmp_path / "classes"), tmp_path, ["RunnerModelTest"])
    assert proc.returncode != 0 and case in proc.stdout


def test_chat_engine_vectors_are_the_bundles(bundle):
    """chat_engine.json (the Java engine's end-to-end cases) uses this bundle's real manifest app
    section, tokenizer bytes and tokenisation, and prompts rendered by the Python chat template."""
    from tokenizers import Tokenizer

    from bluelm_edge.text.chat import Message, render_text

    doc = json.loads((VECTORS.parent / "chat_engine.json").read_text(encoding="utf-8"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert doc["manifest"]["app"] == manifest["app"]
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    table = byte_table(bundle / "tokenizer.json")
    assert all(tok.encode(t, add_special_tokens=False).ids == ids for t, ids in doc["encode"].items())
    assert all(table[int(i)].hex() == h for i, h in doc["vocab"].items())
    assert doc["counter_vocab"] == [table[i].hex() for i in sorted(table)]
    think = manifest["app"]["tokens"]["think_start"]
    first = render_text([Message("user", "Hi")], think=True, add_generation_prompt=True) + think
    assert first in doc["encode"]  # the prompt the Java engine renders for a thinking answer


@pytest.mark.parametrize("which", ["tiny", "geometry"])
def test_an_image_tile_takes_tokens_per_tile_positions(which, request):
    """What the Java runner model encodes for prefillImage (RunnerModel.tileTokens = the manifest's
    tokens_per_tile): after one image input, MultimodalRunner's position (its stats' prompt_tokens)
    is tokens_per_tile + the text tokens; two images, twice that. Also at the real tile geometry
    (378-px tiles, 196 tokens a tile)."""
    import torch
    from executorch.extension.llm.runner import make_image_input, make_text_input
    from tokenizers import Tokenizer

    bundle = request.getfixturevalue("bundle") if which == "tiny" else request.getfixturevalue("geometry_export")[0].out
    app = json.loads((bundle / "manifest.json").read_text())["app"]
    n, size = app["image"]["tokens_per_tile"], app["image"]["tile_size"]
    assert which == "tiny" or (n, size) == (196, 378)
    text = len(Tokenizer.from_file(str(bundle / "tokenizer.json")).encode(" red", add_special_tokens=False).ids)
    r = rs.runner(bundle, "multimodal")
    tile = torch.zeros(3, size, size)
    for images in (1, 2):
        r.reset()
        stats: list = []
        inputs = [make_image_input(tile) for _ in range(images)] + [make_text_input(" red")]
        r.generate(inputs, rs.config(1), token_callback=lambda p: None, stats_callback=stats.append)
        assert stats[0].num_prompt_tokens == images * n + text
