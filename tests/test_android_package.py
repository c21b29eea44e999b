"""`bluelm-edge package`: an offline-built APK that verifies, parses and carries the bundle intact;
the flavour follows the bundle's backend (offline: one line naming what it still needs; Gradle:
the flavour's task and artifacts, run through a stand-in gradlew)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from fake_program import fake_pte
from typer.testing import CliRunner

from bluelm_edge.android import AndroidBuildError, android_build_capabilities, package_apk
from bluelm_edge.android.build import PACKAGE, PASSWORD_ENV
from bluelm_edge.cli.main import app

pytestmark = [pytest.mark.java,
              pytest.mark.skipif(not android_build_capabilities()["offline"]["available"],
                                 reason="offline APK build tools missing (scripts/install.sh)")]


def make_bundle(root: Path, backend: str = "xnnpack", runtime: dict | None = None) -> Path:
    """A minimal valid bundle per docs/contracts.md: files + manifest.json with sizes and sha256."""
    b = root / f"bluelm-bundle-{backend}"
    b.mkdir()
    (b / "model.pte").write_bytes(fake_pte(bytes(range(256)) * 40))
    (b / "tokenizer.json").write_text('{"version": "1.0"}')
    (b / "config.json").write_text('{"name": "bluelm-tiny"}')
    files = [{"path": p.name, "size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
             for p in sorted(b.iterdir())]
    runtime = runtime or {"executorch": "1.5.1", "min_runtime": "1.5.1"}
    manifest = {"schema_version": 1, "bundle_id": f"bluelm-tiny-{backend}-test", "model_id": "bluelm-tiny",
                "backend": backend, "soc": None if backend == "xnnpack" else "SM8650", "recipe": f"{backend}-test",
                "lowered": True, "program": "model.pte", "created_by": "test", "files": files, "app": {},
                "runtime": runtime}
    (b / "manifest.json").write_text(json.dumps(manifest))
    return b


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("apk")
    bundle = make_bundle(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))  # the debug key goes here, not in ~
        result = package_apk(bundle, root / "app.apk", embed_bundle=True, offline=True)
    return bundle, Path(result.apk), result


def test_apksigner_verifies(built):
    proc = subprocess.run(["apksigner", "verify", "--verbose", str(built[1])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Verifies")
    assert re.search(r"v3 scheme \(APK Signature Scheme v3\): true", proc.stdout)


def test_aapt_badging(built):
    out = subprocess.run(["aapt", "dump", "badging", str(built[1])], capture_output=True, text=True, check=True).stdout
    assert f"package: name='{PACKAGE}' versionCode='1' versionName='0.1.0'" in out
    assert f"launchable-activity: name='{PACKAGE}.MainActivity'" in out
    assert "sdkVersion:'28'" in out and "targetSdkVersion:'34'" in out


def test_androguard_parses_manifest(built):
    from androguard.core.apk import APK

    apk = APK(str(built[1]))
    assert apk.get_package() == PACKAGE
    assert apk.get_main_activity() == f"{PACKAGE}.MainActivity"
    assert set(apk.get_activities()) == {f"{PACKAGE}.MainActivity", f"{PACKAGE}.BenchmarkActivity"}
    assert (apk.get_min_sdk_version(), apk.get_target_sdk_version()) == ("28", "34")
    meta = apk.get_android_manifest_xml().find(".//meta-data")
    ns = "{http://schemas.android.com/apk/res/android}"
    assert meta.get(ns + "name") == "com.bluelm.edge.BUILD"
    assert meta.get(ns + "value") == XNNPACK_LINE
    assert apk.get_attribute_value("application", "name") == ".DemoApplication"  # resolved against PACKAGE


XNNPACK_LINE = ("Offline build: UI only, no ExecuTorch native libraries. The xnnpack flavour still needs "
                "org.pytorch:executorch-android:1.5.1, fetched by Gradle from Maven Central; build with Gradle "
                "(ANDROID_HOME set).")


def test_offline_apk_says_it_has_no_native_libs(built):
    with zipfile.ZipFile(built[1]) as z:
        info = json.loads(z.read("assets/bluelm-build.json"))
        assert not [n for n in z.namelist() if n.startswith("lib/")]
    assert info == {"build": "offline", "executorch_native_libs": False, "note": XNNPACK_LINE, "version": "0.1.0",
                    "flavour": "xnnpack", "executorch": "1.5.1", "needs": ["org.pytorch:executorch-android:1.5.1"]}
    assert built[2].native_libs == [] and built[2].note == XNNPACK_LINE
    assert (built[2].flavour, built[2].executorch) == ("xnnpack", "1.5.1")


def test_embedded_bundle_is_byte_identical(built):
    bundle, apk, result = built
    with zipfile.ZipFile(apk) as z:
        for f in json.loads((bundle / "manifest.json").read_text())["files"]:
            data = z.read(f"assets/bundle/{f['path']}")
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert z.read("assets/bundle/manifest.json") == (bundle / "manifest.json").read_bytes()
    assert sorted(result.embedded_files) == ["config.json", "manifest.json", "model.pte", "tokenizer.json"]


def test_dex_holds_the_app_and_core(built):
    with zipfile.ZipFile(built[1]) as z:
        dex = z.read("classes.dex")
    for cls in ("Lcom/bluelm/edge/demo/MainActivity;", "Lcom/bluelm/edge/demo/BenchmarkActivity;",
                "Lcom/bluelm/edge/core/ThinkingBudget;", "Lcom/bluelm/edge/demo/R$id;",
                "Lcom/bluelm/edge/demo/DemoApplication;", "Lcom/bluelm/edge/core/RuntimeVersion;"):
        assert cls.encode() in dex
    assert b"Landroid/widget/TextView;" in dex  # referenced, and ...
    assert b"Stub!" not in dex  # ... no stub body was dexed


@pytest.mark.slow
def test_cli_release_keystore(tmp_path, monkeypatch):
    ks, password = tmp_path / "release.jks", "s3cret-pass-42"
    subprocess.run(["keytool", "-genkeypair", "-keystore", str(ks), "-storetype", "PKCS12", "-alias", "rel",
                    "-keyalg", "RSA", "-keysize", "2048", "-validity", "365", "-dname", "CN=BlueLM Release Test",
                    "-storepass:env", "P", "-keypass:env", "P"], check=True, env={**os.environ, "P": password},
                   capture_output=True)
    monkeypatch.setenv(PASSWORD_ENV, password)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "rel.apk"
    res = CliRunner().invoke(app, ["package", "--out", str(out), "--keystore", str(ks), "--key-alias", "rel",
                                   "--offline", "--json"])
    assert res.exit_code == 0, res.output
    assert password not in res.output
    result = json.loads(res.stdout)
    assert result["signer"] == "release.jks:rel" and result["flavour"] == "xnnpack"
    certs = subprocess.run(["apksigner", "verify", "--print-certs", str(out)],
                           capture_output=True, text=True, check=True)
    assert "CN=BlueLM Release Test" in certs.stdout


def test_executorch_aar_points_at_gradle(tmp_path):
    aar = tmp_path / "executorch.aar"
    aar.write_bytes(b"PK")
    res = cli("package", "--out", str(tmp_path / "a.apk"), "--executorch-aar", str(aar))
    assert res.returncode == 1 and "needs fbjni and soloader; build with Gradle" in res.stderr
    assert not (tmp_path / "a.apk").exists()


# ---- flavours per backend ---------------------------------------------------------------------
@pytest.mark.slow
def test_offline_qnn_and_mediatek_flavours(tmp_path, monkeypatch):
    from androguard.core.apk import APK

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    qnn = package_apk(make_bundle(tmp_path, "qnn", {"executorch": "1.5.1", "min_runtime": "1.5.1",
                                                    "qnn_sdk": "2.38.0"}), tmp_path / "qnn.apk", offline=True)
    assert qnn.note == ("Offline build: UI only, no ExecuTorch native libraries. The qnn flavour still needs "
                        "org.pytorch:executorch-android-qnn:1.5.1 + com.qualcomm.qti:qnn-runtime:2.38.0, fetched by "
                        "Gradle from Maven Central; qnn-runtime must be the QNN SDK version that compiled the bundle "
                        "(package passes it as -PqnnRuntimeVersion); build with Gradle (ANDROID_HOME set).")
    xml = APK(qnn.apk).get_android_manifest_xml()
    ns = "{http://schemas.android.com/apk/res/android}"
    lib = xml.find(".//application/uses-native-library")
    assert (lib.get(ns + "name"), lib.get(ns + "required")) == ("libcdsprpc.so", "false")
    with zipfile.ZipFile(qnn.apk) as z:
        assert json.loads(z.read("assets/bluelm-build.json"))["flavour"] == "qnn"
        assert b"qnn" in z.read("classes.dex")  # BuildConfig.FLAVOR, read by DemoApplication
    mtk = package_apk(make_bundle(tmp_path, "mediatek"), tmp_path / "mtk.apk", offline=True)
    assert mtk.flavour == "mediatek" and mtk.needs == ["app/libs/executorch-mediatek.aar"]
    assert mtk.note.startswith("Offline build: UI only, no ExecuTorch native libraries. The mediatek flavour still "
                               "needs app/libs/executorch-mediatek.aar with libneuron_backend.so, "
                               "libneuronusdk_adapter.mtk.so, libneuron_buffer_allocator.so, not on Maven: build it "
                               "with ExecuTorch v1.5.1's scripts/build_android_library.sh")
    assert mtk.note.count("\n") == 0 and "neuropilot.mediatek.com" in mtk.note
    assert APK(mtk.apk).get_android_manifest_xml().find(".//uses-native-library") is None


STAND_IN_GRADLEW = """#!/bin/sh
# records what `package` asked for and writes the flavour's APK where Gradle would
printf '%s\\n' "$@" > "$(dirname "$0")/gradle-args.txt"
echo "$BLUELM_KEY_ALIAS $BLUELM_EMBED_BUNDLE" > "$(dirname "$0")/gradle-env.txt"
for t in "$@"; do task="$t"; done
flavour=$(echo "$task" | sed -e 's/^assemble//' -e 's/Release$//' | tr 'A-Z' 'a-z')
out="$(dirname "$0")/app/build/outputs/apk/$flavour/release"
mkdir -p "$out" && printf 'apk of %s' "$flavour" > "$out/app-$flavour-release.apk"
"""


@pytest.fixture
def gradle_project(tmp_path, monkeypatch):
    """A copy of android_demo whose gradlew is a stand-in, and an SDK folder with android.jar."""
    import shutil

    from bluelm_edge.android import toolchain

    demo = tmp_path / "android_demo"
    shutil.copytree(toolchain.android_demo_dir(), demo, ignore=shutil.ignore_patterns("build", ".gradle"))
    (demo / "gradlew").write_text(STAND_IN_GRADLEW)
    (demo / "gradlew").chmod(0o755)
    sdk = tmp_path / "sdk" / "platforms" / "android-34"
    sdk.mkdir(parents=True)
    (sdk / "android.jar").write_bytes(b"PK")
    monkeypatch.setattr(toolchain, "android_demo_dir", lambda: demo)
    monkeypatch.setenv("ANDROID_HOME", str(tmp_path / "sdk"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return demo


@pytest.mark.parametrize("backend,task,props,needs", [
    ("xnnpack", "assembleXnnpackRelease", [], ["org.pytorch:executorch-android:1.5.1"]),
    ("qnn", "assembleQnnRelease", ["-PqnnRuntimeVersion=2.37.0"],
     ["org.pytorch:executorch-android-qnn:1.5.1", "com.qualcomm.qti:qnn-runtime:2.37.0"]),
    ("mediatek", "assembleMediatekRelease", [], ["app/libs/executorch-mediatek.aar"]),
])
def test_gradle_path_builds_the_bundles_flavour(gradle_project, tmp_path, backend, task, props, needs):
    if backend == "mediatek":
        (gradle_project / "app" / "libs").mkdir()
        (gradle_project / "app" / "libs" / "executorch-mediatek.aar").write_bytes(b"PK")
    bundle = make_bundle(tmp_path, backend)
    result = package_apk(bundle, tmp_path / "app.apk", embed_bundle=True)
    args = (gradle_project / "gradle-args.txt").read_text().split()
    assert args == ["--no-daemon", "-p", str(gradle_project), *props, task]
    assert (gradle_project / "gradle-env.txt").read_text().split() == ["androiddebugkey", str(bundle.resolve())]
    assert (tmp_path / "app.apk").read_text() == f"apk of {backend}"
    assert (result.build, result.flavour, result.needs) == ("gradle", backend, needs)


def test_gradle_mediatek_without_the_aar_says_what_and_where(gradle_project, tmp_path):
    with pytest.raises(AndroidBuildError) as err:
        package_apk(make_bundle(tmp_path, "mediatek"), tmp_path / "app.apk")
    assert str(err.value).startswith("the mediatek flavour needs android_demo/app/libs/executorch-mediatek.aar: "
                                     "not on Maven: build it with ExecuTorch v1.5.1's")
    assert not (gradle_project / "gradle-args.txt").exists() and not (tmp_path / "app.apk").exists()


def test_a_bundle_from_a_newer_exporter_is_refused(tmp_path):
    bundle = make_bundle(tmp_path, runtime={"executorch": "1.6.0", "min_runtime": "1.6.0"})
    res = cli("package", str(bundle), "--out", str(tmp_path / "a.apk"), "--offline")
    assert res.returncode == 1
    assert ("bundle bluelm-tiny-xnnpack-test needs ExecuTorch runtime 1.6.0 or newer (exported with executorch "
            "1.6.0); this app carries 1.5.1") in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr and not (tmp_path / "a.apk").exists()


def cli(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point (its one-line errors), in a fresh process."""
    import sys

    return subprocess.run([sys.executable, "-m", "bluelm_edge.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


# ---- errors (before any tool runs) ----------------------------------------------------------
def test_keystore_without_password_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    ks = tmp_path / "k.jks"
    ks.write_bytes(b"x")
    with pytest.raises(AndroidBuildError, match=PASSWORD_ENV):
        package_apk(None, tmp_path / "a.apk", keystore=ks, key_alias="a", offline=True)
    assert not (tmp_path / "a.apk").exists()


def test_embed_without_bundle_and_corrupt_bundle(tmp_path):
    with pytest.raises(AndroidBuildError, match="needs a bundle"):
        package_apk(None, tmp_path / "a.apk", embed_bundle=True, offline=True)
    bundle = make_bundle(tmp_path)
    (bundle / "model.pte").write_bytes(b"changed")
    with pytest.raises(AndroidBuildError, match="sha256 differs"):
        package_apk(bundle, tmp_path / "a.apk", embed_bundle=True, offline=True)


def test_capabilities(monkeypatch, tmp_path):
    monkeypatch.delenv("ANDROID_HOME", raising=False)
    monkeypatch.delenv("ANDROID_SDK_ROOT", raising=False)
    caps = android_build_capabilities()
    assert caps["offline"] == {**caps["offline"], "available": True, "missing": [], "runs_models": False}
    assert caps["gradle"]["available"] is False and caps["preferred"] == "offline"
    assert "ANDROID_HOME (an Android SDK)" in caps["gradle"]["missing"]
    monkeypatch.setenv("ANDROID_HOME", str(tmp_path))
    assert any("platforms/android-34" in m for m in android_build_capabilities()["gradle"]["missing"])
    monkeypatch.setenv("PATH", str(tmp_path))
    missing = android_build_capabilities()["offline"]["missing"]
    assert {"java", "javac", "aapt2", "apksigner", "zipalign", "keytool"} <= set(missing)


def test_no_signer_sidecar_and_our_apk_is_recognised(built, tmp_path):
    from bluelm_edge.android.build import is_our_apk

    _, apk, _ = built
    assert sorted(p.name for p in apk.parent.iterdir() if p.name.startswith((".app", "app"))) == ["app.apk"]
    assert is_our_apk(apk)  # so a rerun of `package --out app.apk` may replace it
    other = tmp_path / "other.apk"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("AndroidManifest.xml", b"com.example.other")
    assert not is_our_apk(other) and not is_our_apk(tmp_path)
