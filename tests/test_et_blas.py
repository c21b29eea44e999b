"""`bind_executorch_blas`: ExecuTorch's custom ops call ExecuTorch's own BLAS (Eigen), not torch's MKL.

Checked with the dynamic linker's own record (`LD_DEBUG=bindings`) in fresh processes that import
torch first, as every runtime process does; the control process (no binding) must show the MKL
binding, or the test would prove nothing. The op's output is checked against torch's SDPA on the
filled slots, so the binding changes speed, not results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import sys
import torch
import torch.nn.functional as F
if sys.argv[1] == "bind":
    from bluelm_edge.graphs.xnnpack import load_custom_ops
    load_custom_ops()
else:
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401
torch.manual_seed(0)
start, heads, kv, hd = 200, 16, 4, 64
q = torch.randn(1, 1, heads, hd)
k, v = torch.randn(1, 512, kv, hd), torch.randn(1, 512, kv, hd)
out = torch.ops.llama.custom_sdpa(q, k, v, start, None, 0.0, True)  # [1, 1, H, hd]
keys = k[0, : start + 1].transpose(0, 1).repeat_interleave(heads // kv, 0)  # [H, n, hd]
vals = v[0, : start + 1].transpose(0, 1).repeat_interleave(heads // kv, 0)
ref = F.scaled_dot_product_attention(q[0].transpose(0, 1), keys, vals)  # [H, 1, hd]
print((out[0, 0] - ref[:, 0]).abs().max().item())
"""


def _sgemm_binding(mode: str, tmp: Path) -> tuple[str, float]:
    env = dict(os.environ, LD_DEBUG="bindings", LD_DEBUG_OUTPUT=str(tmp / f"ld-{mode}"))
    res = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    err = float(res.stdout.strip().splitlines()[-1])
    lines = [line for f in tmp.glob(f"ld-{mode}.*") for line in f.read_text(errors="replace").splitlines()
             if "libcustom_ops_aot_lib" in line.split(" to ")[0] and "`sgemm_'" in line]
    assert len(lines) == 1, lines
    return lines[0].split(" to ")[1], err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's LD_DEBUG")
def test_custom_ops_call_executorch_blas_not_mkl(tmp_path):
    target, err = _sgemm_binding("bind", tmp_path)
    assert "libexecutorch_kernels_optimized.so" in target
    assert err < 1e-5
    control, control_err = _sgemm_binding("plain", tmp_path)
    assert "libtorch_cpu.so" in control  # what the binding avoids (else this test checks nothing)
    assert control_err < 1e-5
