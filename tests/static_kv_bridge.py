"""A `.pte` served to the JVM through the real ExecuTorch runtime (the Python bindings), so the app's
Java `StaticKvRunner` (android_demo/core) can drive a static-KV program as ExecuTorch's `Module`
runs it: `python tests/static_kv_bridge.py PROGRAM.pte`, then one JSON request per stdin line:

    {"op": "execute", "method": NAME, "inputs": [{"dtype": "float32"|"uint8"|"int64", "shape": [...], "b64": ...}]}
    {"op": "constant", "method": NAME}      -> {"values": [...]}   (ints and floats)
    {"op": "methods"}                       -> {"values": [names]}

each answered by one JSON line ({"outputs": [tensors]}, {"values": ...} or {"error": "one line"}).
Tensor bytes are little-endian, base64. The test double here is the transport only: every tensor
is computed by ExecuTorch's runtime on the program file.
"""

from __future__ import annotations

import base64
import json
import sys

import numpy as np
import torch

DTYPES = {"float32": (torch.float32, "<f4"), "uint8": (torch.uint8, "u1"), "int64": (torch.int64, "<i8")}
NAMES = {v[0]: k for k, v in DTYPES.items()}


def decode(doc: dict) -> torch.Tensor:
    torch_dtype, np_dtype = DTYPES[doc["dtype"]]
    raw = np.frombuffer(base64.b64decode(doc["b64"]), dtype=np_dtype).copy()
    return torch.from_numpy(raw).reshape(doc["shape"]).to(torch_dtype)


def encode(t: torch.Tensor) -> dict:
    np_dtype = DTYPES[NAMES[t.dtype]][1]
    return {"dtype": NAMES[t.dtype], "shape": list(t.shape),
            "b64": base64.b64encode(t.contiguous().numpy().astype(np_dtype).tobytes()).decode()}


class Served:
    """The program's methods, each loaded on first use (as ExecuTorch's Module does)."""

    def __init__(self, path: str) -> None:
        import executorch.kernels.quantized  # noqa: F401  (quantized_decomposed kernels: integer graph I/O)
        from executorch.runtime import Runtime

        self.program = Runtime.get().load_program(path)
        self.methods: dict = {}

    def method(self, name: str):
        if name not in self.methods:
            self.methods[name] = self.program.load_method(name)
        return self.methods[name]

    def answer(self, req: dict) -> dict:
        op = req["op"]
        if op == "methods":
            return {"values": sorted(self.program.method_names)}
        if req["method"] not in self.program.method_names:
            return {"error": f"no method {req['method']} in the program"}
        if op == "constant":
            values = self.method(req["method"]).execute([])
            return {"values": [v.item() if isinstance(v, torch.Tensor) else v for v in values]}
        outs = self.method(req["method"]).execute([decode(d) for d in req["inputs"]])
        return {"outputs": [encode(t) for t in outs]}


def main() -> None:
    served = Served(sys.argv[1])
    for line in sys.stdin:
        try:
            reply = served.answer(json.loads(line))
        except Exception as e:  # the JVM side turns it into a RunnerException
            reply = {"error": f"{type(e).__name__}: {e}".replace("\n", " ")}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
