"""Profile a deployed bundle on a phone: start the app's BenchmarkActivity (docs/contracts.md), poll
for its results file while sampling battery, temperature and memory, then build the report.
`profile_host` produces the same report by running the bundle on this machine.
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

from bluelm_edge.device.adb import Device
from bluelm_edge.device.bundle import APP_FILES, APP_PACKAGE, BENCH_ACTIVITY, device_dir
from bluelm_edge.device.errors import AdbTimeout, AppError
from bluelm_edge.device.report import Sample, build_report
from bluelm_edge.errors import DataError

BATTERY = "/sys/class/power_supply/battery"
DEFAULT_PROMPTS = [
    "What is 17 + 25? Think step by step.",
    "A train leaves at 3 pm and travels for 2 hours and 30 minutes. When does it arrive?",
    "Name three primary colours and one thing of each colour.",
]


def read_prompts(path: Path | None) -> list[str]:
    """Prompts from a JSON list of strings or a text file (one a line); the defaults without a file."""
    if path is None:
        return list(DEFAULT_PROMPTS)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise DataError(f"--prompts {path}: no such file") from None
    if text.lstrip().startswith("["):
        try:
            prompts = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    else:
        prompts = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise DataError(f"{path}: give a JSON list of non-empty strings, or one prompt a line")
    return prompts


def budget_extra(thinking_budget: int | None) -> str:
    return "none" if thinking_budget is None else str(thinking_budget)


def device_label(device: Device) -> dict[str, Any]:
    from bluelm_edge.socs import match_soc

    props = device.props()
    soc = match_soc(props)
    model = props.get("ro.product.model", "?")
    return {"serial": device.serial, "model": model, "soc": soc.id if soc else None,
            "label": f"{model} ({soc.id if soc else props.get('ro.board.platform', '?')})"}


def sample(device: Device, pid: int | None) -> Sample:
    """One poll: battery current/voltage/temp/charge counter and the app's peak RSS (VmHWM, else
    dumpsys PSS)."""
    files = [f"{BATTERY}/current_now", f"{BATTERY}/voltage_now", f"{BATTERY}/temp", f"{BATTERY}/charge_counter"]
    cmd = "cat " + " ".join(files) + (f" /proc/{pid}/status" if pid else "")
    before = time.monotonic()
    out = device.shell(cmd, check=False).stdout
    t = (before + time.monotonic()) / 2  # the phone read its battery somewhere inside the call
    nums = [int(x) for x in re.findall(r"^(-?\d+)$", out, re.MULTILINE)[:4]]
    current, voltage, temp, charge = (nums + [None] * 4)[:4]
    m = re.search(r"VmHWM:\s+(\d+) kB", out)
    memory = int(m.group(1)) if m else None
    if pid and memory is None:
        m = re.search(r"TOTAL PSS:\s+(\d+)", device.shell(f"dumpsys meminfo {APP_PACKAGE}", check=False).stdout)
        memory = int(m.group(1)) if m else None
    return Sample(t, current, voltage, temp, memory, charge)


def _pid(device: Device) -> int | None:
    r = device.shell(f"pidof {APP_PACKAGE}", check=False)
    return int(r.stdout.split()[0]) if r.returncode == 0 and r.stdout.strip() else None


def _preflight(device: Device, bundle_id: str) -> None:
    if not device.has_package(APP_PACKAGE):
        raise AppError(f"the app {APP_PACKAGE} is not installed on {device.serial}: "
                       "run `bluelm-edge deploy BUNDLE --apk APP.apk` first")
    if not device.exists(f"{device_dir(bundle_id)}/manifest.json"):
        raise AppError(f"bundle {bundle_id} is not on {device.serial}: run `bluelm-edge deploy BUNDLE -s "
                       f"{device.serial}` first")


def _start(device: Device, bundle_id: str, prompts_path: str, runs: int, budget: int | None, out: str) -> None:
    cmd = (f"am start -W -n {BENCH_ACTIVITY} --es bundle {shlex.quote(bundle_id)} --es prompts "
           f"{shlex.quote(prompts_path)} --ei runs {runs} --es thinking_budget {budget_extra(budget)} --es out {out}")
    r = device.shell(cmd, check=False)
    if r.returncode != 0 or "Error" in r.stdout + r.stderr:
        msg = next((ln for ln in (r.stderr + r.stdout).splitlines() if "Error" in ln), r.stderr.strip())
        raise AppError(f"could not start the benchmark on {device.serial}: {msg}")


def _crash(device: Device) -> AppError:
    lines = device.shell("logcat -d", check=False).stdout.strip().splitlines()
    tail = " | ".join(ln.strip() for ln in lines[-6:])
    return AppError(f"the benchmark app died on {device.serial} without results; logcat tail: {tail}")


def profile_device(device: Device, manifest: dict[str, Any], prompts: list[str], runs: int,
                   thinking_budget: int | None, *, interval: float = 0.5, timeout: float = 3600) -> dict[str, Any]:
    """Run the app's benchmark on one phone and return the report (see report.build_report)."""
    bundle_id = manifest["bundle_id"]
    _preflight(device, bundle_id)
    stamp = f"{int(time.time() * 1000)}"
    out, prompts_path = f"bench-{stamp}.json", f"{APP_FILES}/bench/prompts-{stamp}.json"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "prompts.json"
        local.write_text(json.dumps(prompts))
        device.mkdirs(f"{APP_FILES}/bench")
        device.push(local, prompts_path)
    device.shell("logcat -c", check=False)
    samples = [sample(device, None)]
    t_start = samples[0].t
    _start(device, bundle_id, prompts_path, runs, thinking_budget, out)
    results = _wait(device, f"{APP_FILES}/bench/{out}", samples, interval, t_start + timeout)
    t_end = time.monotonic()
    samples.append(sample(device, None))
    if results.get("status") != "ok":
        raise AppError(f"the benchmark on {device.serial} reported an error: {results.get('error')}")
    return build_report(device_label(device), results, samples, t_start, t_end)


def _wait(device: Device, results_path: str, samples: list[Sample], interval: float, deadline: float) -> dict:
    while True:
        text = device.read_text(results_path)
        if text is not None:
            return json.loads(text)
        pid = _pid(device)
        if pid is None:
            text = device.read_text(results_path)  # it may have finished between the two reads
            if text is not None:
                return json.loads(text)
            raise _crash(device)
        samples.append(sample(device, pid))
        if time.monotonic() > deadline:
            raise AdbTimeout(f"no benchmark results from {device.serial} in time; check the app, rerun with "
                             "fewer --runs")
        time.sleep(interval)


def profile_host(bundle_dir: Path, manifest: dict[str, Any], prompts: list[str], runs: int,
                 thinking_budget: int | None) -> dict[str, Any]:
    """The same report for the bundle's .pte run on this machine (no battery: energy is empty)."""
    try:
        from bluelm_edge.export.host import benchmark_host
    except ImportError:
        raise AppError("--host needs bluelm_edge.export.host.benchmark_host, which this build lacks; "
                       "update bluelm-edge") from None
    t_start = time.monotonic()
    results = benchmark_host(Path(bundle_dir), prompts, runs, thinking_budget)
    t_end = time.monotonic()
    if results.get("status", "ok") != "ok":
        raise AppError(f"the host benchmark failed: {results.get('error')}")
    results.setdefault("bundle_id", manifest["bundle_id"])
    device = {"serial": "host", "model": "this machine", "soc": None, "label": "host (ExecuTorch)"}
    return build_report(device, results, [], t_start, t_end)
