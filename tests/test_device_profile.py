"""`bluelm-edge profile` with the real adb against simulated phones: the report's numbers (from the
app's results JSON and from battery/memory samples), plots, several phones, and an app crash.

The simulated app runs `scripted_runner_double`, a TEST DOUBLE for the app's ExecuTorch engine: it
sleeps for each run's stated duration and returns fixed numbers, so the report can be checked
exactly. Energy and temperature come from the simulated battery, sampled over adb while it runs.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from adbsim.harness import AdbServer, adb_available, cli, make_bundle
from adbsim.phone import APP_FILES, APP_PACKAGE, Faults

from bluelm_edge.device.errors import AppError

pytestmark = [pytest.mark.device, pytest.mark.skipif(not adb_available(), reason="needs the adb binary")]
DECODE = [20.0, 24.0, 22.0]


def scripted_runner_double(calls: list):
    """Test double of the app's engine: fixed numbers, real elapsed time (0.5 s a run)."""

    def run(bundle_dir, prompts, runs, budget):
        calls.append((bundle_dir.name, list(prompts), runs, budget))
        out = []
        for i in range(runs):
            time.sleep(0.5)
            out.append({"run": i, "prompt_index": i % len(prompts), "load_ms": 800.0 + i, "ttft_ms": 95.0 + i,
                        "prefill_tokens": 42, "prefill_tok_s": 440.0 + i, "decode_tokens": 100,
                        "decode_tok_s": DECODE[i % 3], "thinking_tokens": 64, "total_ms": 500.0,
                        "peak_memory_kb": 2_250_000 + 1024 * i})
        return {"runs": out}

    return run


@pytest.fixture
def server(tmp_path):
    s = AdbServer(tmp_path / "phones")
    yield s
    s.close()


def _deploy(server, tmp_path, phone, name="b"):
    bundle = tmp_path / name
    if not bundle.exists():
        make_bundle(bundle, sizes=(200_000, 20_000))
    apk = tmp_path / "fake-demo.apk"  # test stand-in: the sim installs by package name
    apk.write_bytes(b"PK test stand-in " + APP_PACKAGE.encode())
    assert cli(server, "deploy", str(bundle), "--apk", str(apk), "-s", phone.serial).exit_code == 0
    return bundle


def test_profile_reports_every_field_from_results_and_samples(server, tmp_path):
    calls = []
    phone = server.phone("sm8650", runner=scripted_runner_double(calls))
    bundle = _deploy(server, tmp_path, phone)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["What is 2+2?", "Name a colour."]))
    res = cli(server, "profile", str(bundle), "--runs", "3", "--prompts", str(prompts), "--thinking-budget", "64",
              "--interval", "0.1", "--json", "--plot", str(tmp_path / "plots"))
    assert res.exit_code == 0, res.output
    [rep] = json.loads(res.stdout)
    assert calls == [(rep["bundle_id"], ["What is 2+2?", "Name a colour."], 3, 64)]
    assert (rep["device"]["soc"], rep["backend"], rep["thinking_budget"]) == ("SM8650", "xnnpack", 64)
    s = rep["summary"]
    assert s["decode_tok_s"] == {"median": 22.0, "min": 20.0, "max": 24.0}
    assert s["load_ms"] == {"median": 801.0, "min": 800.0, "max": 802.0}
    assert s["ttft_ms"]["median"] == 96.0 and s["prefill_tok_s"]["median"] == 441.0
    assert s["peak_memory_mb"] == {"median": 2_251_024 / 1024, "min": 2_250_000 / 1024, "max": 2_252_048 / 1024}
    sess = rep["session"]
    assert sess["sampled_peak_memory_mb"] == phone.profile.app_rss_kb / 1024  # VmHWM read over adb
    assert sess["decode_tokens"] == 300 and sess["samples"] >= 4
    w = sess["window"]
    truth = phone.energy_j(w["start"], w["end"])  # the simulated battery's exact ledger
    assert sess["energy_j"] == pytest.approx(truth, rel=0.1)
    assert sess["j_per_token"] == pytest.approx(truth / 300, rel=0.1)
    busy = phone.busy_seconds(w["end"]) - phone.busy_seconds(w["start"])
    assert sess["temp_rise_c"] == pytest.approx(0.6 * busy, abs=0.25)
    per_run_j = [r["j_per_token"] for r in rep["runs"]]  # 0.5 s at 1.4 A x 3.88 V / 100 tokens
    assert s["j_per_token"]["median"] == pytest.approx(0.5 * 1.4 * 3.88 / 100, rel=0.25)
    assert all(j is not None for j in per_run_j)
    assert s["temp_rise_c"]["median"] == pytest.approx(0.3, abs=0.2)
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["decode_tok_s.png", "timeline-0.png"]
    assert (tmp_path / "plots" / "timeline-0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert phone.path(f"{APP_FILES}/bench").is_dir()


def test_profile_table_shows_every_number_whole_at_80_columns(server, tmp_path):
    phone = server.phone("sm8650", runner=scripted_runner_double([]))
    bundle = _deploy(server, tmp_path, phone)
    res = cli(server, "profile", str(bundle), "--runs", "3", "--interval", "0.1", env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines) and "…" not in res.stdout, res.stdout
    words = set(res.stdout.split())
    bid = json.loads((bundle / "manifest.json").read_text())["bundle_id"]
    assert {bid, "SM-S928B", "(SM8650)", "800.0", "801.0", "802.0", "800.0-802.0", "20.0", "22.0", "24.0",
            "20.0-24.0", "441.0", "96.0", "median", "min-max", "prefill", "decode", "tok/s"} <= words


def test_two_phones_in_one_table(server, tmp_path):
    calls = []
    phones = [server.phone(p, runner=scripted_runner_double(calls)) for p in ("sm8650", "mt6989")]
    for ph in phones:
        bundle = _deploy(server, tmp_path, ph)
    res = cli(server, "profile", str(bundle), "--all", "--runs", "1", "--interval", "0.2")
    assert res.exit_code == 0, res.output
    assert "SM-S928B (SM8650)" in res.stdout and "V2324A (mt6989)" in res.stdout
    assert res.stdout.count("median") == 2 and len(calls) == 2


def test_app_crash_gives_logcat_tail(server, tmp_path):
    phone = server.phone("mt6989", faults=Faults(app_crash=True))
    bundle = _deploy(server, tmp_path, phone)
    res = cli(server, "profile", str(bundle), "--interval", "0.1")
    assert isinstance(res.exception, AppError), res.output
    msg = str(res.exception)
    assert "\n" not in msg and "died" in msg and "OutOfMemoryError" in msg and "FATAL EXCEPTION" in msg
    assert list(phone.path(f"{APP_FILES}/bench").glob("bench-*.json")) == []


def test_profile_needs_the_app_and_the_bundle(server, tmp_path):
    phone = server.phone("sm8650")
    bundle = make_bundle(tmp_path / "b", sizes=(1000, 100))
    res = cli(server, "profile", str(bundle))
    assert isinstance(res.exception, AppError) and "--apk" in str(res.exception)
    phone.packages.add(APP_PACKAGE)
    res = cli(server, "profile", str(bundle))
    assert isinstance(res.exception, AppError) and "is not on" in str(res.exception)


@pytest.mark.slow
def test_phone_runs_the_same_pte_as_the_host(server, tmp_path, fp32_export):
    """The simulated app runs the pushed .pte with the real ExecuTorch host runner (its default
    engine): `profile` over adb and `profile --host` count the same tokens in every run (greedy, so
    exact). Their speeds are not compared here: timing on shared cores is a benchmark's job."""
    bundle = tmp_path / "tiny-bundle"
    shutil.copytree(fp32_export[0].out, bundle)  # the session's one fp32 export (conftest.py)
    phone = server.phone("sm8650")  # runner=None: the app's real engine, benchmark_host
    _deploy(server, tmp_path, phone, name="tiny-bundle")
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["What is 17+25?"]))
    args = [str(bundle), "--runs", "2", "--prompts", str(prompts), "--thinking-budget", "0", "--json"]
    host = cli(server, "profile", *args, "--host")
    on_phone = cli(server, "profile", *args, "--interval", "0.5")
    assert (host.exit_code, on_phone.exit_code) == (0, 0), on_phone.output
    [p], [h] = json.loads(on_phone.stdout), json.loads(host.stdout)
    counts = ("prefill_tokens", "decode_tokens", "thinking_tokens")
    assert [[r[k] for k in counts] for r in p["runs"]] == [[r[k] for k in counts] for r in h["runs"]]
    assert p["runs"][0]["decode_tokens"] > 0 and p["runs"][0]["thinking_tokens"] == 0  # budget 0: no thinking
    assert p["summary"]["decode_tok_s"]["median"] > 0 and p["bundle_id"] == h["bundle_id"]
    assert p["session"]["j_per_token"] > 0 and h["session"]["j_per_token"] is None


def test_energy_comes_from_the_coulomb_counter_however_sparse_the_polls():
    from bluelm_edge.device.report import Sample, energy_between

    # two polls 10 s apart, both idle, but 1000 uAh were drawn in between (a burst the polls missed)
    polls = [Sample(0.0, -250_000, 3_900_000, 300, None, 4_000_000),
             Sample(10.0, -250_000, 3_900_000, 300, None, 3_999_000)]
    assert energy_between(polls, 0.0, 10.0) == pytest.approx(1000 * 3.6e-3 * 3.9)  # 14.04 J, not 9.75
    no_counter = [Sample(s.t, s.current_ua, s.voltage_uv) for s in polls]
    assert energy_between(no_counter, 0.0, 10.0) == pytest.approx(0.25 * 3.9 * 10)


def _png_height(path) -> int:
    return int.from_bytes(path.read_bytes()[20:24], "big")  # IHDR: width at 16, height at 20


def test_plots_draw_only_panels_with_data(tmp_path):
    """`profile --host --plot` has no power or battery readings: no empty panels (one memory panel),
    and no timeline at all when nothing was sampled."""
    from bluelm_edge.device.report import plot_reports

    summary = {"decode_tok_s": {"median": 10.0, "min": 9.0, "max": 11.0}}
    host = {"device": {"label": "host"}, "bundle_id": "b1", "summary": summary,
            "timeline": [{"t": t, "power_w": None, "temp_c": None, "memory_mb": 500.0 + t} for t in range(3)]}
    bare = {**host, "timeline": [{"t": 0, "power_w": None, "temp_c": None, "memory_mb": None}]}
    written = plot_reports([host, bare], tmp_path / "plots")
    assert sorted(p.name for p in written) == ["decode_tok_s.png", "timeline-0.png"]
    assert _png_height(tmp_path / "plots" / "timeline-0.png") == 300  # one panel: (2.4 + 0.6) in x 100 dpi


def java_benchmark(classpath: str, calls: list):
    """The simulated app running the app's own benchmark code (core Benchmark + ChatEngine, Java) on
    the JVM over the runner model (android_demo/core tests): the results JSON is the Java's."""
    import subprocess

    def run(bundle_dir, prompts, runs, budget):
        prompts_file = bundle_dir.parent / "prompts-java.json"
        prompts_file.write_text(json.dumps(prompts))
        proc = subprocess.run(["java", "-cp", classpath, "com.bluelm.edge.core.BenchmarkMain", str(bundle_dir),
                               str(prompts_file), str(runs), "none" if budget is None else str(budget)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        calls.append(out)
        return out

    return run


@pytest.mark.java
@pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (scripts/install.sh)")
def test_profile_reads_the_java_benchmark_that_loads_once(server, tmp_path):
    from tests.test_java_core import compile_core

    calls: list = []
    phone = server.phone("sm8650", runner=java_benchmark(compile_core(tmp_path / "classes"), calls))
    vectors = json.loads((Path(__file__).parent / "vectors" / "chat_engine.json").read_text(encoding="utf-8"))
    make_bundle(tmp_path / "b", sizes=(200_000, 20_000), app=vectors["manifest"]["app"])  # a real app section
    bundle = _deploy(server, tmp_path, phone)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["What is 2+2?", "Name a colour."]))
    res = cli(server, "profile", str(bundle), "--runs", "2", "--prompts", str(prompts), "--thinking-budget", "0",
              "--interval", "0.1", "--json")
    assert res.exit_code == 0, res.output
    [rep] = json.loads(res.stdout)
    [results] = calls
    assert (results["schema_version"], results["status"], results["warmup_runs"], results["runs_per_prompt"]) == (
        2, "ok", 1, 2)
    assert [(r["prompt_index"], r["run"]) for r in results["runs"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(r["load_ms"] is None and r["finish"] == "eos" for r in results["runs"])
    load = results["load_ms"]
    assert rep["summary"]["load_ms"] == {"median": load, "min": load, "max": load}  # the one load, once
    assert [r["decode_tokens"] for r in rep["runs"]] == [2, 2, 2, 2]
    assert rep["summary"]["peak_memory_mb"]["median"] == 2_000_000 / 1024
