"""The Gradle wrapper in android_demo/: the jar is Gradle's own (published sha256), the version is
pinned with its distribution checksum, and `./gradlew` really starts a distribution and enforces
that checksum (shown with a stand-in distribution built here, as services.gradle.org is offline)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "android_demo"
WRAPPER = DEMO / "gradle" / "wrapper"
# Gradle 8.10-8.12.1 ship this wrapper jar (gradle/actions wrapper-checksums.json and
# services.gradle.org/distributions/gradle-8.10.2-wrapper.jar.sha256).
WRAPPER_JAR_SHA256 = "2db75c40782f5e8ba1fc278a5574bab070adccb2d21ca5a6e5ed840888448046"
GRADLE = "8.10.2"
GRADLE_BIN_SHA256 = "31c55713e40233a8303827ceb42ca48a47267a0ad4bab9177123121e71524c26"
AGP = "8.7.3"  # needs Gradle 8.9+, runs on JDK 17 and 21

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (scripts/install.sh)")


def props(path: Path) -> dict[str, str]:
    lines = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    return {k: v.replace("\\:", ":") for k, v in lines}


def test_the_jar_is_gradles_and_the_version_is_pinned():
    assert hashlib.sha256((WRAPPER / "gradle-wrapper.jar").read_bytes()).hexdigest() == WRAPPER_JAR_SHA256
    p = props(WRAPPER / "gradle-wrapper.properties")
    assert p["distributionUrl"] == f"https://services.gradle.org/distributions/gradle-{GRADLE}-bin.zip"
    assert p["distributionSha256Sum"] == GRADLE_BIN_SHA256
    assert f'id "com.android.application" version "{AGP}"' in (DEMO / "build.gradle").read_text()
    assert os.access(DEMO / "gradlew", os.X_OK) and (DEMO / "gradlew.bat").is_file()


def fake_distribution(tmp: Path) -> Path:
    """gradle-X/lib/gradle-launcher-X.jar whose org.gradle.launcher.GradleMain echoes its arguments."""
    src = tmp / "src" / "org" / "gradle" / "launcher"
    src.mkdir(parents=True)
    (src / "GradleMain.java").write_text(
        "package org.gradle.launcher;\npublic class GradleMain {\n  public static void main(String[] a) {\n"
        '    System.out.println("stand-in gradle ran: " + String.join(" ", a));\n  }\n}\n')
    classes = tmp / "classes"
    subprocess.run(["javac", "-d", str(classes), str(src / "GradleMain.java")], check=True, capture_output=True)
    dist = tmp / f"gradle-{GRADLE}-bin.zip"
    jar = tmp / f"gradle-launcher-{GRADLE}.jar"
    with zipfile.ZipFile(jar, "w") as j:
        j.write(classes / "org/gradle/launcher/GradleMain.class", "org/gradle/launcher/GradleMain.class")
    with zipfile.ZipFile(dist, "w") as z:  # directory entries first: the wrapper's unzip needs them
        z.writestr(f"gradle-{GRADLE}/", b"")
        z.writestr(f"gradle-{GRADLE}/lib/", b"")
        z.write(jar, f"gradle-{GRADLE}/lib/{jar.name}")
    return dist


def wrapper_copy(tmp: Path, dist: Path, sha: str) -> Path:
    """The real gradlew + jar, with the distribution URL pointed at `dist`."""
    project = tmp / "project"
    (project / "gradle" / "wrapper").mkdir(parents=True)
    shutil.copy2(DEMO / "gradlew", project / "gradlew")
    shutil.copy2(WRAPPER / "gradle-wrapper.jar", project / "gradle" / "wrapper" / "gradle-wrapper.jar")
    text = (WRAPPER / "gradle-wrapper.properties").read_text()
    text = text.replace(f"https\\://services.gradle.org/distributions/gradle-{GRADLE}-bin.zip", dist.as_uri())
    text = text.replace(GRADLE_BIN_SHA256, sha).replace("validateDistributionUrl=true", "validateDistributionUrl=false")
    (project / "gradle" / "wrapper" / "gradle-wrapper.properties").write_text(text)
    return project


def run_gradlew(project: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRADLE_USER_HOME": str(home)}
    return subprocess.run(["./gradlew", "assembleXnnpackDebug"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)


def test_gradlew_starts_the_pinned_distribution_and_checks_its_sha(tmp_path):
    dist = fake_distribution(tmp_path)
    good = hashlib.sha256(dist.read_bytes()).hexdigest()
    proc = run_gradlew(wrapper_copy(tmp_path / "ok", dist, good), tmp_path / "home-ok")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stand-in gradle ran: assembleXnnpackDebug" in proc.stdout
    proc = run_gradlew(wrapper_copy(tmp_path / "bad", dist, "0" * 64), tmp_path / "home-bad")
    assert proc.returncode != 0
    assert "Verification of Gradle distribution failed" in proc.stdout + proc.stderr
