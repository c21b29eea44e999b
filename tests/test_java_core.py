"""The Java core (android_demo/core) under JUnit on the shared vectors, and drift detection.

The JUnit tests read the same tests/vectors/*.json as the Python tests; a deliberately broken
vector must make BOTH the Java run and the Python implementation disagree with it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bluelm_edge.android.toolchain import JUNIT_JARS, ORG_JSON_JAR

pytestmark = [
    pytest.mark.java,
    pytest.mark.skipif(shutil.which("javac") is None or not all(p.is_file() for p in (*JUNIT_JARS, ORG_JSON_JAR)),
                       reason="needs a JDK, junit4 and libandroid-json-org-java (scripts/install.sh)"),
]

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "android_demo" / "core" / "src"
VECTORS = ROOT / "tests" / "vectors"
TEST_CLASSES = ["ThinkingBudgetTest", "TilingTest", "ChatTemplateTest", "GenerationStatsTest", "BundleManifestTest",
                "RunnerModelTest", "ChatEngineTest", "BenchmarkTest", "RunnerExceptionTest", "TemplateSegmentsTest",
                "LiveStatsTest", "BpeTokenizerTest", "StaticKvRunnerTest"]
N_TESTS = 39  # @Test methods in the thirteen classes


def compile_core(out: Path) -> str:
    """javac the core (Java 7) and its JUnit tests; returns the classpath to run them."""
    main, test = out / "main", out / "test"
    libs = [str(ORG_JSON_JAR), *map(str, JUNIT_JARS)]
    _javac(["--release", "7", "-Xlint:-options", "-cp", str(ORG_JSON_JAR), "-d", str(main)], CORE / "main")
    _javac(["-cp", ":".join([str(main), *libs]), "-d", str(test)], CORE / "test")
    return ":".join([str(main), str(test), *libs])


@pytest.fixture(scope="module")
def classpath(tmp_path_factory) -> str:
    return compile_core(tmp_path_factory.mktemp("java-core"))


def _javac(args: list[str], src: Path) -> None:
    files = sorted(str(p) for p in src.rglob("*.java"))
    proc = subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", *args, *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def run_junit(classpath: str, vectors: Path, classes: list[str] | None = None) -> subprocess.CompletedProcess:
    classes = [f"com.bluelm.edge.core.{c}" for c in classes or TEST_CLASSES]
    return subprocess.run(["java", f"-Dbluelm.vectors={vectors}", "-Dbluelm.vectors.strict=true", "-cp", classpath,
                           "org.junit.runner.JUnitCore", *classes], capture_output=True, text=True, timeout=120)


def test_core_passes_on_shared_vectors(classpath):
    for name in ("thinking_budget.json", "chat_template.json", "tiling.json", "runner_behaviour.json",
                 "chat_engine.json", "hf_chat_templates.json", "chat_engine_hub.json", "bpe_tokenizer.json",
                 "static_kv_runner.json"):
        assert (VECTORS / name).is_file(), f"{name} missing: strict mode would fail"
    proc = run_junit(classpath, VECTORS)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(rf"OK \({N_TESTS} tests\)", proc.stdout), proc.stdout[-500:]


def _broken_copy(tmp_path: Path, name: str, breaker) -> str:
    for f in VECTORS.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    doc = json.loads((tmp_path / name).read_text(encoding="utf-8"))
    case = breaker(doc)
    (tmp_path / name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return case


def break_runner_first_stop(doc: dict) -> str:
    """The vectors claim the first-callback stop works (1 piece instead of 8)."""
    sc = next(s for s in doc["scenarios"] if s["name"] == "stop_in_first_callback_is_ignored")
    exp = sc["calls"][0]["expect"]
    exp["tokens"], exp["pieces"] = exp["tokens"][:1], exp["pieces"][:1]
    return sc["name"]


def test_broken_runner_vector_fails_the_java_model(classpath, tmp_path):
    """The Python half (the real runner disagrees) is test_runner_behaviour.py::test_broken_vector_fails_both."""
    case = _broken_copy(tmp_path, "runner_behaviour.json", break_runner_first_stop)
    proc = run_junit(classpath, tmp_path, ["RunnerModelTest"])
    assert proc.returncode != 0 and case in proc.stdout, proc.stdout[-1500:]


def test_broken_engine_vector_fails_the_engine_test(classpath, tmp_path):
    def breaker(doc: dict) -> str:
        c = next(c for c in doc["cases"] if c["name"] == "user_stop_in_the_first_piece_is_repeated")
        c["expect"]["stops"] = 1  # as if one stop() were enough
        return c["name"]

    case = _broken_copy(tmp_path, "chat_engine.json", breaker)
    proc = run_junit(classpath, tmp_path, ["ChatEngineTest"])
    assert proc.returncode != 0 and case in proc.stdout, proc.stdout[-1500:]


def test_core_is_java7_bytecode(classpath):
    main = Path(classpath.split(":")[0])
    for cls in main.rglob("*.class"):
        major = int.from_bytes(cls.read_bytes()[6:8], "big")
        assert major == 51, f"{cls.name}: class file version {major}, dx needs 51 (Java 7)"


# ---- a broken vector fails both implementations ---------------------------------------------
def _break_thinking(doc: dict) -> str:
    case = next(c for c in doc["cases"] if c["name"] == "budget_2_forces_message_and_end")
    forced = next(e for e in case["emitted"] if e[1])
    forced[1] = False  # the budget message claimed as sampled
    return case["name"]


def _break_chat(doc: dict) -> str:
    case = next(c for c in doc["cases"] if c["name"] == "single_turn_prompt_think")
    case["text"] = case["text"].replace("[|BlueThink|]", "")
    return case["name"]


def _break_tiling(doc: dict) -> str:
    case = next(c for c in doc["cases"] if c["grid"] == [2, 2])
    case["grid"] = [2, 1]
    return f"{case['width']}x{case['height']}"


def _python_thinking_agrees(doc: dict) -> bool:
    from test_thinking import run_case

    return all(run_case(doc, c) == (c["emitted"], c["thinking_tokens"]) for c in doc["cases"])


def _break_segments(doc: dict) -> str:
    case = next(c for c in doc["cases"] if c["family"] == "smolvlm" and c["case"] == "two_images")
    case["expected"] = case["expected"].replace("User:<image>", "User: <image>")  # the text-first header
    return "smolvlm two_images"


def _python_segments_agree(doc: dict) -> bool:
    from datetime import datetime

    from bluelm_edge.text.segments import render

    return all(render(doc["segments"][c["template"]], c["turns"], think=c["variables"].get("enable_thinking", True),
                      add_generation_prompt=c["add_generation_prompt"],
                      now=datetime.fromisoformat(c["now"]) if "now" in c else None) == c["expected"]
               for c in doc["cases"])


def _python_chat_agrees(doc: dict) -> bool:
    from bluelm_edge.text.chat import Message, render_text

    def msgs(case):
        return [Message(m["role"], m["content"], images=[None] * m["n_images"], thinking=m["thinking"])
                for m in case["messages"]]

    return all(render_text(msgs(c), think=c["think"], add_generation_prompt=c["add_generation_prompt"],
                           image_tokens=c["image_tokens"]) == c["text"] for c in doc["cases"])


def _python_tiling_agrees(doc: dict) -> bool:
    from bluelm_edge.imaging import choose_grid, n_tiles

    for c in doc["cases"]:
        grid = choose_grid(c["width"], c["height"], c["max_tiles"], c["tile_size"])
        if list(grid) != c["grid"] or n_tiles(grid) != c["tiles"]:
            return False
    n = doc["normalise"]
    return all(math.isclose((v / 255 - m) / s, o, abs_tol=1e-5)
               for v, m, s, o in zip(n["pixel_in"], n["mean"], n["std"], n["pixel_out"], strict=True))


def _break_bpe(doc: dict) -> str:
    pytest.importorskip("tokenizers")
    from test_bpe_tokenizer_vectors import break_one_case

    return break_one_case(doc)  # one case's merged token spelled in single bytes: it decodes the same


def _python_bpe_agrees(doc: dict) -> bool:
    pytest.importorskip("tokenizers")
    from test_bpe_tokenizer_vectors import python_agrees

    return python_agrees(doc)


BREAKS = {
    "thinking_budget.json": (_break_thinking, _python_thinking_agrees),
    "chat_template.json": (_break_chat, _python_chat_agrees),
    "tiling.json": (_break_tiling, _python_tiling_agrees),
    "hf_chat_templates.json": (_break_segments, _python_segments_agree),
    "bpe_tokenizer.json": (_break_bpe, _python_bpe_agrees),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_python_agrees_with_intact_vectors(name):
    assert BREAKS[name][1](json.loads((VECTORS / name).read_text()))


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_broken_vector_fails_java_and_python(name, classpath, tmp_path):
    breaker, python_agrees = BREAKS[name]
    for f in VECTORS.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    doc = json.loads((tmp_path / name).read_text())
    case = breaker(doc)
    (tmp_path / name).write_text(json.dumps(doc))
    proc = run_junit(classpath, tmp_path)
    assert proc.returncode != 0
    assert re.search(r"Tests run: \d+,  Failures: 1\b", proc.stdout), proc.stdout[-1500:]
    assert case in proc.stdout  # the failing assertion names the broken case
    assert not python_agrees(doc)
