"""`bluelm-edge package`: an offline-built APK that verifies, parses and carries the bundle intact."""

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
from bluelm_edge.android.build import PACKAGE, PASSWORD_ENV, compile_stubs
from bluelm_edge.cli.main import app

pytestmark = [pytest.mark.java,
              pytest.mark.skipif(not android_build_capabilities()["offline"]["available"],
                                 reason="offline APK build tools missing (scripts/install.sh)")]


def make_bundle(root: Path) -> Path:
    """A minimal valid bundle per docs/contracts.md: files + manifest.json with sizes and sha256."""
    b = root / "bluelm-bundle"
    b.mkdir()
    (b / "model.pte").write_bytes(fake_pte(bytes(range(256)) * 40))
    (b / "tokenizer.json").write_text('{"version": "1.0"}')
    (b / "config.json").write_text('{"name": "bluelm-tiny"}')
    files = [{"path": p.name, "size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
             for p in sorted(b.iterdir())]
    manifest = {"schema_version": 1, "bundle_id": "bluelm-tiny-xnnpack-test", "model_id": "bluelm-tiny",
                "backend": "xnnpack", "soc": None, "recipe": "xnnpack-fp32", "lowered": True,
                "program": "model.pte", "created_by": "test", "files": files, "app": {}}
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
    assert meta.get(ns + "value").startswith("Offline build: no ExecuTorch native libraries")


def test_offline_apk_says_it_has_no_native_libs(built):
    with zipfile.ZipFile(built[1]) as z:
        info = json.loads(z.read("assets/bluelm-build.json"))
        assert not [n for n in z.namelist() if n.startswith("lib/")]
    assert info["build"] == "offline" and info["executorch_native_libs"] is False
    assert built[2].native_libs == [] and "no ExecuTorch native libraries" in built[2].note


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
                "Lcom/bluelm/edge/core/ThinkingBudget;", "Lcom/bluelm/edge/demo/R$id;"):
        assert cls.encode() in dex
    assert b"Landroid/widget/TextView;" in dex  # referenced, and ...
    assert b"Stub!" not in dex  # ... no stub body was dexed


@pytest.mark.slow
def test_cli_release_keystore_and_aar(tmp_path, monkeypatch):
    ks, password = tmp_path / "release.jks", "s3cret-pass-42"
    subprocess.run(["keytool", "-genkeypair", "-keystore", str(ks), "-storetype", "PKCS12", "-alias", "rel",
                    "-keyalg", "RSA", "-keysize", "2048", "-validity", "365", "-dname", "CN=BlueLM Release Test",
                    "-storepass:env", "P", "-keypass:env", "P"], check=True, env={**os.environ, "P": password},
                   capture_output=True)
    aar = fake_aar(tmp_path)
    monkeypatch.setenv(PASSWORD_ENV, password)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "rel.apk"
    res = CliRunner().invoke(app, ["package", "--out", str(out), "--keystore", str(ks), "--key-alias", "rel",
                                   "--executorch-aar", str(aar), "--json"])
    assert res.exit_code == 0, res.output
    assert password not in res.output
    result = json.loads(res.stdout)
    assert result["native_libs"] == ["lib/arm64-v8a/libexecutorch.so"] and result["signer"] == "release.jks:rel"
    certs = subprocess.run(["apksigner", "verify", "--print-certs", str(out)],
                           capture_output=True, text=True, check=True)
    assert "CN=BlueLM Release Test" in certs.stdout
    with zipfile.ZipFile(out) as z:
        assert z.read("lib/arm64-v8a/libexecutorch.so") == b"\x7fELF fake"
        assert json.loads(z.read("assets/bluelm-build.json"))["executorch_native_libs"] is True
        assert b"Lorg/pytorch/executorch/extension/llm/LlmModule;" in z.read("classes.dex")


def fake_aar(tmp: Path) -> Path:
    """An AAR-shaped zip: classes.jar (the stub ExecuTorch classes, Java 7) + one arm64 library."""
    demo = Path(__file__).resolve().parents[1] / "android_demo"
    stubs = compile_stubs(demo, tmp / "stub-classes")
    classes = tmp / "aar-classes"
    files = [str(p) for p in (demo / "stubs" / "src").rglob("LlmModule.java")]
    # LlmCallback has a default method (Java 8): ship LlmModule only, as dx reads Java 7
    subprocess.run(["javac", "-nowarn", "-Xlint:-options", "--release", "7", "-cp", str(stubs),
                    "-d", str(classes), *files], check=True, capture_output=True)
    jar, aar = tmp / "classes.jar", tmp / "executorch.aar"
    with zipfile.ZipFile(jar, "w") as z:
        for p in classes.rglob("*.class"):
            z.write(p, str(p.relative_to(classes)))
    with zipfile.ZipFile(aar, "w") as z:
        z.write(jar, "classes.jar")
        z.writestr("jni/arm64-v8a/libexecutorch.so", b"\x7fELF fake")
        z.writestr("AndroidManifest.xml", "<manifest/>")
    return aar


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
