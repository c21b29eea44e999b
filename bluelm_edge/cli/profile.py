"""`bluelm-edge profile`: benchmark deployed bundles on phones (or on this machine with --host)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bluelm_edge.cli.devices import AllOpt, JsonOpt, SerialOpt
from bluelm_edge.errors import UsageError


def parse_budget(text: str) -> int | None:
    """none -> unlimited, 0 -> non-thinking mode, N -> at most N thinking tokens."""
    if text.lower() in ("none", "unlimited"):
        return None
    if not text.isdigit():
        raise UsageError(f"--thinking-budget must be none, 0 or a positive integer, not {text!r}")
    return int(text)


def profile(
    bundles: Annotated[list[Path], typer.Argument(help="Bundle folder(s), deployed with `bluelm-edge deploy`.")],
    serial: SerialOpt = None,
    all_devices: AllOpt = False,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="JSON list of strings, or one a line.")] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Benchmark runs (the app's --ei runs N).")] = 3,
    thinking_budget: Annotated[str, typer.Option("--thinking-budget", help="none | 0 | N thinking tokens.")] = "none",
    host: Annotated[bool, typer.Option("--host", help="Run the .pte on this machine instead of a phone.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write PNG plots into this folder.")] = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between battery/memory samples.")] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Measure load time, TTFT, prefill/decode tok/s, peak memory, J/token and temperature rise.

    Example: bluelm-edge profile ./bluelm-bundle -s R5CX1234 --runs 5 --thinking-budget 256 --plot plots/
    """
    from bluelm_edge.device.bundle import read_manifest
    from bluelm_edge.device.profile import profile_device, profile_host, read_prompts
    from bluelm_edge.device.report import is_plot_folder, operator_table, plot_reports, report_table
    from bluelm_edge.io import check_output_dir

    if plot is not None:
        check_output_dir(plot, "--plot", ours=is_plot_folder)
    budget, texts = parse_budget(thinking_budget), read_prompts(prompts)
    manifests = [(b, read_manifest(b)) for b in bundles]
    console = Console(stderr=as_json)
    reports = []
    if host:
        reports = [profile_host(b, m, texts, runs, budget) for b, m in manifests]
    else:
        from bluelm_edge.device.adb import select_devices

        for device in select_devices(serial, all_devices):
            for _, m in manifests:
                with console.status(f"benchmarking {m['bundle_id']} on {device.serial}"):
                    reports.append(profile_device(device, m, texts, runs, budget, interval=interval))
    console.print(report_table(reports))
    for rep in reports:
        if (ops := operator_table(rep)) is not None:
            console.print(ops)
        s = rep["session"]
        if s["j_per_token"] is not None:
            console.print(f"{rep['device']['label']}: {s['energy_j']:.2f} J over {s['window']['seconds']:.1f} s "
                          f"({s['avg_power_w']:.2f} W) for {s['decode_tokens']} tokens = "
                          f"{s['j_per_token']:.3f} J/token; battery +{s['temp_rise_c']} C")
    if plot is not None:
        for path in plot_reports(reports, plot):
            console.print(f"wrote {path}")
    if as_json:
        typer.echo(json.dumps(reports, indent=2))


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
