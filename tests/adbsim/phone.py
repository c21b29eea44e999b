"""A simulated Android phone: properties, a file tree in a temp folder, packages, battery and the
benchmark app, served to the real `adb` over loopback TCP.

Profiles: `sm8650` (a Snapdragon 8 Gen 3 phone) and `mt6989` (a Dimensity 9300 phone). Faults are
switches on `SimPhone.faults`: unauthorized, offline, disconnect after N pushed bytes, storage full
(tiny free space), storage that fills during a push, and an app that crashes.

The benchmark app calls a runner `runner(bundle_dir, prompts, runs, thinking_budget) -> results`;
by default `bluelm_edge.export.host.benchmark_host` (the real ExecuTorch host runner) when that
exists. Tests without it inject a runner explicitly, named as a test double.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol import Connection, Stream

APP_PACKAGE = "com.bluelm.edge.demo"
APP_FILES = f"/sdcard/Android/data/{APP_PACKAGE}/files"
Runner = Callable[[Path, list, int, Any], dict]


@dataclass
class Profile:
    """What a phone model reports: properties, memory, storage and its battery behaviour."""

    name: str
    props: dict[str, str]
    ram_kb: int
    free_bytes: int
    app_rss_kb: int
    idle_current_ua: int = 250_000
    load_current_ua: int = 1_400_000
    idle_voltage_uv: int = 3_950_000
    load_voltage_uv: int = 3_880_000
    base_temp_decic: int = 300  # battery temp, tenths of a degree C
    heat_decic_per_s: float = 6.0  # +0.6 C a second while the app works
    full_charge_uah: int = 4_800_000  # what charge_counter reads at the start


def _props(model: str, device: str, soc: str, platform: str, hardware: str, maker: str) -> dict[str, str]:
    return {
        "ro.product.model": model, "ro.product.device": device, "ro.product.name": device,
        "ro.product.manufacturer": maker, "ro.soc.model": soc, "ro.board.platform": platform,
        "ro.hardware": hardware, "ro.build.version.release": "14", "ro.build.version.sdk": "34",
        "ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    }


PROFILES: dict[str, Profile] = {
    "sm8650": Profile(
        "sm8650", _props("SM-S928B", "e3q", "SM8650", "pineapple", "qcom", "samsung"),
        ram_kb=11_700_000, free_bytes=180_000_000_000, app_rss_kb=1_912_344,
    ),
    "mt6989": Profile(
        "mt6989", _props("V2324A", "PD2324", "MT6989", "mt6989", "mt6989", "vivo"),
        ram_kb=15_600_000, free_bytes=201_000_000_000, app_rss_kb=2_251_008,
        load_current_ua=1_250_000, base_temp_decic=285,
    ),
}


@dataclass
class Faults:
    unauthorized: bool = False
    offline: bool = False
    disconnect_after_bytes: int | None = None  # one shot: drop the connection mid-push
    free_bytes: int | None = None  # storage full: what `df` reports and SEND enforces
    fill_after_bytes: int | None = None  # df looks fine, but SEND fails after N bytes
    app_crash: bool = False


@dataclass
class AppProcess:
    pid: int
    started: float
    ended: float | None = None


def default_runner() -> Runner:
    """The real app's engine: the ExecuTorch host runner, when the export module provides it."""
    try:
        from bluelm_edge.export.host import benchmark_host
    except ImportError:
        def missing(*_: Any) -> dict:
            raise RuntimeError("no ExecuTorch runner in this build (bluelm_edge.export.host is missing)")
        return missing
    return benchmark_host


@dataclass
class SimPhone:
    """One simulated phone. `start()` listens on a loopback port for `adb connect`."""

    profile: Profile
    root: Path
    serial_name: str = ""
    runner: Runner | None = None
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.packages: set[str] = {"com.android.shell", "com.android.settings"}
        self.logcat: list[str] = ["--------- beginning of main", "I/ActivityManager( 1021): boot completed"]
        self.apps: list[AppProcess] = []
        self.pushed_bytes = 0
        self.next_pid = 20_000
        self.conns: list[Connection] = []
        self._server: socket.socket | None = None
        self.props = dict(self.profile.props)
        self.born = time.monotonic()  # the battery ledger (energy_j, charge_uah) starts here

    # ---- server --------------------------------------------------------------------------
    def start(self) -> int:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="adbsim-accept").start()
        return self.port

    def stop(self) -> None:
        if self._server:
            self._server.close()
        for c in self.conns:
            c.kill()

    def drop_connections(self) -> None:
        for c in self.conns:
            c.kill()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            mode = "unauthorized" if self.faults.unauthorized else "offline" if self.faults.offline else "ok"
            p = self.props
            banner = (
                f"device::ro.product.name={p['ro.product.name']};ro.product.model={p['ro.product.model']};"
                f"ro.product.device={p['ro.product.device']};features=shell_v2"
            ).encode()
            conn = Connection(sock, banner, mode, self._service)
            self.conns.append(conn)
            threading.Thread(target=conn.serve, daemon=True, name="adbsim-conn").start()

    def _service(self, stream: Stream, name: str) -> None:
        from .shell import serve_shell
        from .sync import serve_sync

        if name.startswith("sync:"):
            serve_sync(self, stream)
        elif name.startswith(("shell", "exec:")):
            serve_shell(self, stream, name)

    # ---- files and storage ---------------------------------------------------------------
    def path(self, device_path: str) -> Path:
        return self.root / os.path.normpath("/" + device_path).lstrip("/")

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def free_bytes(self) -> int:
        if self.faults.free_bytes is not None:
            return max(0, self.faults.free_bytes - self.used_bytes())
        return self.profile.free_bytes - self.used_bytes()

    def accept_push_bytes(self, n: int) -> tuple[int, bool]:
        """How many of n incoming bytes fit, and whether the connection drops after them."""
        f = self.faults
        if f.disconnect_after_bytes is not None and self.pushed_bytes + n > f.disconnect_after_bytes:
            keep = f.disconnect_after_bytes - self.pushed_bytes
            f.disconnect_after_bytes = None  # one shot
            self.pushed_bytes += keep
            return keep, True
        room = self.free_bytes()
        if f.fill_after_bytes is not None:
            room = min(room, f.fill_after_bytes - self.pushed_bytes)
        self.pushed_bytes += n
        return max(0, min(n, room)), False

    # ---- battery model (what /sys/class/power_supply/battery reports) -----------------------
    def running(self, t: float | None = None) -> bool:
        t = time.monotonic() if t is None else t
        return any(a.started <= t and (a.ended is None or t < a.ended) for a in self.apps)

    def busy_seconds(self, t: float) -> float:
        return sum(max(0.0, min(t, a.ended or t) - a.started) for a in self.apps if a.started <= t)

    def current_ua(self) -> int:
        p = self.profile
        return -(p.load_current_ua if self.running() else p.idle_current_ua)  # negative: discharging

    def charge_uah(self) -> int:
        """charge_counter: remaining charge in uAh, drawn down by exactly the modelled current."""
        p, now = self.profile, time.monotonic()
        busy = self.busy_seconds(now)
        drawn = busy * p.load_current_ua + (now - self.born - busy) * p.idle_current_ua  # uA x s
        return int(p.full_charge_uah - drawn / 3600)

    def voltage_uv(self) -> int:
        p = self.profile
        return p.load_voltage_uv if self.running() else p.idle_voltage_uv

    def temp_decic(self) -> int:
        p = self.profile
        return p.base_temp_decic + int(p.heat_decic_per_s * self.busy_seconds(time.monotonic()))

    def energy_j(self, t0: float, t1: float) -> float:
        """Exact energy the model drew between two monotonic times (the ledger tests compare to)."""
        p = self.profile
        busy = self.busy_seconds(t1) - self.busy_seconds(t0)
        idle = (t1 - t0) - busy
        load_w = p.load_current_ua * p.load_voltage_uv * 1e-12
        return busy * load_w + idle * p.idle_current_ua * p.idle_voltage_uv * 1e-12

    # ---- the benchmark app -----------------------------------------------------------------
    def app_pid(self) -> int | None:
        live = [a for a in self.apps if a.ended is None]
        return live[-1].pid if live else None

    def launch_benchmark(self, extras: dict[str, str]) -> None:
        app = AppProcess(self.next_pid, time.monotonic())
        self.next_pid += 1
        self.apps.append(app)
        self.logcat.append(f"I/ActivityManager( 1021): Start proc {app.pid}:{APP_PACKAGE}/u0a245 for activity")
        threading.Thread(target=self._benchmark, args=(app, extras), daemon=True, name="adbsim-app").start()

    def _benchmark(self, app: AppProcess, extras: dict[str, str]) -> None:
        if self.faults.app_crash:
            time.sleep(0.4)
            self.logcat += [
                f"E/AndroidRuntime({app.pid}): FATAL EXCEPTION: bench",
                f"E/AndroidRuntime({app.pid}): Process: {APP_PACKAGE}, PID: {app.pid}",
                f"E/AndroidRuntime({app.pid}): java.lang.OutOfMemoryError: Failed to allocate 1610612736 bytes",
                f"I/ActivityManager( 1021): Process {APP_PACKAGE} (pid {app.pid}) has died: fg TOP",
            ]
            app.ended = time.monotonic()
            return
        results = self._run_benchmark(extras)
        out = self.path(f"{APP_FILES}/bench/{extras.get('out', 'results.json')}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(results))
        app.ended = time.monotonic()
        os.replace(tmp, out)  # atomically, as the app does

    def _run_benchmark(self, extras: dict[str, str]) -> dict:
        bundle_id = extras.get("bundle", "")
        budget_text = extras.get("thinking_budget", "none")
        budget = None if budget_text == "none" else int(budget_text)
        base = {"schema_version": 1, "bundle_id": bundle_id, "thinking_budget": budget}
        try:
            bundle_dir = self.path(f"{APP_FILES}/bundles/{bundle_id}")
            manifest = json.loads((bundle_dir / "manifest.json").read_text())
            prompts = json.loads(self.path(extras["prompts"]).read_text())
            runner = self.runner or default_runner()
            results = runner(bundle_dir, prompts, int(extras.get("runs", "1")), budget)
            return {**base, "backend": manifest["backend"], "status": "ok", "error": None, **results}
        except Exception as err:  # the app reports failures in the results file
            return {**base, "status": "error", "error": f"{type(err).__name__}: {err}", "runs": []}
