"""Which Android build tools this machine has: the Gradle build (Android SDK) or the offline one.

The offline build uses Debian's packages (see scripts/install.sh): a JDK, aapt2 with the
API 29 framework resources, dx from the Android Gradle plugin's builder jar, zipalign, apksigner.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bluelm_edge.errors import BlueLMError
from bluelm_edge.paths import data_dir

JAVA_DIR = Path("/usr/share/java")
FRAMEWORK_RES = Path("/usr/share/android-framework-res/framework-res.apk")
DX_JARS = (JAVA_DIR / "com.android.tools.build.builder.jar", JAVA_DIR / "guava.jar")
ORG_JSON_JAR = JAVA_DIR / "json-android.jar"
JUNIT_JARS = (JAVA_DIR / "junit4.jar", JAVA_DIR / "hamcrest-core.jar")
OFFLINE_TOOLS = ("java", "javac", "javap", "keytool", "aapt2", "zipalign", "apksigner")
COMPILE_SDK = 34
APT_PACKAGES = ("openjdk-17-jdk-headless junit4 libandroid-json-org-java aapt apksigner zipalign "
                "android-framework-res dexdump libgradle-android-plugin-java")


class AndroidBuildError(BlueLMError):
    """An APK cannot be built or signed here (missing tool, bad keystore, failed step)."""


def android_demo_dir() -> Path:
    return data_dir("android_demo")


def missing_offline() -> list[str]:
    """What the offline build needs and this machine lacks (empty when it can build)."""
    missing = [t for t in OFFLINE_TOOLS if shutil.which(t) is None]
    for f in (FRAMEWORK_RES, *DX_JARS, ORG_JSON_JAR):
        if not f.is_file():
            missing.append(str(f))
    return missing


def android_home() -> Path | None:
    home = os.environ.get("ANDROID_HOME") or os.environ.get("ANDROID_SDK_ROOT")
    return Path(home) if home else None


def gradle_command() -> list[str] | None:
    """`./gradlew` when the project has a wrapper, else `gradle` on PATH, else None."""
    wrapper = android_demo_dir() / "gradlew"
    if wrapper.is_file() and os.access(wrapper, os.X_OK):
        return [str(wrapper)]
    gradle = shutil.which("gradle")
    return [gradle] if gradle else None


def missing_gradle() -> list[str]:
    """What the Gradle build needs and this machine lacks (empty when it can build)."""
    missing = []
    home = android_home()
    if home is None:
        missing.append("ANDROID_HOME (an Android SDK)")
    elif not (home / "platforms" / f"android-{COMPILE_SDK}" / "android.jar").is_file():
        missing.append(f"{home}/platforms/android-{COMPILE_SDK} (sdkmanager 'platforms;android-{COMPILE_SDK}')")
    if gradle_command() is None:
        missing.append("gradle (or android_demo/gradlew)")
    if shutil.which("java") is None:
        missing.append("java")
    return missing


def android_build_capabilities() -> dict:
    """Which of the two APK builds this machine can do, and what each is missing.

    Returns {"gradle": {"available", "missing"}, "offline": {"available", "missing",
    "runs_models": False, "install_hint"}, "preferred": "gradle" | "offline" | None}.
    """
    gradle, offline = missing_gradle(), missing_offline()
    preferred = "gradle" if not gradle else ("offline" if not offline else None)
    return {
        "gradle": {"available": not gradle, "missing": gradle},
        "offline": {
            "available": not offline,
            "missing": offline,
            "runs_models": False,
            "install_hint": f"apt-get install -y --no-install-recommends {APT_PACKAGES}",
        },
        "preferred": preferred,
    }
