#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine: the Python environment (.venv) with
# bluelm-edge and its test tools, plus the Debian packages the Android/Java/adb parts use.
# Safe to rerun. Python >= 3.10 required.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(openjdk-17-jdk-headless junit4 libandroid-json-org-java aapt apksigner zipalign
              android-framework-res dexdump libgradle-android-plugin-java adb qemu-user-static)

if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "note: no apt-get; install a JDK 17, junit4, aapt2, apksigner, zipalign and adb yourself for the Android parts" >&2
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and exactly: the CPU build; executorch's wheel does not declare torch.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[test]'
echo "installed: $(.venv/bin/bluelm-edge --help >/dev/null && echo bluelm-edge ok)"
