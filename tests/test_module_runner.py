"""The app's adapters over ExecuTorch 1.5's Java API (android_demo/app ModuleRunner, ModuleProgram) under
JUnit, against test doubles of the 1.5 LlmModule, Module, EValue, Tensor and DType (tests/java/: same
members as stubs/api-list.txt, 1.5's failure behaviour) on an exported bundle's manifest and tokenizer:
error codes and one-line messages at create, load and generate, streamed pieces, the temperature
reaching generate, close while running; each tensor dtype both ways, constants, the refused output
dtypes; the KV caches handed over as direct buffers the program shares (no copy per call);
and a static-kv bundle end to end (ModuleRunner.engine -> StaticKvRunner -> ModuleProgram ->
Module) replaying tests/vectors/static_kv_runner.json's float variant."""

from __future__ import annotations

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
APP = ROOT / "android_demo" / "app" / "src" / "main" / "java" / "com" / "bluelm" / "edge" / "demo"
VECTORS = ROOT / "tests" / "vectors"
TESTS = ["com.bluelm.edge.demo.ModuleRunnerTest", "com.bluelm.edge.demo.ModuleProgramTest",
         "com.bluelm.edge.demo.StaticKvEngineTest"]


def test_module_runner_over_the_1_5_module(fp32_export, tmp_path):
    libs = [str(ORG_JSON_JAR), *map(str, JUNIT_JARS)]
    sources = [*sorted((ROOT / "android_demo" / "core" / "src" / "main").rglob("*.java")),
               APP / "ModuleRunner.java", APP / "ModuleProgram.java", APP / "Files.java",
               *sorted((ROOT / "tests" / "java").rglob("*.java"))]
    out = tmp_path / "classes"
    proc = subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", "-cp", ":".join(libs), "-d", str(out),
                           *map(str, sources)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    bundle = fp32_export[0].out
    proc = subprocess.run(["java", f"-Dbluelm.bundle={bundle}", f"-Dbluelm.vectors={VECTORS}",
                           "-cp", ":".join([str(out), *libs]), "org.junit.runner.JUnitCore", *TESTS],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OK (20 tests)" in proc.stdout, proc.stdout[-3000:]
