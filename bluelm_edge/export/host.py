"""The host runner: a bundle's `.pte` run through the ExecuTorch runtime as a `DecoderProtocol`.

Owns `PteDecoder` (the three contract methods over `executorch.runtime`, metadata read from the
program's constant methods), `load_bundle_decoder` (verify -> decoder, tokenizer, config), the
ETDump profile table (devtools Inspector) and `benchmark_host`, which writes the same results
JSON as the Android app's BenchmarkActivity (docs/contracts.md). Generation itself is the one
loop in `bluelm_edge.generate`; nothing here samples.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bluelm_edge import contract
from bluelm_edge.export.bundle import BundleError, read_manifest
from bluelm_edge.export.program import runtime_problems
from bluelm_edge.model.config import BlueLMConfig

# ETDump with timings only: no debug buffer (intermediate outputs would need ~200 MB and make the
# Inspector reject repeated calls of one method with different inputs).


def _runtime() -> Any:
    from bluelm_edge.graphs.xnnpack import bind_executorch_blas, load_custom_ops

    bind_executorch_blas()  # before any ExecuTorch kernel runs: Eigen's sgemm_, not torch's MKL
    import executorch.kernels.quantized  # noqa: F401  (registers quantized_decomposed::*.out)
    from executorch.runtime import Runtime

    load_custom_ops()  # llama::update_cache.out / custom_sdpa.out: a fresh `run` process needs them too

    return Runtime.get()


class PteDecoder:
    """`DecoderProtocol` over a multi-method `.pte`; the KV cache lives in the program's shared buffers."""

    def __init__(self, pte: Path, *, etdump: bool = False) -> None:
        self.path = Path(pte)
        self.program = _runtime().load_program(
            str(self.path), enable_etdump=etdump, debug_buffer_size=0
        )
        self._methods: dict[str, Any] = {}  # loaded on first use: each loaded method packs its own weights
        self.max_context = int(self.constant("get_max_context_len"))
        self.max_prefill = int(self.constant("get_max_prefill"))
        self.vision_batch = int(self.constant("get_vision_batch"))

    def constant(self, name: str) -> Any:
        """Value of a metadata constant method (a list for get_eos_ids)."""
        out = self.program.load_method(name).execute([])
        return out[0] if len(out) == 1 else list(out)

    def _run(self, name: str, *inputs: torch.Tensor) -> torch.Tensor:
        if name not in self._methods:
            if name not in self.program.method_names:
                raise BundleError(f"{self.path}: the program has no {name} method (exported --text-only?)")
            self._methods[name] = self.program.load_method(name)
        return self._methods[name].execute([t.contiguous() for t in inputs])[0]

    def vision_encoder(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [T, 3, S, S] -> [1, T*N, D], run `vision_batch` tiles at a time (last chunk padded)."""
        outs, b = [], self.vision_batch
        for lo in range(0, pixels.shape[0], b):
            chunk = pixels[lo : lo + b]
            pad = b - chunk.shape[0]
            if pad:
                chunk = torch.cat([chunk, chunk.new_zeros(pad, *chunk.shape[1:])])
            out = self._run(contract.VISION_ENCODER, chunk.float())  # [1, b*N, D]
            outs.append(out[:, : out.shape[1] * (b - pad) // b])
        return torch.cat(outs, dim=1)

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        return self._run(contract.TOKEN_EMBEDDING, ids.long())

    def text_decoder(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self._run(contract.TEXT_DECODER, embeds.float(), positions.long())

    def forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self._run(contract.FORWARD, ids.long(), positions.long())

    def reset(self) -> None:
        """Nothing to clear: the mask hides cache slots after the current position, so a new prompt
        written from position 0 never reads a previous conversation's keys."""

    def write_etdump(self, etdump_path: Path) -> Path:
        debug = Path(etdump_path).with_suffix(".debug.bin")
        self.program.write_etdump_result_to_file(str(etdump_path), str(debug))
        return debug


def bundle_program(bundle_dir: Path) -> tuple[dict[str, Any], Path]:
    """(manifest, path of model.pte) of a verified, lowered, host-runnable bundle (the program is
    checked through the runtime first, so a broken `.pte` is one line)."""
    manifest = read_manifest(bundle_dir)
    if not manifest["lowered"]:
        raise BundleError(f"{bundle_dir}: not lowered yet (no vendor SDK at export); run `bluelm-edge lower "
                          f"{bundle_dir}` on a machine with the SDK")
    if manifest["backend"] != "xnnpack":
        raise BundleError(f"{bundle_dir}: a {manifest['backend']} bundle runs only on its NPU; use "
                          "`bluelm-edge deploy`, or export --backend xnnpack to run on this host")
    pte = Path(bundle_dir) / manifest["program"]
    problems = runtime_problems(pte, manifest["app"])  # the header passed read_manifest: safe to load
    if problems:
        raise BundleError(f"{bundle_dir}/{problems[0]}")  # one line: the first problem
    return manifest, pte


def load_bundle_decoder(bundle_dir: Path, *, etdump: bool = False) -> tuple[PteDecoder, Any, BlueLMConfig]:
    """(decoder, tokenizer, config) of a bundle, for `generate`."""
    return load_bundle(bundle_dir, etdump=etdump)[:3]


def load_bundle(bundle_dir: Path, *, etdump: bool = False) -> tuple[PteDecoder, Any, BlueLMConfig, Any]:
    """(decoder, tokenizer, config, chat format) of a bundle, for `ChatSession`: the family and its
    template come from the manifest's `app.chat`."""
    return load_bundle_parts(bundle_dir, etdump=etdump)[:4]


def load_bundle_parts(bundle_dir: Path, *, etdump: bool = False) -> tuple[Any, Any, BlueLMConfig, Any, Any]:
    """`load_bundle` and the family's image reader (its rules from the bundle's own files). A
    static-kv NPU bundle runs on the host through its `program.pt2` (`npu_host_decoder`)."""
    from bluelm_edge.families import by_name

    manifest = read_manifest(bundle_dir)
    if manifest.get("runner") == contract.NPU_RUNNER:
        decoder = npu_host_decoder(Path(bundle_dir), etdump)
    else:
        decoder = PteDecoder(bundle_program(bundle_dir)[1], etdump=etdump)
    config, tokenizer, chat = bundle_text(Path(bundle_dir), manifest)
    images = by_name(chat.name).image_reader(Path(bundle_dir), config)
    return decoder, tokenizer, config, chat, images


def npu_host_decoder(bundle_dir: Path, etdump: bool = False) -> Any:
    """The host NPU runner over a static-kv bundle's lowering-ready `program.pt2`: the vendor-quantized
    graphs (weight dequantization folded, bit-identical) through the program's own I/O contract
    (integer I/O on QNN), as the phone's runner drives the lowered program."""
    from bluelm_edge.export import archive
    from bluelm_edge.export.npu_host import NpuDecoder

    path = bundle_dir / contract.PROGRAM_PT2
    if etdump:
        raise BundleError(f"{bundle_dir}: --profile times a .pte in the ExecuTorch runtime; an NPU program runs "
                          "here through its program.pt2 (no ETDump): profile it on the phone")
    if not path.is_file():
        raise BundleError(f"{bundle_dir}: no {contract.PROGRAM_PT2} to run on this host (an NPU .pte runs only on "
                          "its NPU); re-export the bundle, or use `bluelm-edge deploy`")
    programs, info = archive.load_programs(path)
    return NpuDecoder.folded(programs, info["constants"])


def bundle_session(bundle_dir: Path, *, etdump: bool = False) -> Any:
    """A `ChatSession` over a bundle in its family's chat format and image rules."""
    from bluelm_edge.session import ChatSession

    return ChatSession(*load_bundle_parts(bundle_dir, etdump=etdump))


def bundle_text(bundle_dir: Path, manifest: dict[str, Any]) -> tuple[BlueLMConfig, Any, Any]:
    """(config, tokenizer, chat format) of a bundle as its family reads them."""
    from bluelm_edge.families import by_name
    from bluelm_edge.text.tokenizer import Tokenizer

    config = BlueLMConfig.load(Path(bundle_dir) / contract.CONFIG_JSON)
    chat = manifest["app"].get("chat") or {"family": "bluelm"}
    family = by_name(chat["family"])
    special = None if family.name == "bluelm" else config.tokens  # BlueLM's ids are checked on load
    tokenizer = Tokenizer.from_file(Path(bundle_dir) / contract.TOKENIZER_JSON, special=special)
    return config, tokenizer, family.chat_from_manifest(chat, tokenizer)


# ---- profiling --------------------------------------------------------------------------------
def operator_table(etdump_path: Path, top: int = 25) -> list[dict[str, Any]]:
    """Per-operator times from an ETDump: [{name, calls, total_ms, avg_ms}], slowest first.

    The debug buffer is not read: intermediate outputs differ between calls of one method (other
    inputs), which the Inspector rejects when asked to merge them; only timings are wanted here.
    """
    from executorch.devtools import Inspector

    inspector = Inspector(etdump_path=str(etdump_path))
    rows: dict[str, dict[str, Any]] = {}
    for block in inspector.event_blocks:
        for event in block.events:
            if event.perf_data is None or event.name in ("Method::execute", "Method::init", "Program::load_method"):
                continue
            row = rows.setdefault(event.name, {"name": event.name, "calls": 0, "total_ms": 0.0})
            raw = list(event.perf_data.raw)
            row["calls"] += len(raw)
            row["total_ms"] += float(sum(raw))
    out = sorted(rows.values(), key=lambda r: -r["total_ms"])[:top]
    for r in out:
        r["avg_ms"] = r["total_ms"] / max(r["calls"], 1)
    return out


# ---- benchmark (same results JSON as the app) ---------------------------------------------------
def benchmark_host(
    bundle_dir: Path, prompts: Sequence[str], runs: int = 1, thinking_budget: int | None = None,
    max_new_tokens: int = 128,
) -> dict[str, Any]:
    """Run every prompt `runs` times through the bundle; results in docs/contracts.md's format."""
    manifest = read_manifest(bundle_dir)
    result: dict[str, Any] = {
        "schema_version": contract.RESULTS_SCHEMA_VERSION, "status": "ok", "error": None,
        "bundle_id": manifest["bundle_id"], "backend": manifest["backend"],
        "thinking_budget": thinking_budget, "runs": [],
    }
    for run in range(runs):
        t0 = time.perf_counter()
        decoder, tokenizer, config, chat = load_bundle(bundle_dir)
        load_ms = (time.perf_counter() - t0) * 1000
        for i, prompt in enumerate(prompts):
            result["runs"].append(_one_run(decoder, tokenizer, config, chat, prompt, thinking_budget,
                                           max_new_tokens) | {"run": run, "prompt_index": i, "load_ms": load_ms})
    return result


def _one_run(decoder, tokenizer, config, chat, prompt: str, budget: int | None, max_new: int) -> dict[str, Any]:
    from bluelm_edge.generate import Sampling
    from bluelm_edge.session import ChatSession

    session = ChatSession(decoder, tokenizer, config, chat)
    t0 = time.perf_counter()
    reply = session.ask(prompt, think=budget != 0, budget=budget, sampling=Sampling(max_new_tokens=max_new))
    s = reply.stats
    return {
        "ttft_ms": s.ttft_s * 1000, "prefill_tokens": s.prompt_tokens, "prefill_tok_s": s.prefill_tok_s,
        "decode_tokens": s.generated_tokens, "decode_tok_s": s.decode_tok_s,
        "thinking_tokens": s.thinking_tokens, "total_ms": (time.perf_counter() - t0) * 1000,
        "peak_memory_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
