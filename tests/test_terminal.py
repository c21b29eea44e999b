"""The terminal is the user's (issue 16): `run` prints the answer and the stats line only (no
torch / torchao / executorch / cpuinfo line), `--verbose` and BLUELM_DEBUG=1 bring the library
output back, and tables at 80 columns show every name, id and number whole."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bluelm_edge.cli import quiet
from bluelm_edge.cli.main import app

NOISE = re.compile(r"torch|torchao|executorch|cpuinfo|Warning|\.cpp:\d+\]|^[WIE]\d{4} ")
REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("BLUELM_DEBUG", "BLUELM_VERBOSE")}
    full.update(PYTHONPATH=str(REPO), COLUMNS="80", **(env or {}))
    return subprocess.run([sys.executable, "-m", "bluelm_edge", *args], capture_output=True, text=True, env=full,
                          timeout=300)


def _lines_fit(text: str, width: int = 80) -> list[str]:
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    assert "…" not in text
    return lines


# ---- run: the answer and the stats line, nothing else --------------------------------------------
def test_run_prints_only_the_answer_and_the_stats_line(fp32_export):
    bundle = str(fp32_export[0].out)
    res = _cli("run", bundle, "--prompt", "What is 2+2?", "--no-think", "--max-new-tokens", "3")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(lines) <= 2 and lines[-1].startswith("TTFT ") and lines[-1].endswith("(0 thinking)")
    assert not [line for line in lines if NOISE.search(line)]
    long = _cli("run", bundle, "--prompt", "a" * 300)
    assert (long.returncode, long.stdout) == (2, "")
    assert long.stderr.splitlines() == ["error: prompt is 304 tokens but the context holds 256 (one more is needed "
                                        "to answer); shorten the prompt or export with a larger --max-context"]
    loud = _cli("--verbose", "run", bundle, "--prompt", "What is 2+2?", "--no-think", "--max-new-tokens", "3")
    assert loud.returncode == 0 and "[cpuinfo_utils.cpp:" in loud.stderr  # the filter is what hid it


def test_verbose_is_a_global_option_and_debug_implies_it(monkeypatch):
    assert quiet.verbose_requested(["--verbose", "run", "b"])
    assert not quiet.verbose_requested(["run", "b", "--prompt", "--verbose"])  # a prompt, not our option
    monkeypatch.setenv("BLUELM_DEBUG", "1")
    assert quiet.verbose_requested(["run"])
    assert CliRunner().invoke(app, ["--verbose", "info", "--preset", "tiny", "--json"]).exit_code == 0


def test_native_log_lines_go_to_the_log_and_ours_to_the_terminal():
    user, log = io.StringIO(), io.StringIO()
    router = quiet._Router(user, log)
    for piece in ["[", "cpuinfo_utils.cpp", ":71] ", "Reading file /sys/x", "\n", "error: bad input\n",
                  "[3/5] step\n", "[xnnpack.cpp:9] done\n"]:
        router.write(piece)
        router.flush()  # pybind flushes after every piece: a partial log line must stay pending
    router.finish()
    assert log.getvalue() == "[cpuinfo_utils.cpp:71] Reading file /sys/x\n[xnnpack.cpp:9] done\n"
    assert user.getvalue() == "error: bad input\n[3/5] step\n"


def test_a_piped_error_stays_one_line(tmp_path):
    res = _cli("info", str(tmp_path / "no" / "such" / "checkpoint" / "folder" / "with" / "a" / "long" / "name"))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.splitlines() == [f"error: {tmp_path}/no/such/checkpoint/folder/with/a/long/name: "
                                       "no such checkpoint or bundle folder"]


# ---- tables at 80 columns --------------------------------------------------------------------------
def _render(renderable) -> str:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_recipe_list_shows_every_value_whole_at_80_columns():
    from bluelm_edge.quant.recipes import all_recipes

    res = CliRunner().invoke(app, ["quantize", "--list-recipes"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    words = set(_lines_fit(res.output) and res.output.split())
    for r in all_recipes().values():
        d = r.to_dict()
        parts = [d["submodels"][p] for p in ("decoder_linears", "vision", "embeddings")]
        values = {r.name, r.backend, d["submodels"]["kv_cache"]["scheme"], r.recovery.get("method", "none")}
        values |= {str(v) for p in parts for k, v in p.items() if k in ("scheme", "granularity", "group_size",
                                                                          "block_size")}
        assert values <= words, values - words


def _report(label: str, bundle_id: str) -> dict:
    runs = [{"run": i, "load_ms": 1146.3 + i, "ttft_ms": 96.25, "prefill_tok_s": 441.0, "decode_tok_s": 22.0 + i,
             "peak_memory_mb": 2198.28, "j_per_token": 0.0271, "temp_rise_c": 0.31} for i in range(1, 4)]
    metrics = [k for k in runs[0] if k != "run"]
    summary = {m: {"median": runs[1][m], "min": runs[0][m], "max": runs[2][m]} for m in metrics}
    return {"device": {"label": label}, "bundle_id": bundle_id, "runs": runs, "summary": summary}


def test_profile_table_shows_every_number_whole_at_80_columns():
    from bluelm_edge.device.report import report_table

    out = _render(report_table([_report("SM-S928B (SM8650)", "bluelm-tiny-xnnpack-any-e75cb696"),
                                _report("V2324A (mt6989)", "bluelm-tiny-qnn-sm8650-cd11a05e")]))
    words = set(" ".join(_lines_fit(out)).split())
    assert {"1147.3", "1148.3", "1149.3", "1147.3-1149.3", "96.2", "441.0", "23.0", "23.0-25.0", "2198.3", "0.027",
            "0.027-0.027", "0.3", "(SM8650)", "bluelm-tiny-xnnpack-any-e75cb696", "bluelm-tiny-qnn-sm8650-cd11a05e",
            "prefill", "decode", "tok/s", "median", "min-max"} <= words
    assert out.count("median") == 2 and "SM-S928B (SM8650)" in out and "V2324A (mt6989)" in out


def test_eval_table_shows_every_task_and_number_whole_at_80_columns():
    from bluelm_edge.cli.eval import _print_table

    budgets = [0, 8, 16, 32, 64, 128, None]
    tasks = ["add", "sort", "count", "shapes", "grid", "lookup_long_name"]
    rows = [SimpleNamespace(task=t, budget=b, accuracy=0.5 + i / 100, thinking_tokens_mean=100.0 + j)
            for i, t in enumerate(tasks) for j, b in enumerate(budgets)]
    console = Console(file=io.StringIO(), width=80, color_system=None)
    _print_table(console, rows, budgets, lambda b: "none" if b is None else str(b))
    out = console.file.getvalue()
    words = set(" ".join(_lines_fit(out)).split())
    assert set(tasks) | {"0.55", "(106)", "(100)", "none"} <= words


def test_quant_report_shows_every_number_whole_at_80_columns():
    from bluelm_edge.cli.eval import print_report

    entry = {"perplexity": 12.3456, "kl": 0.01234, "top1_agreement": 0.9876, "vision_cosine": 0.99912,
             "accuracy_budget_0": 0.5, "accuracy_budget_none": 0.625, "size_bytes": 123_456_789}
    report = {"fp32": entry, "heldout": 48, "recipes": {"xnnpack-8da4w-head4": {
        **entry, "backend": "xnnpack", "before_recovery": entry}}}
    console = Console(file=io.StringIO(), width=80, color_system=None)
    print_report(report, console)
    words = set(" ".join(_lines_fit(console.file.getvalue())).split())
    assert {"12.346", "0.0123", "0.988", "0.9991", "0.625", "123,456,789", "xnnpack-8da4w-head4",
            "top1_agreement", "accuracy_budget_none"} <= words


def test_json_output_keeps_the_full_record():
    res = CliRunner().invoke(app, ["quantize", "--list-recipes", "--json"], env={"COLUMNS": "80"})
    assert res.exit_code == 0 and "xnnpack-8da4w-head4" in json.loads(res.output)


# ---- export: our progress and summary, nothing from the libraries --------------------------------
@pytest.mark.slow
def test_export_prints_only_our_progress_and_summary(tmp_path):
    """A whole `export` in a fresh process (fp32 `geometry` preset: XNNPACK lowering with the vision
    worker, composition, the runtime's quality and host checks), output piped as in CI."""
    out = tmp_path / "bundle"
    res = _cli("export", "--preset", "geometry", "--recipe", "fp32", "--max-context", "256", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stderr == ""
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    stages = ("load checkpoint", "torch.export", "lower (xnnpack)", "write bundle", "host benchmark")
    assert [s for s in stages if any(line.strip().startswith(f"{s} done") for line in lines)] == list(stages)
    noise = [line for line in lines if NOISE.search(line) and not line.strip().startswith("torch.export done")]
    assert noise == [] and len(lines) <= 25, lines
    assert (out / "model.pte").is_file()
