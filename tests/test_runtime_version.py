"""One runtime version end to end: the manifest's `runtime` section, the app's refusal (Java
RuntimeVersion and the Python contract on the same vectors), and runtime.json as the one pin."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bluelm_edge import contract
from bluelm_edge.android import runtime as rt
from bluelm_edge.android.toolchain import JUNIT_JARS, ORG_JSON_JAR, AndroidBuildError

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "android_demo" / "core" / "src"
VECTORS = ROOT / "tests" / "vectors"
DOC = json.loads((VECTORS / "runtime_version.json").read_text())
has_java = shutil.which("javac") is not None and all(p.is_file() for p in (*JUNIT_JARS, ORG_JSON_JAR))


def python_agrees(doc: dict) -> bool:
    if any(list(contract.release(v)) != want for v, want in doc["release"]):
        return False
    for bad in doc["not_versions"]:
        with pytest.raises(ValueError, match="is not a version"):
            contract.release(bad)
    return all(contract.runtime_refusal(c["bundle"], c["runtime"], c["carried"]) == c["refusal"]
               for c in doc["cases"]) and all(
        contract.runner_refusal(c["bundle"], c["runner"], c["graph_contract"], c["graph_io"]) == c["refusal"]
        for c in doc["runner_cases"])


def test_python_contract_on_the_vectors():
    assert python_agrees(DOC)
    refused = {c["name"] for c in DOC["cases"] if c["refusal"]}
    assert "newer_exporter_minor" in refused and "same_version" not in refused


def test_pin_is_the_exporters_version():
    """runtime.json pins executorch-android to the installed exporter's executorch wheel."""
    pinned = rt.carried_version()
    assert pinned == "1.5.1"
    assert contract.release(pinned) == contract.release(importlib.metadata.version("executorch"))


def test_gradle_reads_the_one_pin():
    demo = ROOT / "android_demo"
    root, app = (demo / "build.gradle").read_text(), (demo / "app" / "build.gradle").read_text()
    assert 'parse(file("runtime.json"))' in root and "executorchVersion = pinned.executorch" in root
    assert not re.search(r"executorch-android[\w-]*:\d", root + app)  # no second, literal version
    assert '"EXECUTORCH_VERSION"' in app and "executorchVersion" in app


def test_manifest_records_the_runtime(tmp_path):
    from bluelm_edge.export.bundle import build_manifest
    from bluelm_edge.model.config import tiny

    (tmp_path / "model.pte").write_bytes(b"x")
    m = build_manifest(tmp_path, cfg=tiny(), backend="xnnpack", soc=None, recipe="fp32",
                       lowered=True, vision_batch=1)
    version = importlib.metadata.version("executorch")
    assert m["runtime"] == {"executorch": version, "min_runtime": ".".join(map(str, contract.release(version)))}
    assert rt.requirement(m).refusal is None
    qnn = build_manifest(tmp_path, cfg=tiny(), backend="qnn", soc="SM8650", recipe="qnn-16a4w", lowered=True,
                         vision_batch=1)
    assert qnn["runtime"]["qnn_sdk"] is None  # QNN_SDK_ROOT is "" in tests: no SDK compiled it


def test_a_newer_exporters_bundle_is_refused():
    req = rt.requirement({"bundle_id": "b", "backend": "xnnpack",
                          "runtime": {"executorch": "1.6.0", "min_runtime": "1.6.0"}})
    assert req.refusal == ("bundle b needs ExecuTorch runtime 1.6.0 or newer (exported with executorch 1.6.0); "
                           "this app carries 1.5.1: rebuild the app with executorch 1.6.0 in "
                           "android_demo/runtime.json, or re-export with executorch==1.5.1")
    assert req.aar == "org.pytorch:executorch-android:1.5.1"


def test_runtime_json_is_validated(tmp_path):
    data = json.loads((ROOT / "android_demo" / "runtime.json").read_text())
    data["executorch"] = "latest"
    bad = tmp_path / "runtime.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(AndroidBuildError, match="executorch is not a version"):
        rt.load_runtime(bad)
    del data["flavours"]["mediatek"]
    data["executorch"] = "1.5.1"
    bad.write_text(json.dumps(data))
    with pytest.raises(AndroidBuildError, match="flavours.mediatek missing"):
        rt.load_runtime(bad)


# ---- the Java side on the same vectors ---------------------------------------------------------
@pytest.fixture(scope="module")
def classpath(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("java-runtime")
    main, test = out / "main", out / "test"
    libs = [str(ORG_JSON_JAR), *map(str, JUNIT_JARS)]
    for args, src in ((["--release", "7", "-Xlint:-options", "-cp", str(ORG_JSON_JAR), "-d", str(main)], CORE / "main"),
                      (["-cp", ":".join([str(main), *libs]), "-d", str(test)], CORE / "test")):
        files = sorted(str(p) for p in src.rglob("*.java"))
        proc = subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", *args, *files], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    return ":".join([str(main), str(test), *libs])


def run_junit(classpath: str, vectors: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["java", f"-Dbluelm.vectors={vectors}", "-Dbluelm.vectors.strict=true", "-cp", classpath,
                           "org.junit.runner.JUnitCore", "com.bluelm.edge.core.RuntimeVersionTest"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.java
@pytest.mark.skipif(not has_java, reason="needs a JDK, junit4 and libandroid-json-org-java (scripts/install.sh)")
def test_java_runtime_version_on_the_vectors(classpath):
    proc = run_junit(classpath, VECTORS)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "OK (4 tests)" in proc.stdout


@pytest.mark.java
@pytest.mark.skipif(not has_java, reason="needs a JDK, junit4 and libandroid-json-org-java (scripts/install.sh)")
@pytest.mark.parametrize("breaker", ["accept_newer", "message", "parse", "runner"])
def test_broken_vector_fails_java_and_python(breaker, classpath, tmp_path):
    doc = json.loads(json.dumps(DOC))
    if breaker == "accept_newer":
        next(c for c in doc["cases"] if c["name"] == "newer_exporter_patch")["refusal"] = None
    elif breaker == "message":
        case = next(c for c in doc["cases"] if c["name"] == "newer_exporter_minor")
        case["refusal"] = case["refusal"].replace("re-export with", "export with")
    elif breaker == "runner":
        next(c for c in doc["runner_cases"] if c["name"] == "static_kv_full")["refusal"] = None  # app "drives" it
    else:
        doc["release"][3][1] = [1, 6, 1]  # 1.6.0rc1 claimed to be 1.6.1
    (tmp_path / "runtime_version.json").write_text(json.dumps(doc))
    proc = run_junit(classpath, tmp_path)
    assert proc.returncode != 0 and re.search(r"Tests run: 4,  Failures: 1\b", proc.stdout), proc.stdout[-1500:]
    assert not python_agrees(doc)


def test_doctor_says_what_a_bundle_needs(tmp_path):
    from typer.testing import CliRunner

    from bluelm_edge.cli.main import app
    from bluelm_edge.export.bundle import write_bundle
    from tests.test_bundle import _args, _fill

    out = tmp_path / "b"
    manifest = write_bundle(out, _fill, {**_args(), "backend": "qnn", "soc": "SM8650"})
    res = CliRunner().invoke(app, ["doctor", str(out), "--json"], env={"QNN_SDK_ROOT": ""})
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)["runtime"]
    assert (info["app_executorch"], info["agree"]) == ("1.5.1", True)
    assert info["bundle"]["flavour"] == "qnn" and info["bundle"]["refusal"] is None
    assert info["bundle"]["needs"] == ["org.pytorch:executorch-android-qnn:1.5.1",
                                       "com.qualcomm.qti:qnn-runtime:2.37.0"]
    assert manifest["runtime"]["qnn_sdk"] is None  # no SDK here: the pinned qnn-runtime is the fallback
