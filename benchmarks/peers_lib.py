"""Helpers and child processes of `benchmarks/peers.py` (the peers benchmark).

Top level imports the standard library only: this file also runs as the llama.cpp worker in its own
venv (`/work/peers/llamacpp-venv`, no torch there). Child commands (`python peers_lib.py CMD ...`):

  make-weights   seeded random LlamaForCausalLM folder + byte-level BPE tokenizer (the one source)
  convert        that folder -> our checkpoint, Meta `.pth` + params.json, a GGUF source folder
  export-ours    `bluelm_edge.export.pipeline.run_export` of our checkpoint (one recipe)
  quantize-gguf  `llama_cpp.llama_model_quantize` (llama.cpp venv)
  worker-et      loads a .pte in ExecuTorch's `TextLLMRunner`; measures on request (JSON lines)
  worker-lcpp    loads a GGUF in `llama_cpp.Llama`; measures on request (JSON lines)
"""

from __future__ import annotations

import json
import os
import random
import string
import sys
import time
from pathlib import Path

SPECIAL = ("<pad>", "<s>", "</s>", "[|Human|]:", "[|AI|]:", "[|BlueThink|]", "<think>", "</think>",
           "<im_start>", "<image>", "<im_end>")  # ids 0..10, as bluelm_edge.model.config.SPECIAL_TOKENS
MAX_CONTEXT = 512
PROMPT_TOKENS = 128
NEW_TOKENS = 128  # decode steps (one-token forward calls) after the token sampled from the prefill

SHAPES = {  # transformers LlamaConfig fields
    "a": dict(hidden_size=1024, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=4,
              intermediate_size=2816, vocab_size=32000, rope_theta=10_000.0, rms_norm_eps=1e-5),
    "b": dict(hidden_size=2560, num_hidden_layers=4, num_attention_heads=20, num_key_value_heads=4,
              head_dim=128, intermediate_size=6912, vocab_size=100_352, rope_theta=1_000_000.0,
              rms_norm_eps=1e-6),
}


def shape_dir(work: Path, shape: str) -> Path:
    return Path(work) / f"shape_{shape}"


# ---- tokenizers ---------------------------------------------------------------------------------
def _words(vocab_size: int, budget: int, prefix: str) -> list[tuple[str, str]]:
    """Merges (left, right) building prefix+[a-z]{1..} words, shortest first, `budget` of them."""
    merges, prev = [], [prefix]
    while len(merges) < budget:
        nxt = []
        for p in prev:
            for c in string.ascii_lowercase:
                if len(merges) == budget:
                    break
                merges.append((p, c))
                nxt.append(p + c)
        prev = nxt
    return merges


def byte_level_tokenizer(vocab_size: int):
    """Byte-level BPE of exactly `vocab_size` ids: specials 0..10, 256 byte symbols, then merges
    that make ' ' + 1..4 lowercase letters single tokens (what bluelm_edge's Tokenizer accepts)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    merges = _words(vocab_size, vocab_size - len(vocab), "\u0120")  # 'Ġ' is the byte-level space
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True) for s in SPECIAL])
    assert tok.get_vocab_size() == vocab_size
    return tok


def llama_style_tokenizer(vocab_size: int):
    """A Llama-2-style (byte-fallback BPE, '▁' words) tokenizer.json of the same size, for
    llama.cpp's converter only (it reads it as an SPM vocab; byte-level BPE would need a known
    pre-tokenizer hash). llama.cpp is fed token ids, so this vocab is never used to tokenize."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in "\u2581" + string.ascii_lowercase:
        vocab[ch] = len(vocab)
    merges = _words(vocab_size, vocab_size - len(vocab), "\u2581")
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token="<pad>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(s, special=True) for s in SPECIAL])
    assert tok.get_vocab_size() == vocab_size
    return tok


def prompt_text(n: int = PROMPT_TOKENS, seed: int = 0) -> str:
    """n words ' xyz' (3 letters, each one token in both tokenizers)."""
    rng = random.Random(seed)
    return "".join(" " + "".join(rng.choice(string.ascii_lowercase) for _ in range(3)) for _ in range(n))


# ---- weights ------------------------------------------------------------------------------------
def make_weights(shape: str, work: Path, seed: int = 0) -> None:
    """shape_X/hf: seeded random LlamaForCausalLM (safetensors, fp32) + tokenizer files."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = shape_dir(work, shape) / "hf"
    if (out / "done").is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    s = dict(SHAPES[shape])
    theta = s.pop("rope_theta")
    cfg = LlamaConfig(**s, max_position_embeddings=MAX_CONTEXT, tie_word_embeddings=False, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0, rope_parameters={"rope_type": "default", "rope_theta": theta},
                      torch_dtype="float32")
    torch.manual_seed(seed)
    with torch.no_grad():
        model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(out, safe_serialization=True, max_shard_size="20GB")
    byte_level_tokenizer(s["vocab_size"]).save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
         "pad_token": "<pad>"}, indent=2))
    (out / "done").write_text("ok\n")


def _meta_permute(w, heads: int):
    """HF q/k rows (rotate-half RoPE) -> Meta rows (interleaved pairs): undo HF's conversion permute."""
    rows, cols = w.shape
    return w.view(heads, 2, rows // heads // 2, cols).transpose(1, 2).reshape(rows, cols).contiguous()


def convert(shape: str, work: Path) -> None:
    """hf -> ours (bluelm-edge checkpoint), meta (consolidated.00.pth + params.json), gguf_src."""
    import torch
    from safetensors.torch import load_file

    sd_dir = shape_dir(work, shape)
    hf = sd_dir / "hf"
    hcfg = json.loads((hf / "config.json").read_text())
    heads, kv = hcfg["num_attention_heads"], hcfg["num_key_value_heads"]
    theta = (hcfg.get("rope_parameters") or {}).get("rope_theta", hcfg.get("rope_theta"))

    meta = sd_dir / "meta"
    if not (meta / "done").is_file():
        meta.mkdir(parents=True, exist_ok=True)
        src = load_file(str(hf / "model.safetensors"))
        names = {"model.embed_tokens.weight": "tok_embeddings.weight", "model.norm.weight": "norm.weight",
                 "lm_head.weight": "output.weight"}
        per = {"self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
               "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
               "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
               "mlp.up_proj": "feed_forward.w3", "input_layernorm": "attention_norm",
               "post_attention_layernorm": "ffn_norm"}
        out = {}
        for k, v in src.items():
            if k in names:
                out[names[k]] = v
                continue
            _, _, i, rest = k.split(".", 3)
            mod = rest.rsplit(".", 1)[0]
            if mod == "self_attn.q_proj":
                v = _meta_permute(v, heads)
            elif mod == "self_attn.k_proj":
                v = _meta_permute(v, kv)
            out[f"layers.{i}.{per[mod]}.weight"] = v
        torch.save(out, meta / "consolidated.00.pth")
        del src, out
        params = {"dim": hcfg["hidden_size"], "n_layers": hcfg["num_hidden_layers"], "n_heads": heads,
                  "n_kv_heads": kv, "vocab_size": hcfg["vocab_size"], "hidden_dim": hcfg["intermediate_size"],
                  "head_dim": hcfg.get("head_dim") or hcfg["hidden_size"] // heads,
                  "norm_eps": hcfg["rms_norm_eps"], "rope_theta": theta, "use_scaled_rope": False}
        (meta / "params.json").write_text(json.dumps(params, indent=2))
        (meta / "done").write_text("ok\n")

    ours = sd_dir / "ours_ckpt"
    if not (ours / "config.json").is_file():
        from bluelm_edge.model.adapter import Adapter
        from bluelm_edge.model.checkpoint import load_hf_llama, save_checkpoint
        from bluelm_edge.model.config import AdapterConfig, BlueLMConfig, VisionConfig
        from bluelm_edge.model.vision import VisionTower
        from bluelm_edge.model.vlm import BlueLM, _init_weights

        decoder, dcfg = load_hf_llama(hf, max_seq_len=MAX_CONTEXT)
        vis = VisionConfig(image_size=14, patch_size=14, width=32, layers=1, heads=1, mlp_dim=32)
        cfg = BlueLMConfig(name=f"peers-{shape}", vision=vis, adapter=AdapterConfig(merge=1, hidden_dim=32),
                           decoder=dcfg, max_tiles=1).validate()
        with torch.device("meta"):
            model = BlueLM(cfg)
        torch.manual_seed(1)
        model.vision = VisionTower(vis)
        model.adapter = Adapter(vis.width, 1, 32, dcfg.dim)
        model.vision.apply(_init_weights)
        model.adapter.apply(_init_weights)
        model.decoder = decoder
        save_checkpoint(model, cfg, ours, tokenizer_json_path=hf / "tokenizer.json")

    gsrc = sd_dir / "gguf_src"
    if not (gsrc / "tokenizer.json").is_file():
        gsrc.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors", "generation_config.json"):
            if (hf / name).exists() and not (gsrc / name).exists():
                (gsrc / name).symlink_to(hf / name)
        (gsrc / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
             "unk_token": "<pad>", "pad_token": "<pad>", "add_bos_token": False}, indent=2))
        llama_style_tokenizer(hcfg["vocab_size"]).save(str(gsrc / "tokenizer.json"))


# ---- our export ---------------------------------------------------------------------------------
def export_ours(ckpt: Path, recipe: str, out: Path, result_json: Path) -> None:
    import dataclasses

    import torch

    torch.set_num_threads(2)
    from bluelm_edge.export.pipeline import ExportOptions, run_export

    kw = dict(model=Path(ckpt), recipe=recipe, max_context=MAX_CONTEXT, out=Path(out), benchmark=False, force=True)
    has_text_only = "text_only" in {f.name for f in dataclasses.fields(ExportOptions)}
    if has_text_only:
        kw["text_only"] = True
    res = run_export(ExportOptions(**kw), show=False)
    Path(result_json).write_text(json.dumps({"text_only": has_text_only, "stage_s": res.stage_s,
                                             "quality": res.quality, "cached": res.cached}, indent=2, default=str))


# ---- workers (JSON lines on a private fd; the C++ runners print to stdout, sent to /dev/null) ---
def _proto():
    out = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    return out


def _status() -> dict:
    d = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "Threads"):
            d[k] = int(v.split()[0])
    return d


def _serve(out, load, measure) -> None:
    t0 = time.perf_counter()
    info = load()
    info.update(load_s=round(time.perf_counter() - t0, 3), status=_status())
    print(json.dumps({"ready": info}), file=out)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        try:
            r = measure(req)
            r["status"] = _status()
        except Exception as err:  # reported to the orchestrator, which records it
            r = {"error": f"{type(err).__name__}: {err}"}
        print(json.dumps(r), file=out)


def worker_et(pte: str, tokenizer: str) -> None:
    out = _proto()
    state = {}

    def load():
        import torch

        torch.set_num_threads(2)
        from bluelm_edge.graphs.xnnpack import bind_executorch_blas, load_custom_ops

        # Both .pte kinds: ExecuTorch's kernels call ExecuTorch's own BLAS (Eigen, as a phone runs
        # them), not torch's MKL, which the dynamic linker would otherwise bind.
        eigen = bind_executorch_blas()
        load_custom_ops()
        import executorch.kernels.quantized  # noqa: F401
        from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner
        from executorch.extension.pybindings import portable_lib

        before = portable_lib._threadpool_get_thread_count()
        portable_lib._unsafe_reset_threadpool(2)
        state["runner"] = TextLLMRunner(pte, tokenizer)
        state["cfg"] = GenerationConfig
        return {"threadpool_before": before, "threadpool": portable_lib._threadpool_get_thread_count(),
                "executorch_blas": eigen}

    def measure(req):
        stats = {}
        n_new = req["new_tokens"]
        cfg = state["cfg"](echo=False, max_new_tokens=n_new + 1, temperature=0.0, seq_len=PROMPT_TOKENS + n_new + 1)
        runner = state["runner"]
        runner.reset()
        t0 = time.perf_counter()
        runner.generate(req["prompt"], cfg, stats_callback=lambda s: stats.update(_stats_dict(s)))
        wall = time.perf_counter() - t0
        s = stats  # num_generated_tokens: decode-step tokens, after the one sampled from the prefill
        pre_ms = s["prompt_eval_end_ms"] - s["inference_start_ms"]  # token_encode_end_ms is left 0
        dec_ms = s["inference_end_ms"] - s["first_token_ms"]
        n_dec = s["num_generated_tokens"]
        return {"n_prompt": s["num_prompt_tokens"], "n_decode": n_dec, "prefill_ms": pre_ms, "decode_ms": dec_ms,
                "prefill_tok_s": s["num_prompt_tokens"] / pre_ms * 1e3, "decode_tok_s": n_dec / dec_ms * 1e3,
                "ttft_ms": s["first_token_ms"] - s["inference_start_ms"],
                "sampling_ms": s["aggregate_sampling_time_ms"], "wall_s": wall, "raw": s}

    _serve(out, load, measure)


def _stats_dict(s) -> dict:
    if isinstance(s, str):
        return json.loads(s)
    keys = ("model_load_start_ms", "model_load_end_ms", "inference_start_ms", "token_encode_end_ms",
            "prompt_eval_end_ms", "first_token_ms", "inference_end_ms", "aggregate_sampling_time_ms",
            "aggregate_model_execution_time_ms", "num_prompt_tokens", "num_generated_tokens")
    return {k: getattr(s, k) for k in keys if hasattr(s, k)}


def worker_lcpp(gguf: str) -> None:
    out = _proto()
    state = {}

    def load():
        import llama_cpp
        import numpy as np

        state["np"] = np
        state["llm"] = llama_cpp.Llama(model_path=gguf, n_threads=2, n_threads_batch=2, n_ctx=MAX_CONTEXT,
                                       n_batch=PROMPT_TOKENS, n_ubatch=PROMPT_TOKENS, verbose=False)
        return {"llama_cpp": llama_cpp.__version__, "system_info": llama_cpp.llama_print_system_info().decode()}

    def measure(req):
        llm, np = state["llm"], state["np"]
        ids = req["prompt_ids"]
        n_vocab = llm.n_vocab()

        def last_argmax() -> int:  # the logits of the batch's last token (the only one computed)
            return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))))

        llm.reset()  # n_tokens = 0; eval() drops the cache past it
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        tok = last_argmax()
        t_first = time.perf_counter()
        gen = [tok]
        for _ in range(req["new_tokens"]):
            llm.eval([tok])
            tok = last_argmax()
            gen.append(tok)
        t2 = time.perf_counter()
        n_dec = req["new_tokens"]
        return {"n_prompt": len(ids), "n_decode": n_dec, "prefill_ms": (t1 - t0) * 1e3,
                "decode_ms": (t2 - t_first) * 1e3, "prefill_tok_s": len(ids) / (t1 - t0),
                "decode_tok_s": n_dec / (t2 - t_first), "ttft_ms": (t_first - t0) * 1e3, "wall_s": t2 - t0,
                "first_ids": gen[:12]}

    _serve(out, load, measure)


def quantize_gguf(src: str, dst: str, qtype: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
                    "q4_0-pure": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}[qtype]
    params.pure = qtype.endswith("-pure")  # default Q4_0 keeps the output head at Q6_K
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize returned {rc}")


def gguf_tensor_bytes(path: str) -> dict:
    """{tensor name: (ggml type name, bytes)} from a GGUF's header (vendored gguf-py)."""
    from gguf import GGUFReader

    r = GGUFReader(path)
    return {t.name: (t.tensor_type.name, int(t.n_bytes)) for t in r.tensors}


# ---- report -------------------------------------------------------------------------------------
def table(summary: dict) -> str:
    """The results as a markdown table."""
    lines = ["| shape | contender | decode tok/s (min-max) | prefill tok/s | TTFT ms | size MB | export s | "
             "export peak MiB | bytes/tok MB | roofline | ours/this decode (paired) | ours/this prefill (paired) |",
             "|" + "---|" * 12]
    for shape, rows in summary.items():
        for n, r in rows.items():
            if "decode_tok_s" not in r:
                lines.append(f"| {shape} | {n} | failed: {r['errors'][:1]} |" + " |" * 9)
                continue
            d, p, t = r["decode_tok_s"], r["prefill_tok_s"], r["ttft_ms"]
            ratio, pr = r.get("ours_over_this", {}), r.get("ours_over_this_paired_median", {})
            ratio = {k: f"{v:.2f} ({pr[k]:.2f})" if k in pr else f"{v:.2f} (n/a)" for k, v in ratio.items()}
            lines.append(f"| {shape} | {n} | {d['median']:.1f} ({d['min']:.1f}-{d['max']:.1f}) | {p['median']:.0f} | "
                         f"{t['median']:.0f} | {r['size_mb']:.0f} | {r['export_wall_s'] or 0:.0f} | "
                         f"{r['export_peak_rss_mib'] or 0:.0f} | {r['bytes_per_token']['total'] / 1e6:.0f} | "
                         f"{r['roofline_fraction']:.2f} | {ratio.get('decode_tok_s', '')} | "
                         f"{ratio.get('prefill_tok_s', '')} |")
    return "\n".join(lines)


def plot(summary: dict, path: Path, fp32: set, ours_ref: dict) -> None:
    """Bar charts: decode and prefill tok/s per contender per shape, ratio to ours annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(summary)
    fig, axes = plt.subplots(2, len(shapes), figsize=(7 * len(shapes), 9), squeeze=False)
    for j, shape in enumerate(shapes):
        rows = {n: r for n, r in summary[shape].items() if "decode_tok_s" in r}
        for i, key in enumerate(("decode_tok_s", "prefill_tok_s")):
            ax = axes[i][j]
            names = list(rows)
            med = [rows[n][key]["median"] for n in names]
            err = [[m - rows[n][key]["min"] for n, m in zip(names, med, strict=True)],
                   [rows[n][key]["max"] - m for n, m in zip(names, med, strict=True)]]
            colors = [{"ours": "tab:blue", "el": "tab:orange"}.get(n.split("-")[0], "tab:green") for n in names]
            ax.bar(range(len(names)), med, yerr=err, color=colors, capsize=3)
            for x, n in enumerate(names):
                ref = rows.get(ours_ref[n in fp32])
                txt = f"{med[x]:.0f}" if med[x] >= 10 else f"{med[x]:.1f}"
                if ref and not n.startswith("ours"):
                    txt += f"\nours/this {ref[key]['median'] / med[x]:.2f}"
                ax.text(x, med[x], txt, ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
            ax.set_title(f"shape {shape}: {key.replace('_tok_s', '')} tok/s (median, min-max), 2 threads")
    fig.suptitle("ours (blue) vs ExecuTorch export_llm (orange) vs llama.cpp (green); same weights\n"
                 "ours/this: ours-fp32 over fp32 peers, ours-8da4w-head4 over quantized ones (>1: ours faster)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)



if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make-weights":
        make_weights(args[0], Path(args[1]))
    elif cmd == "convert":
        convert(args[0], Path(args[1]))
    elif cmd == "export-ours":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        export_ours(Path(args[0]), args[1], Path(args[2]), Path(args[3]))
    elif cmd == "quantize-gguf":
        quantize_gguf(*args)
    elif cmd == "worker-et":
        worker_et(*args)
    elif cmd == "worker-lcpp":
        worker_lcpp(*args)
    elif cmd == "gguf-bytes":
        print(json.dumps(gguf_tensor_bytes(args[0])))
    else:
        raise SystemExit(f"unknown command {cmd}")
