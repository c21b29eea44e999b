"""Build and sign the demo APK: Gradle (with an Android SDK) or offline with Debian's tools.

The flavour follows the bundle's backend (xnnpack, qnn, mediatek; android_demo/runtime.json says
what each needs). Gradle builds `assemble<Flavour>Release` with the real ExecuTorch AAR. The
offline build (no SDK): aapt2 against the framework resources, javac --release 7 against the
compile-only stubs in android_demo/stubs (Java 7 only because Debian's dx reads nothing newer),
dx, zipalign, apksigner; it is UI only (no ExecuTorch native libraries) and its note is one line
naming what the flavour still needs. Keystore passwords come only from BLUELM_KEYSTORE_PASSWORD
or a prompt, and reach keytool/apksigner through the environment, never through argv.
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

from bluelm_edge.android import runtime as rt
from bluelm_edge.android import toolchain as tc
from bluelm_edge.android.toolchain import AndroidBuildError
from bluelm_edge.io import atomic_path, check_output_file, sha256_file

PACKAGE = "com.bluelm.edge.demo"
VERSION_NAME, VERSION_CODE = "0.1.0", 1
MIN_SDK, TARGET_SDK = 28, 34
PASSWORD_ENV = "BLUELM_KEYSTORE_PASSWORD"
DEBUG_ALIAS, DEBUG_PASSWORD = "androiddebugkey", "android"  # Android's public debug-key convention
AAR_GONE = ("--executorch-aar is not supported: the real executorch-android AAR is Kotlin/Java 11 "
            "bytecode, which the offline dx cannot dex, and needs fbjni and soloader; build with Gradle "
            "(set ANDROID_HOME), which takes the AAR from Maven Central")

Step = Callable[[str], None]


@dataclass
class PackageResult:
    apk: str
    build: str  # "gradle" | "offline"
    flavour: str = "xnnpack"
    executorch: str = ""  # the executorch-android version the app carries
    needs: list[str] = field(default_factory=list)  # the flavour's ExecuTorch artifacts
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

    The flavour is the bundle's backend (xnnpack without a bundle); a bundle the app would refuse
    (it needs a newer ExecuTorch runtime than runtime.json pins) is refused here. An existing
    `out` is replaced only if it is an APK of this app, or with `overwrite`."""
    if executorch_aar is not None:
        raise AndroidBuildError(AAR_GONE)
    check_output_file(Path(out), "--out", ours=is_our_apk, overwrite=overwrite)
    manifest = read_bundle(bundle) if bundle is not None else None
    if embed_bundle and manifest is None:
        raise AndroidBuildError("--embed-bundle needs a bundle folder; run `bluelm-edge export` first")
    req = rt.requirement(manifest)
    if req.refusal:
        raise AndroidBuildError(req.refusal)
    use_offline = offline if offline is not None else bool(tc.missing_gradle())
    signing = resolve_signing(keystore, key_alias, password_prompt)
    embedded = bundle if embed_bundle else None
    result = (build_offline(embedded, out, signing, req, step) if use_offline
              else build_gradle(embedded, out, signing, req, step))
    result.flavour, result.executorch, result.needs = req.flavour, rt.carried_version(), req.needs
    return result


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
def build_offline(bundle: Path | None, out: Path, signing: Signing, req: rt.Requirement,
                  step: Step) -> PackageResult:
    missing = tc.missing_offline()
    if missing:
        raise AndroidBuildError(f"offline APK build needs {', '.join(missing)}; "
                                f"apt-get install {tc.APT_PACKAGES}")
    demo = tc.android_demo_dir()
    note = rt.offline_line(req)
    with tempfile.TemporaryDirectory(prefix="bluelm-apk-") as tmp_s:
        tmp = Path(tmp_s)
        step("compile stubs")
        stubs = compile_stubs(demo, tmp / "stubs")
        step("link resources")
        assets = stage_assets(tmp / "assets", bundle, note, req)
        base = link_resources(demo, tmp, assets, note, req.flavour)
        step("compile Java")
        write_build_config(tmp / "gen", req.flavour)
        classes = compile_app(demo, tmp, stubs)
        step("dex")
        dex = run_dx([classes], tmp / "classes.dex")
        add_to_apk(base, dex)
        step("align and sign")
        result = finish_apk(base, tmp, out, signing, "offline", note)
    result.embedded_files = embedded_list(bundle)
    return result


def compile_stubs(demo: Path, dest: Path) -> Path:
    """Compile android_demo/stubs (compile-only; never dexed) into `dest`."""
    sources = sorted(str(p) for p in (demo / "stubs" / "src").rglob("*.java"))
    dest.mkdir(parents=True)
    run(["javac", "-nowarn", "--release", "8", "-d", str(dest), *sources], "compile the Android stubs")
    return dest


def stage_assets(dest: Path, bundle: Path | None, note: str, req: rt.Requirement) -> Path:
    dest.mkdir(parents=True)
    info = {"build": "offline", "executorch_native_libs": False, "note": note, "version": VERSION_NAME,
            "flavour": req.flavour, "executorch": rt.carried_version(), "needs": req.needs}
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


def offline_manifest(src: Path, note: str, flavour_src: Path | None = None) -> str:
    """The app manifest with the package name (Gradle's namespace), the flavour manifest's
    <application> children (what Gradle's merger adds) and the build note as <meta-data>."""
    text = src.read_text()
    text = text.replace("<manifest ", f'<manifest package="{PACKAGE}" ', 1)
    extra = ""
    if flavour_src is not None and flavour_src.is_file():
        m = re.search(r"<application[^>]*>(.*?)</application>", flavour_src.read_text(), re.S)
        extra = m[1].rstrip() + "\n" if m else ""
    meta = f'        <meta-data android:name="com.bluelm.edge.BUILD" android:value="{escape(note)}" />\n'
    return re.sub(r"\s*</application>", lambda _: "\n" + extra + meta + "    </application>", text, count=1)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def write_build_config(gen: Path, flavour: str) -> Path:
    """What Gradle's BuildConfig gives the app (FLAVOR, EXECUTORCH_VERSION), for the offline build."""
    path = gen / Path(*PACKAGE.split(".")) / "BuildConfig.java"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""package {PACKAGE};

/** Written by the offline build; Gradle generates the same fields from app/build.gradle. */
public final class BuildConfig {{
    public static final boolean DEBUG = false;
    public static final String APPLICATION_ID = "{PACKAGE}";
    public static final String BUILD_TYPE = "release";
    public static final String FLAVOR = "{flavour}";
    public static final int VERSION_CODE = {VERSION_CODE};
    public static final String VERSION_NAME = "{VERSION_NAME}";
    public static final String EXECUTORCH_VERSION = "{rt.carried_version()}";
}}
""")
    return path


def link_resources(demo: Path, tmp: Path, assets: Path, note: str, flavour: str) -> Path:
    app = demo / "app" / "src" / "main"
    manifest = tmp / "AndroidManifest.xml"
    flavour_manifest = demo / "app" / "src" / flavour / "AndroidManifest.xml"
    manifest.write_text(offline_manifest(app / "AndroidManifest.xml", note, flavour_manifest))
    run(["aapt2", "compile", "--dir", str(app / "res"), "-o", str(tmp / "res.zip")], "compile resources")
    (tmp / "gen").mkdir()
    base = tmp / "base.apk"
    # API 29's framework resources predate <uses-native-library> (API 31): aapt2 would reject it
    lenient = ["--warn-manifest-validation"] if flavour_manifest.is_file() else []
    run(["aapt2", "link", *lenient, "-I", str(tc.FRAMEWORK_RES), "--manifest", str(manifest),
         "--java", str(tmp / "gen"),
         "--min-sdk-version", str(MIN_SDK), "--target-sdk-version", str(TARGET_SDK),
         "--version-code", str(VERSION_CODE), "--version-name", VERSION_NAME,
         "-A", str(assets), "-0", "pte", "-o", str(base), str(tmp / "res.zip")], "link resources")
    return base


def compile_app(demo: Path, tmp: Path, stubs: Path) -> Path:
    """javac --release 7 (dx reads Java 7 class files) of core + app + R + BuildConfig against the stubs.

    Java 7 is the offline path's limit only; Gradle builds the same sources at Java 8 with D8."""
    sources = [str(p) for d in (demo / "core" / "src" / "main" / "java", demo / "app" / "src" / "main" / "java",
                                tmp / "gen") for p in sorted(d.rglob("*.java"))]
    classpath = [str(stubs), str(tc.ORG_JSON_JAR)]
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


def add_to_apk(apk: Path, dex: Path) -> None:
    with zipfile.ZipFile(apk, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(dex, "classes.dex")


def finish_apk(unsigned: Path, tmp: Path, out: Path, signing: Signing, build: str, note: str) -> PackageResult:
    aligned = tmp / "aligned.apk"
    run(["zipalign", "-p", "-f", "4", str(unsigned), str(aligned)], "align the APK (zipalign)")
    with atomic_path(Path(out)) as tmp_out:
        sign(aligned, tmp_out, signing)
    signer = "debug key" if signing.debug else f"{signing.keystore.name}:{signing.alias}"
    return PackageResult(apk=str(out), build=build, signer=signer, sha256=sha256_file(Path(out)), note=note)


# ---- Gradle build ---------------------------------------------------------------------------
def build_gradle(bundle: Path | None, out: Path, signing: Signing, req: rt.Requirement, step: Step) -> PackageResult:
    """`assemble<Flavour>Release` with the signing config read from the environment."""
    demo = tc.android_demo_dir()
    missing = rt.missing_local(req, demo)
    if missing:
        raise AndroidBuildError(f"the {req.flavour} flavour needs android_demo/{', '.join(missing)}: {req.where}")
    task = f"assemble{req.flavour.capitalize()}Release"
    env = {"BLUELM_KEYSTORE_FILE": str(signing.keystore), "BLUELM_KEY_ALIAS": signing.alias,
           PASSWORD_ENV: signing.password, "ANDROID_HOME": str(tc.android_home())}
    if bundle is not None:
        env["BLUELM_EMBED_BUNDLE"] = str(Path(bundle).resolve())
    props = [f"-PqnnRuntimeVersion={req.qnn_runtime}"] if req.qnn_runtime else []
    step(f"gradle {task}")
    run([*tc.gradle_command(), "--no-daemon", "-p", str(demo), *props, task], f"build with Gradle ({task})", env=env)
    apks = sorted((demo / "app" / "build" / "outputs" / "apk" / req.flavour / "release").glob("*.apk"))
    if not apks:
        raise AndroidBuildError(f"Gradle finished but made no APK under app/build/outputs/apk/{req.flavour}/release")
    with atomic_path(Path(out)) as tmp_out:
        shutil.copyfile(apks[0], tmp_out)
    return PackageResult(apk=str(out), build="gradle", signer=f"{signing.keystore.name}:{signing.alias}",
                         sha256=sha256_file(Path(out)), embedded_files=embedded_list(bundle),
                         note=f"Gradle {req.flavour} release build with {' + '.join(req.needs)}.")
