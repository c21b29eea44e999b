"""Peers benchmark: the same seeded random LLaMA weights through three CPU toolchains, side by side.

Contenders (all at 2 threads):
  ours-fp32, ours-8da4w, ours-8da4w-head4   bluelm-edge XNNPACK export (run_export), recipes
      fp32 / xnnpack-8da4w (8-bit head + 8-bit embeddings) / xnnpack-8da4w-head4 (export_llm's bits)
  el-fp32, el-8da4w        ExecuTorch's export_llm (llama3 class, kv cache, custom sdpa, XNNPACK)
  lcpp-f32, lcpp-q8_0, lcpp-q4_0, lcpp-q4_0-pure   llama.cpp (llama-cpp-python from the sdist)
Both .pte kinds run in ExecuTorch's C++ TextLLMRunner; llama.cpp is fed the same token ids.

Shapes: (a) ~250M LLaMA (1024 x 16 layers, 16/4 heads, FFN 2816, vocab 32000); (b) the
bluelm-2.5-3b decoder shapes with 4 layers (2560, 20/4 heads of 128, FFN 6912, vocab 100352).
Per shape: weights -> conversions -> exports (reused: <work>/shape_X/exports/<contender>/done.json;
--force redoes them) -> every runtime loaded in its own worker process -> R interleaved rounds of
[memory-bandwidth probe, then each contender: 128-token prompt + 128 decode steps].

Example:
  .venv/bin/python benchmarks/peers.py --shapes a,b --rounds 4 --out-json benchmarks/peers.json \\
      --plot benchmarks/peers.png --work /work/peers
  .venv/bin/python benchmarks/peers.py --shapes a --contenders ours-8da4w-head4,el-8da4w --force
Setup (once): benchmarks/peers_setup.sh builds llama-cpp-python into <work>/llamacpp-venv.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import peers_lib as L  # noqa: E402
from peers_machine import (  # noqa: E402
    _cpu,
    _rss_mib,
    _sys_busy,
    _threads,
    bandwidth_probe,
    machine,
    mem_available_mib,
    wait_quiet,
)

PY = sys.executable
CONTENDERS = {  # name: (toolchain, variant)
    "ours-fp32": ("ours", "fp32"), "ours-8da4w": ("ours", "xnnpack-8da4w"),
    "ours-8da4w-head4": ("ours", "xnnpack-8da4w-head4"),
    "el-fp32": ("el", None), "el-8da4w": ("el", "8da4w"),
    "lcpp-f32": ("lcpp", "f32"), "lcpp-q8_0": ("lcpp", "q8_0"), "lcpp-q4_0": ("lcpp", "q4_0"),
    "lcpp-q4_0-pure": ("lcpp", "q4_0-pure"),
}
FP32 = {"ours-fp32", "el-fp32", "lcpp-f32"}
OURS_REF = {True: "ours-fp32", False: "ours-8da4w-head4"}  # the same-bits "ours" each peer is compared to


def lcpp_python(work: Path) -> str:
    return str(work / "llamacpp-venv" / "bin" / "python")


def vendored_llama_cpp(work: Path) -> Path:
    found = sorted((work / "src").glob("llama_cpp_python-*/vendor/llama.cpp"))
    if not found:
        raise SystemExit(f"no llama.cpp sources under {work}/src: run benchmarks/peers_setup.sh {work}")
    return found[-1]


# ---- child processes: wall time + peak RSS (os.wait4) ---------------------------------------------
def run_child(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> dict:
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    killed = []
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd)

        def watch() -> None:  # the machine is shared: stop an export that passes the RSS limit
            while p.poll() is None:
                if _rss_mib(p.pid) > MAX_RSS_MIB:
                    killed.append(_rss_mib(p.pid))
                    p.kill()
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()
        _, status, ru = os.wait4(p.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    if killed:
        raise RuntimeError(f"{cmd[1]}: killed at {killed[0]:.0f} MiB RSS (limit {MAX_RSS_MIB} MiB); see {log}")
    out = {"cmd": cmd, "rc": rc, "wall_s": round(time.perf_counter() - t0, 2), "log": str(log),
           "peak_rss_mib": round(ru.ru_maxrss / 1024, 1), "cpu_s": round(ru.ru_utime + ru.ru_stime, 1)}
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))}... failed (rc {rc}); see {log}:\n" + "\n".join(tail))
    return out


MAX_RSS_MIB = 12 * 1024


def prepare(shape: str, work: Path) -> dict:
    """Weights (once), conversions (once), GGUF files (once)."""
    sd = L.shape_dir(work, shape)
    steps, lib = {}, str(HERE / "peers_lib.py")
    if not (sd / "hf" / "done").is_file():
        steps["make_weights"] = run_child([PY, lib, "make-weights", shape, str(work)], sd / "logs" / "weights.log")
    if not (sd / "gguf_src" / "tokenizer.json").is_file() or not (sd / "ours_ckpt" / "config.json").is_file():
        steps["convert"] = run_child([PY, lib, "convert", shape, str(work)], sd / "logs" / "convert.log",
                                     env={"PYTHONPATH": str(REPO)})
    return steps


def export(shape: str, name: str, work: Path, force: bool) -> dict:
    """Build one contender's artifact (reused when its done.json exists, unless force)."""
    sd = L.shape_dir(work, shape)
    kind, variant = CONTENDERS[name]
    d = sd / "exports" / name
    done = d / "done.json"
    if done.is_file() and not force:
        return json.loads(done.read_text())
    d.mkdir(parents=True, exist_ok=True)
    info: dict = {"contender": name, "shape": shape, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if kind == "ours":
        info["git_head"] = subprocess.run(["git", "-C", str(REPO), "log", "--oneline", "-1"], capture_output=True,
                                          text=True).stdout.strip()
        cmd = [PY, str(HERE / "peers_lib.py"), "export-ours", str(sd / "ours_ckpt"), variant, str(d / "bundle"),
               str(d / "result.json")]
        res = run_child(cmd, d / "export.log", env={"PYTHONPATH": str(REPO)})
        info.update(res, artifact=str(d / "bundle" / "model.pte"), tokenizer=str(d / "bundle" / "tokenizer.json"),
                    pipeline=json.loads((d / "result.json").read_text()))
    elif kind == "el":
        (d / "config.yaml").write_text(el_yaml(sd, d, variant))
        res = run_child([PY, "-m", "executorch.extension.llm.export.export_llm", "--config", str(d / "config.yaml")],
                        d / "export.log", cwd=d)
        info.update(res, artifact=str(d / "model.pte"), tokenizer=str(sd / "hf" / "tokenizer.json"),
                    config_yaml=(d / "config.yaml").read_text())
    else:
        f32 = sd / "gguf" / "f32.gguf"
        f32.parent.mkdir(parents=True, exist_ok=True)
        llama = vendored_llama_cpp(work)
        conv = [PY, str(llama / "convert_hf_to_gguf.py"), str(sd / "gguf_src"), "--outtype", "f32",
                "--outfile", str(f32)]
        if variant == "f32":
            res = run_child(conv, d / "export.log", env={"PYTHONPATH": str(llama / "gguf-py")})
            art = f32
        else:
            if not f32.is_file():
                export(shape, "lcpp-f32", work, False)
            art = sd / "gguf" / f"{variant}.gguf"
            cmd = [lcpp_python(work), str(HERE / "peers_lib.py"), "quantize-gguf", str(f32), str(art), variant]
            res = run_child(cmd, d / "export.log")
            res["note"] = "quantized from f32.gguf; add the lcpp-f32 conversion time for the whole path"
        info.update(res, artifact=str(art))
        info["tensors"] = tensor_types(art, work)
    info["size_bytes"] = Path(info["artifact"]).stat().st_size
    done.write_text(json.dumps(info, indent=2))
    return info


def el_yaml(sd: Path, d: Path, qmode: str | None) -> str:
    quant = f"quantization:\n  qmode: {qmode}\n  group_size: 32\n" if qmode else ""
    return f"""base:
  model_class: llama3
  checkpoint: {sd / 'meta' / 'consolidated.00.pth'}
  params: {sd / 'meta' / 'params.json'}
  metadata: '{{"get_bos_id": 1, "get_eos_ids": [2]}}'
model:
  use_kv_cache: true
  use_sdpa_with_kv_cache: true
  enable_dynamic_shape: true
  dtype_override: fp32
export:
  max_seq_length: 256
  max_context_length: {L.MAX_CONTEXT}
  output_dir: {d}
  output_name: model.pte
backend:
  xnnpack:
    enabled: true
    extended_ops: true
{quant}"""


def tensor_types(gguf: Path, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(vendored_llama_cpp(work) / "gguf-py")}
    out = subprocess.run([PY, str(HERE / "peers_lib.py"), "gguf-bytes", str(gguf)], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- bytes read per decode token -----------------------------------------------------------------
def bytes_per_token(shape: str, name: str, art: dict) -> dict:
    """Weights touched per decode step (every linear + the head + one embedding row) + the KV read."""
    s = L.SHAPES[shape]
    D, F, V, n = s["hidden_size"], s["intermediate_size"], s["vocab_size"], s["num_hidden_layers"]
    hd = s.get("head_dim") or D // s["num_attention_heads"]
    q, kv = s["num_attention_heads"] * hd, s["num_key_value_heads"] * hd
    lin = n * (D * q + 2 * D * kv + q * D + 3 * D * F)
    head = V * D
    kind, variant = CONTENDERS[name]
    if kind == "lcpp":
        t = art["tensors"]
        wbytes = sum(b for k, (_, b) in t.items() if k != "token_embd.weight") + t["token_embd.weight"][1] // V
    else:
        per = {"fp32": 4.0, "8da4w": 0.5 + 2 / 32, "8da8w": 1.0}  # int4 + one bf16 scale per 32 (XNNPACK qb4w)
        lin_s = "fp32" if variant in (None, "fp32") else "8da4w"
        head_s = {"xnnpack-8da4w": "8da8w", "xnnpack-8da4w-head4": "8da4w", "8da4w": "8da4w"}.get(variant, "fp32")
        wbytes = lin * per[lin_s] + head * per[head_s] + D * 4
    whole_cache = art.get("graph") == "plain"  # our old graph read the whole static cache every step
    ctx = L.MAX_CONTEXT if whole_cache else L.PROMPT_TOKENS + L.NEW_TOKENS / 2
    kv_read = n * 2 * kv * 4 * ctx
    return {"weights": int(wbytes), "kv": int(kv_read), "total": int(wbytes + kv_read), "kv_ctx": ctx}


def pte_graph(pte: str) -> str:
    data = Path(pte).read_bytes()
    return "custom_sdpa" if b"custom_sdpa" in data else "plain"


# ---- measurement ----------------------------------------------------------------------------------
class Worker:
    def __init__(self, name: str, art: dict, work: Path) -> None:
        kind = CONTENDERS[name][0]
        if kind == "lcpp":
            cmd = [lcpp_python(work), str(HERE / "peers_lib.py"), "worker-lcpp", art["artifact"]]
        else:
            cmd = [PY, str(HERE / "peers_lib.py"), "worker-et", art["artifact"], art["tokenizer"]]
        self.name, self.kind = name, kind
        logs = L.shape_dir(work, art["shape"]) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = open(logs / f"worker-{name}.log", "w")
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                  env=env)
        self.ready = self._reply(600)

    def _reply(self, timeout: float) -> dict:
        """Next JSON line; meanwhile sample the worker's thread count and CPU time."""
        t0, cpu0, sys0, threads = time.perf_counter(), _cpu(self.p.pid), _sys_busy(), 0
        while True:
            r, _, _ = select.select([self.p.stdout], [], [], 0.05)
            threads = max(threads, _threads(self.p.pid))
            if r:
                line = self.p.stdout.readline()
                if not line:
                    raise RuntimeError(f"worker {self.name} died; see {self.log.name}")
                out = json.loads(line)
                wall = time.perf_counter() - t0
                mine = _cpu(self.p.pid) - cpu0
                out["observed"] = {"max_threads": threads, "cpu_util": round(mine / wall, 2),
                                   "others_cores": round(max(0.0, (_sys_busy() - sys0 - mine) / wall), 2)}
                return out
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"worker {self.name}: no reply in {timeout} s")

    def run(self, prompt: str, ids: list[int]) -> dict:
        prompt_in = {"prompt_ids": ids} if self.kind == "lcpp" else {"prompt": prompt}
        req = {"cmd": "run", "new_tokens": L.NEW_TOKENS, **prompt_in}
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        return self._reply(1800)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.write('{"cmd": "quit"}\n')
            self.p.stdin.flush()
            self.p.wait(60)
        self.log.close()


def groups_by_memory(names: list[str], arts: dict) -> list[list[str]]:
    """Contenders loaded together, packed under what memory is available now (less 4 GiB)."""
    budget = mem_available_mib() - 4096
    need = {n: arts[n]["size_bytes"] / 2**20 * 1.3 + 300 for n in names}
    refs = [r for r in OURS_REF.values() if r in names]
    groups, cur, used = [], [], 0.0
    for n in names:
        if cur and used + need[n] > budget:
            groups.append(cur)
            # the ours references run in every group (paired ratios), as many as fit
            cur = [r for i, r in enumerate(refs) if sum(need[x] for x in refs[: i + 1]) + need[n] <= budget]
            used = sum(need[x] for x in cur)
        if n not in cur:
            cur.append(n)
            used += need[n]
    return groups + [cur] if cur else groups


CONTENDED = 0.3  # other processes' cores during a run above which it is redone


def measure(shape: str, names: list[str], arts: dict, rounds: int, work: Path, buf, quiet_wait: float = 300,
            retries: int = 2) -> dict:
    prompt = L.prompt_text()
    ids = _prompt_ids(shape, work, prompt)
    out = {"prompt_ids_head": ids[:8], "rounds": [], "load": {}, "groups": groups_by_memory(names, arts)}
    for group in out["groups"]:
        workers = {}
        try:
            for n in group:
                workers[n] = Worker(n, arts[n], work)
                out["load"][n] = workers[n].ready
            for n, w in workers.items():  # warm-up (first XNNPACK run allocates), not recorded
                out["load"][n]["warmup"] = w.run(prompt, ids)
            for r in range(rounds):
                rec = {"group": group, "round": r + 1, "loadavg": os.getloadavg(), "bandwidth": bandwidth_probe(buf),
                       "time": time.strftime("%H:%M:%S"), "runs": {}}
                for n, w in workers.items():  # a run the rest of the machine disturbed is redone (kept too)
                    tries = []
                    for _ in range(1 + retries):
                        quiet = wait_quiet(quiet_wait)
                        res = w.run(prompt, ids)
                        res["quiet"] = quiet
                        tries.append(res)
                        print(f"  [{shape} r{r + 1}] {n:18s} " + _fmt(res), flush=True)
                        if res.get("observed", {}).get("others_cores", 0) < CONTENDED:
                            break
                    rec["runs"][n] = min(tries, key=lambda t: t.get("observed", {}).get("others_cores", 9))
                    rec["runs"][n]["contended"] = rec["runs"][n].get("observed", {}).get("others_cores", 0) >= CONTENDED
                    rec.setdefault("disturbed", {})[n] = tries[:-1] if len(tries) > 1 else []
                rec["loadavg_end"] = os.getloadavg()
                out["rounds"].append(rec)
        finally:
            for w in workers.values():
                w.close()
    return out


def _fmt(r: dict) -> str:
    if "error" in r:
        return "ERROR " + r["error"]
    o = r["observed"]
    return (f"prefill {r['prefill_tok_s']:7.1f} tok/s  decode {r['decode_tok_s']:6.2f} tok/s"
            f"  ttft {r['ttft_ms']:7.1f} ms  threads {o['max_threads']} cpu {o['cpu_util']} others {o['others_cores']}")


def _prompt_ids(shape: str, work: Path, prompt: str) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(L.shape_dir(work, shape) / "hf" / "tokenizer.json"))
    ids = tok.encode(prompt, add_special_tokens=False).ids
    assert len(ids) == L.PROMPT_TOKENS, len(ids)
    return ids


def summarize(shape: str, names: list[str], arts: dict, meas: dict) -> dict:
    rows = {}
    for n in names:
        runs = [r["runs"][n] for r in meas["rounds"] if n in r["runs"] and "error" not in r["runs"][n]]
        clean = [r for r in runs if not r.get("contended")]
        row_note = None if len(clean) == len(runs) else f"{len(runs) - len(clean)} of {len(runs)} runs contended"
        runs = clean or runs
        bw = [r["bandwidth"]["read_gb_s"] for r in meas["rounds"] if n in r["runs"]]
        row = {"size_mb": round(arts[n]["size_bytes"] / 1e6, 1), "export_wall_s": arts[n].get("wall_s"),
               "export_peak_rss_mib": arts[n].get("peak_rss_mib"), "graph": arts[n].get("graph"),
               "errors": [r["runs"][n]["error"] for r in meas["rounds"] if "error" in r["runs"].get(n, {})],
               "note": row_note}
        for k in ("decode_tok_s", "prefill_tok_s", "ttft_ms"):
            v = [r[k] for r in runs]
            if v:
                row[k] = {"median": round(statistics.median(v), 2), "min": round(min(v), 2), "max": round(max(v), 2),
                          "all": v}
        if runs:
            row["n_decode"] = sorted({r["n_decode"] for r in runs})
            row["n_prompt"] = sorted({r["n_prompt"] for r in runs})
            bpt = bytes_per_token(shape, n, arts[n])
            gbs = statistics.median(bw)
            row["bytes_per_token"] = bpt
            row["effective_gb_s"] = round(row["decode_tok_s"]["median"] * bpt["total"] / 1e9, 2)  # >probe: probe is low
            row["roofline_fraction"] = round(row["effective_gb_s"] / gbs, 3)
            row["bandwidth_gb_s_median"] = gbs
        rows[n] = row
    keys = ("decode_tok_s", "prefill_tok_s")
    for n, row in rows.items():
        refn = OURS_REF[n in FP32]
        ref = rows.get(refn)
        if ref and "decode_tok_s" in row and "decode_tok_s" in ref:
            row["ours_over_this"] = {k: round(ref[k]["median"] / row[k]["median"], 3) for k in keys}
            row["ours_ref"] = refn
            paired = {k: [r["runs"][refn][k] / r["runs"][n][k] for r in meas["rounds"]
                          if refn in r["runs"] and n in r["runs"] and "error" not in r["runs"][n] | r["runs"][refn]]
                      for k in keys}  # same round, seconds apart: robust to drift
            row["ours_over_this_paired_median"] = {k: round(statistics.median(v), 3) for k, v in paired.items() if v}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="a,b")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--contenders", default=",".join(CONTENDERS), help="comma list from: " + ", ".join(CONTENDERS))
    ap.add_argument("--work", type=Path, default=Path("/work/peers"))
    ap.add_argument("--out-json", type=Path, default=HERE / "peers.json")
    ap.add_argument("--plot", type=Path, default=HERE / "peers.png")
    ap.add_argument("--force", action="store_true", help="redo the exports of the chosen contenders")
    ap.add_argument("--export-only", action="store_true", help="build artifacts, measure nothing")
    ap.add_argument("--quiet-wait", type=float, default=300,
                    help="seconds to wait before each run for the rest of the machine to go idle (< 0.3 cores)")
    ap.add_argument("--max-rss-gib", type=float, default=12,
                    help="kill an export whose RSS passes this (the machine is shared)")
    args = ap.parse_args()
    global MAX_RSS_MIB
    MAX_RSS_MIB = int(args.max_rss_gib * 1024)
    names = [n for n in args.contenders.split(",") if n]
    bad = [n for n in names if n not in CONTENDERS]
    if bad:
        ap.error(f"unknown contenders {bad}; choose from {', '.join(CONTENDERS)}")
    import torch

    torch.set_num_threads(2)
    buf = None if args.export_only else (torch.ones(2**28), torch.empty(2**28))  # 1 GiB each, for the probe
    old = json.loads(args.out_json.read_text()) if args.out_json.is_file() else {}
    settings = {"threads": 2, "prompt_tokens": L.PROMPT_TOKENS, "decode_steps": L.NEW_TOKENS,
                "max_context": L.MAX_CONTEXT, "rounds": args.rounds, "quiet_wait_s": args.quiet_wait,
                "contended_cores": CONTENDED}
    report = {"machine": machine(), "command": " ".join([Path(PY).name] + sys.argv), "settings": settings,
              "shapes": {s: L.SHAPES[s] for s in args.shapes.split(",")},
              "prepare": {}, "artifacts": {}, "measurements": {}, "summary": {}}
    for shape in args.shapes.split(","):
        print(f"== shape {shape}", flush=True)
        report["prepare"][shape] = prepare(shape, args.work)
        arts, failed = {}, {}
        for n in sorted(names, key=lambda n: CONTENDERS[n][0] == "ours"):  # ours last: its graph is being replaced
            print(f"  export {n} ...", flush=True)
            try:
                arts[n] = export(shape, n, args.work, args.force)
            except RuntimeError as err:
                failed[n] = str(err)
                print(f"  export {n} FAILED: {err}", flush=True)
                continue
            if CONTENDERS[n][0] != "lcpp":
                arts[n]["graph"] = pte_graph(arts[n]["artifact"])
            print(f"  export {n}: {arts[n].get('wall_s')} s, peak {arts[n].get('peak_rss_mib')} MiB, "
                  f"{arts[n]['size_bytes'] / 1e6:.0f} MB", flush=True)
        report["artifacts"][shape] = {n: {k: v for k, v in a.items() if k != "tensors"} for n, a in arts.items()}
        report["artifacts"][shape].update({n: {"failed": e} for n, e in failed.items()})
        if args.export_only:
            continue
        ok = [n for n in names if n in arts]
        report["measurements"][shape] = measure(shape, ok, arts, args.rounds, args.work, buf, args.quiet_wait)
        report["summary"][shape] = summarize(shape, ok, arts, report["measurements"][shape])
    if args.export_only:
        return
    for key in ("prepare", "measurements", "summary", "artifacts"):  # keep other shapes from an earlier run
        for shape, v in old.get(key, {}).items():
            report[key].setdefault(shape, v)
    report["table_md"] = L.table(report["summary"])
    args.out_json.write_text(json.dumps(report, indent=1, default=str))
    L.plot(report["summary"], args.plot, FP32, OURS_REF)
    print(report["table_md"])


if __name__ == "__main__":
    main()
