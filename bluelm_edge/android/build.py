"""Build and sign the demo APK: Gradle (with an Android SDK) or offline with Debian's tools.

The offline build (no SDK): aapt2 against the framework resources, javac --release 7 against the
compile-only stubs in android_demo/stubs, dx, zipalign, apksigner. It carries no ExecuTorch
native libraries (recorded in the manifest <meta-data> and in assets/bluelm-build.json) unless
`--executorch-aar` puts an AAR's classes and jni/arm64-v8a libraries in. Keystore passwords come
only from BLUELM_KEYSTORE_PASSWORD or a prompt, and reach keytool/apksigner through the
environment, never through argv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bluelm_edge.android import toolchain as tc
from bluelm_edge.android.toolchain import AndroidBuildError
from bluelm_edge.io import atomic_path, check_output_file, sha256_file

PACKAGE = "com.bluelm.edge.demo"
VERSION_NAME, VERSION_CODE = "0.1.0", 1
MIN_SDK, TARGET_SDK = 28, 34
PASSWORD_ENV = "BLUELM_KEYSTORE_PASSWORD"
DEBUG_ALIAS, DEBUG_PASSWORD = "androiddebugkey", "android"  # Android's public debug-key convention
OFFLINE_NOTE = ("Offline build: no ExecuTorch native libraries. It installs and shows its UI but cannot "
                "run a model; build with Gradle (ANDROID_HOME) or pass --executorch-aar PATH.")
AAR_NOTE = "Offline build with ExecuTorch classes and arm64-v8a libraries from {aar}."

Step = Callable[[str], None]


@dataclass
class PackageResult:
    apk: str
    build: str  # "gradle" | "offline"
    native_libs: list[str] = field(default_factory=list)
    embedded_files: list[str] = field(default_factory=list)
    signer: str = "debug"
    sha256: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Signing:
    keystore: Path
    alias: str
    password: str
    debug: bool


def package_apk(bundle: Path | None, out: Path, *, keystore: Path | None = None, key_alias: str | None = None,
                embed_bundle: bool = False, executorch_aar: Path | None = None, offline: bool | None = None,
                password_prompt: Callable[[], str] | None = None, step: Step = lambda s: None,
                overwrite: bool = False) -> PackageResult:
    """Build, sign and write `out` atomically; Gradle when an SDK is configured, else offline.

    An existing `out` is replaced only if it is an APK of this app, or with `overwrite`."""
    check_output_file(Path(out), "--out", ours=is_our_apk, overwrite=overwrite)
    manifest = read_bundle(bundle) if bundle is not None else None
    if embed_bundle and manifest is None:
        raise AndroidBuildError("--embed-bundle needs a bundle folder; run `bluelm-edge export` first")
    use_offline = offline if offline is not None else bool(tc.missing_gradle()) or executorch_aar is not None
    signing = resolve_signing(keystore, key_alias, password_prompt)
    if use_offline:
        return build_offline(bundle if embed_bundle else None, out, signing, executorch_aar, step)
    return build_gradle(bundle if embed_bundle else None, manifest, out, signing, step)


# ---- bundle and signing -------------------------------------------------------------------------
def read_bundle(bundle: Path) -> dict:
    """Read and check a bundle's manifest.json (schema 1, every listed file present, sha256 equal)."""
    path = Path(bundle) / "manifest.json"
    if not path.is_file():
        raise AndroidBuildError(f"{bundle}: no manifest.json; run `bluelm-edge export` to make a bundle")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AndroidBuildError(f"{path}: invalid JSON at line {err.lineno}; re-export the bundle") from None
    if m.get("schema_version") != 1:
        raise AndroidBuildError(f"{path}: schema_version {m.get('schema_version')!r} is not 1; re-export")
    for f in m.get("files", []):
        p = Path(bundle) / f["path"]
        if not p.is_file() or sha256_file(p) != f["sha256"]:
            raise AndroidBuildError(f"{p}: missing or its sha256 differs from manifest.json; re-export")
    return m


def resolve_signing(keystore: Path | None, alias: str | None,
                    prompt: Callable[[], str] | None) -> Signing:
    if keystore is None:
        return Signing(debug_keystore(), DEBUG_ALIAS, DEBUG_PASSWORD, True)
    if not Path(keystore).is_file():
        raise AndroidBuildError(f"keystore {keystore} not found; pass an existing --keystore")
    if not alias:
        raise AndroidBuildError("--keystore needs --key-alias (the key's alias in the keystore)")
    password = os.environ.get(PASSWORD_ENV) or (prompt() if prompt else "")
    if not password:
        raise AndroidBuildError(f"no keystore password: set {PASSWORD_ENV} or run in a terminal to be asked")
    return Signing(Path(keystore), alias, password, False)


def debug_keystore() -> Path:
    """A per-user debug key (made once with keytool), so rebuilt APKs install over each other."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bluelm-edge"
    ks = cache / "debug.keystore"
    if ks.is_file():
        return ks
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(ks) as tmp:
        tmp.unlink()
        run(["keytool", "-genkeypair", "-keystore", str(tmp), "-storetype", "PKCS12", "-alias", DEBUG_ALIAS,
             "-keyalg", "RSA", "-keysize", "2048", "-validity", "10000", "-dname", "CN=Android Debug,O=Android,C=US",
             "-storepass:env", PASSWORD_ENV, "-keypass:env", PASSWORD_ENV],
            "make a debug key", env={PASSWORD_ENV: DEBUG_PASSWORD})
    return ks


def is_our_apk(path: Path) -> bool:
    """True for an APK of the demo app (its binary manifest names PACKAGE, UTF-8 or UTF-16)."""
    try:
        with zipfile.ZipFile(path) as z:
            xml = z.read("AndroidManifest.xml")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False
    return PACKAGE.encode() in xml or PACKAGE.encode("utf-16-le") in xml


def sign(unsigned: Path, signed: Path, s: Signing) -> None:
    """apksigner, v1-v3 schemes only: v4 would leave a `<signed>.idsig` sidecar beside the APK."""
    run(["apksigner", "sign", "--v4-signing-enabled", "false", "--ks", str(s.keystore), "--ks-key-alias", s.alias,
         "--ks-pass", f"env:{PASSWORD_ENV}",
         "--key-pass", f"env:{PASSWORD_ENV}", "--out", str(signed), str(unsigned)],
        "sign the APK (wrong keystore password or alias?)", env={PASSWORD_ENV: s.password})


def run(cmd: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    """Run one tool; on failure raise one line naming the step and the tool's last output line."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise AndroidBuildError(f"could not {what}: {Path(cmd[0]).name} failed: {lines[-1][:300]}")


# ---- offline build --------------------------------------------------------------------------
def build_offline(bundle: Path | None, out: Path, signing: Signing, aar: Path | None, step: Step) -> PackageResult:
    missing = tc.missing_offline()
    if missing:
        raise AndroidBuildError(f"offline APK build needs {', '.join(missing)}; "
                                f"apt-get install {tc.APT_PACKAGES}")
    demo = tc.android_demo_dir()
    note = AAR_NOTE.format(aar=Path(aar).name) if aar else OFFLINE_NOTE
    with tempfile.TemporaryDirectory(prefix="bluelm-apk-") as tmp_s:
        tmp = Path(tmp_s)
        step("compile stubs")
        stubs = compile_stubs(demo, tmp / "stubs")
        step("link resources")
        assets = stage_assets(tmp / "assets", bundle, note, aar)
        base = link_resources(demo, tmp, assets, note)
        step("compile Java")
        aar_jar, libs = unpack_aar(aar, tmp / "aar") if aar else (None, [])
        classes = compile_app(demo, tmp, stubs, aar_jar)
        step("dex")
        dex = run_dx([classes] + ([aar_jar] if aar_jar else []), tmp / "classes.dex")
        add_to_apk(base, dex, libs)
        step("align and sign")
        result = finish_apk(base, tmp, out, signing, "offline", note)
    result.native_libs = [f"lib/arm64-v8a/{p.name}" for p in libs]
    result.embedded_files = embedded_list(bundle)
    return result


def compile_stubs(demo: Path, dest: Path) -> Path:
    """Compile android_demo/stubs (compile-only; never dexed) into `dest`."""
    sources = sorted(str(p) for p in (demo / "stubs" / "src").rglob("*.java"))
    dest.mkdir(parents=True)
    run(["javac", "-nowarn", "--release", "8", "-d", str(dest), *sources], "compile the Android stubs")
    return dest


def stage_assets(dest: Path, bundle: Path | None, note: str, aar: Path | None) -> Path:
    dest.mkdir(parents=True)
    info = {"build": "offline", "executorch_native_libs": aar is not None, "note": note,
            "version": VERSION_NAME}
    (dest / "bluelm-build.json").write_text(json.dumps(info, indent=2) + "\n")
    if bundle is not None:
        for rel in embedded_list(bundle):
            target = dest / "bundle" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(bundle) / rel, target)
    return dest


def embedded_list(bundle: Path | None) -> list[str]:
    if bundle is None:
        return []
    files = json.loads((Path(bundle) / "manifest.json").read_text())["files"]
    return [f["path"] for f in files] + ["manifest.json"]


def offline_manifest(src: Path, note: str) -> str:
    """The app manifest with the package name (Gradle's namespace) and the build note as <meta-data>."""
    text = src.read_text()
    text = text.replace("<manifest ", f'<manifest package="{PACKAGE}" ', 1)
    meta = f'        <meta-data android:name="com.bluelm.edge.BUILD" android:value="{note}" />\n    </application>'
    return re.sub(r"\s*</application>", "\n" + meta, text, count=1)


def link_resources(demo: Path, tmp: Path, assets: Path, note: str) -> Path:
    app = demo / "app" / "src" / "main"
    manifest = tmp / "AndroidManifest.xml"
    manifest.write_text(offline_manifest(app / "AndroidManifest.xml", note))
    run(["aapt2", "compile", "--dir", str(app / "res"), "-o", str(tmp / "res.zip")], "compile resources")
    (tmp / "gen").mkdir()
    base = tmp / "base.apk"
    run(["aapt2", "link", "-I", str(tc.FRAMEWORK_RES), "--manifest", str(manifest), "--java", str(tmp / "gen"),
         "--min-sdk-version", str(MIN_SDK), "--target-sdk-version", str(TARGET_SDK),
         "--version-code", str(VERSION_CODE), "--version-name", VERSION_NAME,
         "-A", str(assets), "-0", "pte", "-o", str(base), str(tmp / "res.zip")], "link resources")
    return base


def unpack_aar(aar: Path, dest: Path) -> tuple[Path, list[Path]]:
    """classes.jar and jni/arm64-v8a/*.so of an ExecuTorch AAR."""
    if not Path(aar).is_file():
        raise AndroidBuildError(f"{aar}: no such AAR; download org.pytorch:executorch-android from Maven Central")
    try:
        with zipfile.ZipFile(aar) as z:
            names = z.namelist()
            if "classes.jar" not in names:
                raise AndroidBuildError(f"{aar}: not an AAR (no classes.jar)")
            wanted = ["classes.jar"] + [n for n in names if n.startswith("jni/arm64-v8a/") and n.endswith(".so")]
            z.extractall(dest, members=wanted)
    except zipfile.BadZipFile:
        raise AndroidBuildError(f"{aar}: not a zip/AAR file") from None
    libs = sorted((dest / "jni" / "arm64-v8a").glob("*.so"))
    if not libs:
        raise AndroidBuildError(f"{aar}: has no jni/arm64-v8a libraries; use the arm64 ExecuTorch AAR")
    return dest / "classes.jar", libs


def compile_app(demo: Path, tmp: Path, stubs: Path, aar_jar: Path | None) -> Path:
    """javac --release 7 (dx reads Java 7 class files) of core + app + R against the stubs."""
    sources = [str(p) for d in (demo / "core" / "src" / "main" / "java", demo / "app" / "src" / "main" / "java",
                                tmp / "gen") for p in sorted(d.rglob("*.java"))]
    classpath = [str(aar_jar)] if aar_jar else []
    classpath += [str(stubs), str(tc.ORG_JSON_JAR)]
    dest = tmp / "classes"
    dest.mkdir()
    run(["javac", "-nowarn", "-Xlint:-options", "--release", "7", "-encoding", "UTF-8", "-cp", ":".join(classpath),
         "-d", str(dest), *sources], "compile the app (javac)")
    return dest


def run_dx(inputs: list[Path], dex: Path) -> Path:
    cp = ":".join(str(j) for j in tc.DX_JARS)
    run(["java", "-cp", cp, "com.android.dx.command.Main", "--dex",
         f"--output={dex}", *map(str, inputs)], "convert classes to dex (dx)")
    return dex


def add_to_apk(apk: Path, dex: Path, libs: list[Path]) -> None:
    with zipfile.ZipFile(apk, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(dex, "classes.dex")
        for lib in libs:
            z.write(lib, f"lib/arm64-v8a/{lib.name}")


def finish_apk(unsigned: Path, tmp: Path, out: Path, signing: Signing, build: str, note: str) -> PackageResult:
    aligned = tmp / "aligned.apk"
    run(["zipalign", "-p", "-f", "4", str(unsigned), str(aligned)], "align the APK (zipalign)")
    with atomic_path(Path(out)) as tmp_out:
        sign(aligned, tmp_out, signing)
    signer = "debug key" if signing.debug else f"{signing.keystore.name}:{signing.alias}"
    return PackageResult(apk=str(out), build=build, signer=signer, sha256=sha256_file(Path(out)), note=note)


# ---- Gradle build ---------------------------------------------------------------------------
def build_gradle(bundle: Path | None, manifest: dict | None, out: Path, signing: Signing, step: Step) -> PackageResult:
    """`assemble<Flavour>Release` with the signing config read from the environment."""
    demo = tc.android_demo_dir()
    flavour = "qnn" if manifest and manifest.get("backend") == "qnn" else "xnnpack"
    task = f"assemble{flavour.capitalize()}Release"
    env = {"BLUELM_KEYSTORE_FILE": str(signing.keystore), "BLUELM_KEY_ALIAS": signing.alias,
           PASSWORD_ENV: signing.password, "ANDROID_HOME": str(tc.android_home())}
    if bundle is not None:
        env["BLUELM_EMBED_BUNDLE"] = str(Path(bundle).resolve())
    step(f"gradle {task}")
    run([*tc.gradle_command(), "--no-daemon", "-p", str(demo), task], f"build with Gradle ({task})", env=env)
    apks = sorted((demo / "app" / "build" / "outputs" / "apk" / flavour / "release").glob("*.apk"))
    if not apks:
        raise AndroidBuildError(f"Gradle finished but made no APK under app/build/outputs/apk/{flavour}/release")
    with atomic_path(Path(out)) as tmp_out:
        shutil.copyfile(apks[0], tmp_out)
    return PackageResult(apk=str(out), build="gradle", signer=f"{signing.keystore.name}:{signing.alias}",
                         sha256=sha256_file(Path(out)), embedded_files=embedded_list(bundle),
                         note=f"Gradle {flavour} release build with the ExecuTorch AAR.")
