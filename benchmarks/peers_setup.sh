#!/usr/bin/env bash
# One-time setup for benchmarks/peers.py: llama-cpp-python built from PyPI's sdist in its own venv,
# and the sdist unpacked (its vendored llama.cpp has convert_hf_to_gguf.py + gguf-py).
# Usage: [LLAMA_CMAKE_ARGS=...] benchmarks/peers_setup.sh [WORK=/work/peers] [VERSION=0.3.36]   (~8 min on 2 cores)
set -euo pipefail
WORK=${1:-/work/peers}
VERSION=${2:-0.3.36}
mkdir -p "$WORK/sdist" "$WORK/src"
[ -x "$WORK/llamacpp-venv/bin/python" ] || python3 -m venv "$WORK/llamacpp-venv"
"$WORK/llamacpp-venv/bin/pip" install -q --upgrade pip wheel setuptools
"$WORK/llamacpp-venv/bin/pip" download --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$WORK/sdist"
SDIST="$WORK/sdist/llama_cpp_python-$VERSION.tar.gz"
[ -d "$WORK/src/llama_cpp_python-$VERSION" ] || tar -xzf "$SDIST" -C "$WORK/src"
# GGML_NATIVE (-march=native) compiles in AMX wherever the CPU flags list it, but some VMs list AMX and
# fault on its first instruction (ldtilecfg: general protection fault, seen on a Xeon guest). On such a
# CPU build the same instruction sets by name without AMX; LLAMA_CMAKE_ARGS overrides either choice.
if grep -q amx_tile /proc/cpuinfo 2>/dev/null; then
  DEFAULT_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
  for f in avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 avx_vnni:AVX_VNNI; do
    grep -qw "${f%%:*}" /proc/cpuinfo && DEFAULT_ARGS="$DEFAULT_ARGS -DGGML_${f##*:}=ON"
  done
else
  DEFAULT_ARGS="-DGGML_NATIVE=ON"
fi
"$WORK/llamacpp-venv/bin/pip" uninstall -q -y llama-cpp-python 2>/dev/null || true  # a rebuild, not pip's cached wheel
CMAKE_ARGS="${LLAMA_CMAKE_ARGS:-$DEFAULT_ARGS}" CMAKE_BUILD_PARALLEL_LEVEL=2 \
  "$WORK/llamacpp-venv/bin/pip" install -v --no-cache-dir --no-binary llama-cpp-python "$SDIST" > "$WORK/llamacpp-build.log" 2>&1
"$WORK/llamacpp-venv/bin/python" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__); print(llama_cpp.llama_print_system_info().decode())"
# The GGUF converter runs with the project venv (torch, transformers, numpy, sentencepiece are there)
# and PYTHONPATH=<vendored llama.cpp>/gguf-py: the gguf package of the same llama.cpp commit.
