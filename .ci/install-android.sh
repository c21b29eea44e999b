#!/usr/bin/env bash
# Debian packages the Java core tests and the offline APK build need (see android_demo/README.md).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
    openjdk-17-jdk-headless junit4 libandroid-json-org-java aapt apksigner zipalign \
    android-framework-res dexdump libgradle-android-plugin-java adb
