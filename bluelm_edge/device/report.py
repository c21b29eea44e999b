"""Benchmark reports: per-run metrics from the app's results JSON plus the samples taken over adb,
energy by integrating power over time, medians with spread, a rich table and PNG plots.

Units: battery `current_now` in µA and `voltage_now` in µV (most phones; |current| is used since
the sign of discharge varies by vendor), `temp` in tenths of a degree C. Energy per token is the
integral of |I|·V over the run's window divided by the tokens it generated.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table

from bluelm_edge.cli import tables
from bluelm_edge.io import PNG_SOFTWARE, atomic_dir, is_our_png

METRICS = ("load_ms", "ttft_ms", "prefill_tok_s", "decode_tok_s", "peak_memory_mb", "j_per_token", "temp_rise_c")
UNITS = {
    "load_ms": "ms", "ttft_ms": "ms", "prefill_tok_s": "tokens/s", "decode_tok_s": "tokens/s",
    "peak_memory_mb": "MiB (app-reported peak)", "j_per_token": "J per generated token (charge_counter µAh drawn x "
    "voltage_now µV; without a counter |current_now| µA x voltage_now µV integrated over the run)",
    "temp_rise_c": "degrees C (battery temp, end - start of run)",
}


@dataclass
class Sample:
    """One poll of the phone: host monotonic time, battery current/voltage/temp, process memory."""

    t: float
    current_ua: int | None = None
    voltage_uv: int | None = None
    temp_decic: int | None = None
    memory_kb: int | None = None
    charge_uah: int | None = None  # the battery's coulomb counter (charge_counter), when it has one

    @property
    def power_w(self) -> float | None:
        if self.current_ua is None or self.voltage_uv is None:
            return None
        return abs(self.current_ua) * 1e-6 * self.voltage_uv * 1e-6


def energy_between(samples: list[Sample], t0: float, t1: float) -> float | None:
    """Joules drawn between t0 and t1: from the coulomb counter when the phone has one (exact
    however sparse the polls: charge drawn x mean voltage), else by integrating sampled power."""
    pts = [(s.t, s.charge_uah, s.voltage_uv) for s in samples if s.charge_uah is not None and s.voltage_uv]
    if len(pts) < 2 or t1 <= t0:
        return integrate_power(samples, t0, t1)
    ts, charge = [p[0] for p in pts], [p[1] for p in pts]
    drawn_c = abs(float(np.interp(t0, ts, charge)) - float(np.interp(t1, ts, charge))) * 3.6e-3  # uAh -> C
    volts = [v * 1e-6 for t, _, v in pts if t0 <= t <= t1] or [p[2] * 1e-6 for p in pts]
    return drawn_c * float(np.mean(volts))


def integrate_power(samples: list[Sample], t0: float, t1: float) -> float | None:
    """Joules drawn between t0 and t1: power linearly interpolated between samples (trapezoids)."""
    pts = [(s.t, s.power_w) for s in samples if s.power_w is not None]
    if len(pts) < 2 or t1 <= t0:
        return None
    ts, ps = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    grid = np.concatenate([[t0], ts[(ts > t0) & (ts < t1)], [t1]])
    values = np.interp(grid, ts, ps)
    return float(np.sum((values[1:] + values[:-1]) * np.diff(grid) / 2))


def _temp_at(samples: list[Sample], t: float) -> float | None:
    pts = [(s.t, s.temp_decic / 10) for s in samples if s.temp_decic is not None]
    if not pts:
        return None
    return float(np.interp(t, [p[0] for p in pts], [p[1] for p in pts]))


def run_windows(runs: list[dict[str, Any]], t_end: float) -> list[tuple[float, float]]:
    """Each run's (start, end) on the host clock: runs laid end to end, the last ending at t_end."""
    windows, end = [], t_end
    for run in reversed(runs):
        start = end - run["total_ms"] / 1000
        windows.append((start, end))
        end = start
    return windows[::-1]


def spread(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def run_metrics(run: dict[str, Any], window: tuple[float, float], samples: list[Sample],
                load_ms: float | None = None) -> dict[str, Any]:
    """One run's numbers; `load_ms` is the results' one load (schema 2 loads once, rows have null)."""
    energy = energy_between(samples, *window)
    t0, t1 = _temp_at(samples, window[0]), _temp_at(samples, window[1])
    tokens = run.get("decode_tokens") or 0
    return {
        "run": run["run"], "prompt_index": run.get("prompt_index", 0),
        "load_ms": run["load_ms"] if run.get("load_ms") is not None else load_ms, "ttft_ms": run.get("ttft_ms"),
        "prefill_tokens": run.get("prefill_tokens"), "prefill_tok_s": run.get("prefill_tok_s"),
        "decode_tokens": tokens, "decode_tok_s": run.get("decode_tok_s"),
        "thinking_tokens": run.get("thinking_tokens"),
        "peak_memory_mb": run["peak_memory_kb"] / 1024 if run.get("peak_memory_kb") else None,
        "energy_j": energy, "j_per_token": energy / tokens if energy is not None and tokens else None,
        "temp_rise_c": round(t1 - t0, 2) if t0 is not None and t1 is not None else None,
    }


def build_report(device: dict[str, Any], results: dict[str, Any], samples: list[Sample],
                 t_start: float, t_end: float) -> dict[str, Any]:
    """Everything `profile` reports for one (phone, bundle), JSON-ready."""
    runs = results["runs"]
    windows = run_windows(runs, t_end)
    per_run = [run_metrics(r, w, samples, results.get("load_ms")) for r, w in zip(runs, windows, strict=True)]
    energy = energy_between(samples, t_start, t_end)
    tokens = sum(r.get("decode_tokens") or 0 for r in runs)
    temps = [s.temp_decic / 10 for s in samples if s.temp_decic is not None]
    mems = [s.memory_kb for s in samples if s.memory_kb]
    return {
        "device": device, "bundle_id": results.get("bundle_id"), "backend": results.get("backend"),
        "thinking_budget": results.get("thinking_budget"), "runs": per_run,
        "summary": {m: spread([r[m] for r in per_run]) for m in METRICS},
        "session": {
            "window": {"start": t_start, "end": t_end, "seconds": t_end - t_start},
            "energy_j": energy, "decode_tokens": tokens,
            "j_per_token": energy / tokens if energy is not None and tokens else None,
            "avg_power_w": energy / (t_end - t_start) if energy is not None else None,
            "temp_rise_c": round(max(temps) - temps[0], 2) if temps else None,
            "sampled_peak_memory_mb": max(mems) / 1024 if mems else None, "samples": len(samples),
        },
        "operators": results.get("operators"),
        "timeline": [{"t": s.t - t_start, "power_w": s.power_w, "temp_c": s.temp_decic / 10
                      if s.temp_decic is not None else None, "memory_mb": s.memory_kb / 1024 if s.memory_kb else None}
                     for s in samples],
        "units": UNITS,
    }


# ---- rendering ---------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _digits(metric: str) -> int:
    return 3 if metric == "j_per_token" else 1


LABELS = {"load_ms": "load ms", "ttft_ms": "TTFT ms", "prefill_tok_s": "prefill tok/s", "decode_tok_s": "decode tok/s",
          "peak_memory_mb": "peak MiB", "j_per_token": "J/token", "temp_rise_c": "temp rise C"}
MAX_RUN_COLUMNS = 4  # more runs: only the median and range are shown (--json has every run)


def report_table(reports: list[dict[str, Any]]) -> Group:
    """One table per phone and bundle: a row per metric, a column per run, then median and range;
    every value whole at 80 columns."""
    return Group(*(_one_report(rep) for rep in reports))


def _one_report(rep: dict[str, Any]) -> Table:
    dev = rep["device"].get("label", rep["device"].get("serial", "?"))
    runs = rep["runs"] if len(rep["runs"]) <= MAX_RUN_COLUMNS else []
    heads = [f"run {r['run']}" for r in runs]
    table = tables.table(f"bluelm-edge profile: {dev} · {rep['bundle_id'] or '?'}", "metric", *heads, "median",
                         "min-max", right=(*heads, "median", "min-max"))
    for m in METRICS:
        s, d = rep["summary"][m], _digits(m)
        table.add_row(LABELS[m], *(_fmt(r[m], d) for r in runs), _fmt(s["median"], d),
                      f"{_fmt(s['min'], d)}-{_fmt(s['max'], d)}")
    return tables.whole(table)


def operator_table(report: dict[str, Any]) -> Table | None:
    """The per-operator table from ETDump (host runs), slowest first."""
    ops = report.get("operators")
    if not ops:
        return None
    table = tables.table(f"operators ({report['bundle_id']}, ETDump)", "operator", "calls", "total ms", "share %",
                         right=("calls", "total ms", "share %"))
    total = sum(o["total_ms"] for o in ops) or 1.0
    for o in sorted(ops, key=lambda o: -o["total_ms"]):
        table.add_row(o["name"], str(o.get("calls", "")), f"{o['total_ms']:.2f}", f"{100 * o['total_ms'] / total:.1f}")
    return tables.whole(table)


def plot_reports(reports: list[dict[str, Any]], folder: Path) -> list[Path]:
    """PNG plots: a timeline (power, temperature, memory) per report and decode tok/s compared."""
    import matplotlib

    matplotlib.use("Agg")
    with atomic_dir(Path(folder), marker=False, ours=is_plot_folder, option="--plot") as tmp:
        names = _draw(reports, tmp)
    return [Path(folder) / name for name in names]


def is_plot_folder(folder: Path) -> bool:
    """A folder of ours to replace: only PNGs that bluelm-edge drew (their Software metadata)."""
    return all(p.suffix == ".png" and is_our_png(p) for p in Path(folder).iterdir())


TIMELINE = (("power_w", "power W"), ("temp_c", "battery C"), ("memory_mb", "memory MiB"))


def _draw(reports: list[dict[str, Any]], folder: Path) -> list[str]:
    import matplotlib.pyplot as plt

    written = []
    for i, rep in enumerate(reports):
        tl = rep["timeline"]
        series = {label: [(p["t"], p[key]) for p in tl if p.get(key) is not None] for key, label in TIMELINE}
        series = {label: pts for label, pts in series.items() if pts}
        if not series:  # e.g. --host: no battery or power readings; no empty panels
            continue
        fig, axes = plt.subplots(len(series), 1, figsize=(7, 2.4 * len(series) + 0.6), sharex=True, squeeze=False)
        for ax, (label, pts) in zip(axes[:, 0], series.items(), strict=True):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
            ax.set_ylabel(label)
        axes[-1, 0].set_xlabel("seconds since start")
        fig.suptitle(f"{rep['device'].get('label', rep['device'].get('serial'))} - {rep['bundle_id']}")
        written.append(_save(fig, folder / f"timeline-{i}.png"))
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['device'].get('label', r['device'].get('serial'))}\n{r['bundle_id']}" for r in reports]
    med = [r["summary"]["decode_tok_s"]["median"] or 0 for r in reports]
    lo = [m - (r["summary"]["decode_tok_s"]["min"] or m) for m, r in zip(med, reports, strict=True)]
    hi = [(r["summary"]["decode_tok_s"]["max"] or m) - m for m, r in zip(med, reports, strict=True)]
    ax.bar(range(len(reports)), med, yerr=[lo, hi], capsize=4)
    ax.set_xticks(range(len(reports)), labels, fontsize=7)
    ax.set_ylabel("decode tokens/s (median, min-max)")
    written.append(_save(fig, folder / "decode_tok_s.png"))
    return written


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, format="png", dpi=100, metadata={"Software": PNG_SOFTWARE})
    plt.close(fig)
    return path.name
