"""Vectors of the app's static-KV runner (android_demo/core StaticKvRunner) from the Python runner.

A script of runner calls (`prefillPrompt`, `prefillImage`, `generate`, `resetContext`) is played
through `drive`: Python's `NpuDecoder` (the contract's runner math, tested against the graphs and
the eager model elsewhere) under `LlmModule`'s behaviour (android_demo/core LlmRunner). Every
method call the decoder makes is recorded: the inputs it sends (exact ones as SHA-256 of their
little-endian bytes, RoPE rows as values, compared to 1e-6) and the outputs it got, with the
entries the runner does not read replaced by NaN (uint8: 0xAB), so a runner that reads a wrong
row, or stores one it should not, disagrees. Java replays the outputs and must send the same
inputs and stream the same pieces; `test_static_kv_vectors.py` replays them through the Python
runner too (both sides pinned).

Run from the repo root to rewrite tests/vectors/static_kv_runner.json:
    QNN_SDK_ROOT= .venv/bin/python tests/static_kv_vectors.py
(two variants: `kv`, a QNN export of the tiny preset with 8-bit KV graph I/O; `float`, the fp32
static graphs of the shipped stand-in.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zlib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "vectors" / "static_kv_runner.json"
POISON = 0xAB
TOLERANCE = 1e-6


# ---- tensors as JSON -----------------------------------------------------------------------------
def _dtype(t: torch.Tensor) -> str:
    return {torch.float32: "float32", torch.uint8: "uint8", torch.int64: "int64"}[t.dtype]


def _bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def digest(t: torch.Tensor) -> dict:
    return {"dtype": _dtype(t), "shape": list(t.shape), "sha256": hashlib.sha256(_bytes(t)).hexdigest()}


def values(t: torch.Tensor) -> dict:
    return {"dtype": _dtype(t), "shape": list(t.shape), "z": base64.b64encode(zlib.compress(_bytes(t), 9)).decode()}


def tensor(doc: dict) -> torch.Tensor:
    import numpy as np

    kind = {"float32": "<f4", "uint8": "u1", "int64": "<i8"}[doc["dtype"]]
    raw = np.frombuffer(zlib.decompress(base64.b64decode(doc["z"])), dtype=kind).copy()
    return torch.from_numpy(raw).reshape(doc["shape"])


def check(doc: dict, t: torch.Tensor, what: str) -> None:
    assert [doc["dtype"], doc["shape"]] == [_dtype(t), list(t.shape)], f"{what}: {doc['dtype']}{doc['shape']} vs {t}"
    if "sha256" in doc:
        assert hashlib.sha256(_bytes(t)).hexdigest() == doc["sha256"], f"{what}: other bytes than recorded"
    elif t.dtype != torch.float32:
        assert torch.equal(tensor(doc), t), f"{what}: other values than recorded"
    else:
        assert torch.allclose(tensor(doc), t, atol=TOLERANCE, rtol=0), f"{what}: other values than recorded"


def _read_only(t: torch.Tensor, rows: slice, axis: int) -> torch.Tensor:
    """`t` with everything but `rows` along `axis` poisoned: what a correct runner never reads."""
    out = torch.full_like(t, POISON) if t.dtype == torch.uint8 else torch.full_like(t, float("nan"))
    index = [slice(None)] * t.dim()
    index[axis] = rows
    out[tuple(index)] = t[tuple(index)]
    return out


# ---- recording and replay --------------------------------------------------------------------------
class Recorder:
    """The decoder's methods, each call's inputs and (read-only) outputs appended to `calls`."""

    def __init__(self, methods: dict, pad_id: int) -> None:
        self.calls: list[dict] = []
        self.pad_id = pad_id
        self.methods = {name: self._wrap(name, m) for name, m in methods.items()}

    def _wrap(self, name: str, method):
        def call(*args):
            flat = [a for arg in args for a in (arg if isinstance(arg, list) else [arg])]
            out = method(*args)
            self.calls.append({"method": name, "inputs": [_input(name, i, t) for i, t in enumerate(flat)],
                               "outputs": _outputs(name, flat, out, self.pad_id)})
            return out
        return call


def _input(method: str, index: int, t: torch.Tensor) -> dict:
    rope = method in ("prefill", "decode") and index in (1, 2)
    return values(t) if rope or method == "token_embedding" else digest(t)


def _outputs(method: str, inputs: list, out, pad_id: int) -> list[dict]:
    if method in ("prefill", "decode"):
        logits, new_k, new_v = out
        mask = inputs[3]
        valid = int((mask[0, :, -mask.shape[1]:] == 0).sum(-1).max())  # the last valid row sees `valid` new columns
        return [values(_read_only(logits, slice(valid - 1, valid), 1)),
                *[values(_read_only(t, slice(0, valid), 2)) for t in (*new_k, *new_v)]]
    if method == "token_embedding":
        real = (inputs[0][0] != pad_id).tolist() + [False]  # prompt text never holds <pad>: it pads the call
        return [values(_read_only(out, slice(0, real.index(False)), 1))]
    return [values(out)]


class Replay:
    """Methods that return what was recorded, after checking the inputs equal the recorded ones."""

    def __init__(self, calls: list[dict]) -> None:
        self.calls, self.at = calls, 0
        names = {c["method"] for c in calls}
        self.methods = {name: self._method(name) for name in names}

    def _method(self, name: str):
        def call(*args):
            flat = [a for arg in args for a in (arg if isinstance(arg, list) else [arg])]
            assert self.at < len(self.calls), f"call {self.at} ({name}) was not recorded"
            rec = self.calls[self.at]
            assert rec["method"] == name, f"call {self.at}: {name}, recorded {rec['method']}"
            assert len(flat) == len(rec["inputs"]), f"call {self.at}: {len(flat)} inputs"
            for i, (doc, t) in enumerate(zip(rec["inputs"], flat, strict=True)):
                check(doc, t, f"call {self.at} ({name}) input {i}")
            self.at += 1
            outs = [tensor(d) for d in rec["outputs"]]
            if name in ("prefill", "decode"):
                n = (len(outs) - 1) // 2
                return outs[0], outs[1:1 + n], outs[1 + n:]
            return outs[0]
        return call


# ---- LlmModule's behaviour over the decoder ------------------------------------------------------
def tile_pixels(size: int) -> torch.Tensor:
    """The script's image tile [1, 3, size, size], by a formula Java repeats."""
    i = torch.arange(3 * size * size, dtype=torch.int64)
    return (((i * 37) % 255).float() / 127.5 - 1.0).reshape(1, 3, size, size)


def token_bytes(tokenizer, i: int) -> bytes:
    """One token's bytes (byte-level vocabulary; added tokens as their UTF-8 text)."""
    hf = tokenizer.hf
    added = hf.get_added_tokens_decoder()
    if i in added:
        return added[i].content.encode()
    table = _unbyte()
    return bytes(table[c] for c in hf.id_to_token(i))


def _unbyte() -> dict[str, int]:
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def drive(decoder, tokenizer, script: list[dict], eos: set[int]) -> list[dict]:
    """Play `script` as the app's runner would; per call what the callback saw."""
    results, last = [], None
    for step in script:
        kind = step["call"]
        if kind == "resetContext":
            decoder.reset()
            results.append({})
        elif kind == "prefillImage":
            feats = decoder.vision_encoder(tile_pixels(step["size"]))
            last = decoder.text_decoder(feats, torch.arange(decoder.pos, decoder.pos + feats.shape[1]))
            results.append({})
        else:
            ids = tokenizer.encode(step["text"])
            emb = decoder.token_embedding(torch.tensor([ids]))
            last = decoder.text_decoder(emb, torch.arange(decoder.pos, decoder.pos + len(ids)))
            results.append({"prompt_tokens": len(ids)} if kind == "prefillPrompt" else
                           _generate(decoder, tokenizer, last, len(ids), step, eos))
    return results


def _generate(decoder, tokenizer, logits, n_prompt: int, step: dict, eos: set[int]) -> dict:
    """LlmModule's generate after the prompt's prefill; `stop_after`: the callback that calls stop()."""
    budget = min(step["seq_len"], decoder.cache_len) - decoder.pos
    pending, pieces, tokens, stop = b"", [], [], False
    cur = int(logits.argmax(-1))
    generated = 0
    while True:
        tokens.append(cur)
        pending += token_bytes(tokenizer, cur)
        try:
            pieces.append(pending.decode("utf-8"))
            pending = b""
            stop = stop or len(pieces) == step.get("stop_after", 0)
        except UnicodeDecodeError:
            pass
        if generated == 0:
            stop = False  # the token generator resets the flag after the prefill token
        elif stop or cur in eos:
            break
        if generated >= budget - 1:
            break
        emb = decoder.token_embedding(torch.tensor([[cur]]))
        logits = decoder.text_decoder(emb, torch.tensor([decoder.pos]))
        cur = int(logits.argmax(-1))
        generated += 1
    return {"prompt_tokens": n_prompt, "generated_tokens": generated, "tokens": tokens, "pieces": pieces}


SCRIPTS = {
    "kv": [{"call": "prefillPrompt", "text": "[|Human|]: <im_start>"},
           {"call": "prefillImage", "size": 64},
           {"call": "generate", "text": "<im_end> What is 17+25?[|AI|]:", "seq_len": 52}],
    "float": [{"call": "generate", "text": "[|Human|]: What is 530+627? Say it.[|AI|]:", "seq_len": 36},
              {"call": "generate", "text": "[|Human|]: And 4+4?[|AI|]:", "seq_len": 60, "stop_after": 3},
              {"call": "resetContext"},
              {"call": "generate", "text": "[|Human|]: hi[|AI|]:", "seq_len": 16}],
}


# ---- building the variants -----------------------------------------------------------------------
def kv_program(work: Path) -> tuple[dict, dict]:
    """The QNN export of the tiny preset (as tests/conftest.py's qnn_bundle): methods + metadata."""
    from bluelm_edge import contract
    from bluelm_edge.export import archive
    from bluelm_edge.export.pipeline import ExportOptions, run_export
    from bluelm_edge.export.quant_io import integer_methods

    out = work / "qnn"
    run_export(ExportOptions(preset="tiny", backend="qnn", soc="SM8650", max_context=64, out=out, samples=2,
                             prefill_chunk=16), show=False)
    programs, info = archive.load_programs(out / contract.PROGRAM_PT2)
    meta = info["constants"]
    assert meta["get_kv_io_bit_width"] == 8 and meta["get_logits_bit_width"] == 32  # --graph-io kv
    return integer_methods({k: p.module() for k, p in programs.items()}, meta), meta


def float_exported() -> tuple[dict, dict]:
    """The shipped stand-in's fp32 static programs (torch.export) at context 64, chunk 16, + metadata."""
    from bluelm_edge import contract
    from bluelm_edge.export import quant_io
    from bluelm_edge.graphs.methods import set_max_context
    from bluelm_edge.graphs.static import export_npu, npu_modules
    from bluelm_edge.model.checkpoint import load_checkpoint
    from bluelm_edge.paths import DEFAULT_MODEL_DIR

    model, _ = load_checkpoint(DEFAULT_MODEL_DIR)
    model.eval()
    set_max_context(model, 64)
    meta = contract.npu_metadata(model.cfg, 16, 1, quant_io.fp32_metadata(model.cfg.decoder.layers))
    return export_npu(npu_modules(model), model.cfg, 16, 1), meta


def float_program() -> tuple[dict, dict]:
    """`float_exported` as callables."""
    eps, meta = float_exported()
    return {k: ep.module() for k, ep in eps.items()}, meta


def variant(name: str, methods: dict, meta: dict, tokenizer) -> dict:
    from bluelm_edge.export.npu_host import NpuDecoder

    rec = Recorder(methods, int(meta["get_pad_id"]))
    results = drive(NpuDecoder(rec.methods, meta), tokenizer, SCRIPTS[name], set(meta["get_eos_ids"]))
    keys = sorted(k for k in meta if k.startswith("get_"))
    return {"name": name, "metadata": {k: meta[k] for k in keys}, "script": SCRIPTS[name], "results": results,
            "calls": rec.calls}


def main() -> None:
    import tempfile

    from bluelm_edge.paths import DEFAULT_MODEL_DIR
    from bluelm_edge.text.tokenizer import Tokenizer

    torch.manual_seed(0)
    tokenizer = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
    with tempfile.TemporaryDirectory() as work, torch.no_grad():
        variants = [variant("kv", *kv_program(Path(work)), tokenizer), variant("float", *float_program(), tokenizer)]
    doc = {"about": __doc__.split("\n\n")[0],
           "tokenizer": json.loads((DEFAULT_MODEL_DIR / "tokenizer.json").read_text()),
           "tolerance": TOLERANCE, "poison_uint8": POISON, "variants": variants}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): " + ", ".join(
        f"{v['name']} {len(v['calls'])} calls" for v in variants))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
