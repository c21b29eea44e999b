"""A Qwen3-0.6B-shaped Hugging Face folder (random weights, bf16, published config) through `export`.

What a user downloading Qwen/Qwen3-0.6B should expect from `bluelm-edge export --model DIR`:
bundle size, export time, peak memory, host decode speed. No network: the weights are random
(same shapes and dtype as the download) and the tokenizer is the tests' small one, so only the
sizes and speeds carry over, not the text.

Run: PYTHONPATH=. python benchmarks/hub_qwen3_0_6b.py WORKDIR
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

QWEN3_0_6B = dict(  # config.json of Qwen/Qwen3-0.6B
    hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
    head_dim=128, vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=40960,
    rope_theta=1_000_000.0, rms_norm_eps=1e-6, bos_token_id=151643, eos_token_id=151645,
)


def make(folder: Path) -> None:
    import torch
    import transformers
    from hub_folders import FAMILIES, TEMPLATES, build_tokenizer

    if (folder / "config.json").is_file():
        return
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**QWEN3_0_6B)).to(torch.bfloat16)
    model.save_pretrained(folder)
    spec = FAMILIES["qwen3"]
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=build_tokenizer("qwen3"), **spec["tokens"])
    fast.chat_template = (TEMPLATES / spec["template"]).read_text()
    fast.save_pretrained(folder)


def main(work: Path) -> None:
    folder, out = work / "Qwen3-0.6B-shaped", work / "qwen3-0.6b-bundle"
    make(folder)
    cmd = [sys.executable, "-m", "bluelm_edge", "export", "--model", str(folder), "--out", str(out),
           "--max-context", "1024", "--json", "--force"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr[-2000:])
    summary = json.loads(proc.stdout)
    result = {"wall_s": round(wall, 1), "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                                                               / 2**20, 2),
              "weights_bytes": sum(p.stat().st_size for p in folder.glob("*.safetensors")),
              "files": summary["files"], "stage_s": summary["stage_s"], "host": summary["host"],
              "quality": summary["quality"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
