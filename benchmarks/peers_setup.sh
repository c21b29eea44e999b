#!/usr/bin/env bash
# One-time setup for benchmarks/peers.py: llama-cpp-python built from PyPI's sdist in its own venv,
# and the sdist unpacked (its vendored llama.cpp has convert_hf_to_gguf.py + gguf-py).
# Usage: benchmarks/peers_setup.sh [WORK=/work/peers] [VERSION=0.3.36]   (~8 min on 2 cores)
set -euo pipefail
WORK=${1:-/work/peers}
VERSION=${2:-0.3.36}
mkdir -p "$WORK/sdist" "$WORK/src"
[ -x "$WORK/llamacpp-venv/bin/python" ] || python3 -m venv "$WORK/llamacpp-venv"
"$WORK/llamacpp-venv/bin/pip" install -q --upgrade pip wheel setuptools
"$WORK/llamacpp-venv/bin/pip" download --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$WORK/sdist"
SDIST="$WORK/sdist/llama_cpp_python-$VERSION.tar.gz"
[ -d "$WORK/src/llama_cpp_python-$VERSION" ] || tar -xzf "$SDIST" -C "$WORK/src"
CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL=2 \
  "$WORK/llamacpp-venv/bin/pip" install -v --no-binary llama-cpp-python "$SDIST" > "$WORK/llamacpp-build.log" 2>&1
"$WORK/llamacpp-venv/bin/python" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__); print(llama_cpp.llama_print_system_info().decode())"
# The GGUF converter runs with the project venv (torch, transformers, numpy, sentencepiece are there)
# and PYTHONPATH=<vendored llama.cpp>/gguf-py: the gguf package of the same llama.cpp commit.
