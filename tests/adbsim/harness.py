"""Test harness: a private real `adb` server, simulated phones connected to it, a fake-but-valid
bundle folder and a CLI runner over the device commands."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from fake_program import fake_pte
from typer.testing import CliRunner

from .phone import PROFILES, Faults, SimPhone


def adb_available() -> bool:
    return shutil.which("adb") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listen_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on `port` (Linux /proc/net/tcp and tcp6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for row in f.readlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(cols[9])
    return inodes


def _listener_pid_owns(pid: int, port: int) -> bool:
    inodes = _listen_inodes(port)
    if not inodes:
        return False
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return True
    return False


class AdbServer:
    """A real adb server on a private port; phones are SimPhones connected over loopback.

    The server runs in the foreground (`adb nodaemon server`) as our own child process, so it is
    ours beyond doubt: a port another session's server already holds makes it exit at once (and we
    try another port) instead of silently sharing that server, and `close()` ends our process only,
    never a neighbour's server (`adb kill-server` would stop whatever listens on the port).
    """

    def __init__(self, tmp: Path, attempts: int = 5):
        self.tmp, self.phones = tmp, []
        for _ in range(attempts):
            self.port = str(free_port())
            self.proc = subprocess.Popen(["adb", "-P", self.port, "nodaemon", "server"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._listening():
                break
            self._stop_server()
        else:
            raise RuntimeError(f"no free port for a private adb server after {attempts} tries")
        self.env = {"BLUELM_ADB_PORT": self.port}

    def _listening(self, timeout: float = 20) -> bool:
        """True once our own process holds the listening socket on the port (False: it died, e.g.
        because another server holds that port, which then answers connections instead)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            if _listener_pid_owns(self.proc.pid, int(self.port)):
                return True
            time.sleep(0.05)
        return False

    def _stop_server(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def adb(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["adb", "-P", self.port, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def phone(self, profile: str = "sm8650", *, runner=None, faults: Faults | None = None, wait: str = "device",
              ) -> SimPhone:
        phone = SimPhone(PROFILES[profile], self.tmp / f"{profile}-{len(self.phones)}", runner=runner,
                         faults=faults or Faults())
        phone.start()
        phone.serial = f"127.0.0.1:{phone.port}"
        self.phones.append(phone)
        self.connect(phone, wait)
        return phone

    def connect(self, phone: SimPhone, wait: str = "device") -> None:
        """`adb connect` in the background (it blocks 10 s on an offline phone); wait for the state."""
        proc = subprocess.Popen(["adb", "-P", self.port, "connect", phone.serial], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_state(phone, wait)
        if proc.poll() is None and wait != "device":
            proc.kill()
        proc.wait()

    def reconnect(self, phone: SimPhone) -> None:
        """Forget the phone's old transport (the server may be reconnecting it on its own), then connect."""
        self.adb("disconnect", phone.serial)
        self.wait_gone(phone)
        self.connect(phone)

    def wait_gone(self, phone: SimPhone, timeout: float = 15) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = self.adb("devices").stdout
            if f"{phone.serial}\t" not in out:
                return
            self.adb("disconnect", phone.serial)
            time.sleep(0.1)
        raise TimeoutError(f"{phone.serial} is still listed after adb disconnect: {out!r}")

    def wait_state(self, phone: SimPhone, state: str, timeout: float = 15) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = self.adb("devices").stdout
            if f"{phone.serial}\t{state}" in out:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{phone.serial} never reached state {state}: {out!r}")

    def close(self) -> None:
        self._stop_server()
        for p in self.phones:
            p.stop()


APP_SECTION = {"max_context": 512, "vocab_size": 1024, "eos_ids": [2], "tokens": {}, "token_ids": {},
               "thinking": {"default_budget": None}, "image": {"tile_size": 64}}


def make_bundle(folder: Path, *, backend: str = "xnnpack", soc: str | None = None, sizes=(3_000_000, 40_000),
                bundle_id: str | None = None, seed: int = 0, app: dict | None = None,
                extra: dict | None = None) -> Path:
    """A small bundle folder with a manifest per docs/contracts.md (real sizes and sha256); `app`
    replaces the minimal app section (the Java app's parser needs a whole one); `extra` adds keys
    (an NPU bundle's `runner`, `graph_contract`)."""
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    names = ["model.pte", "tokenizer.json", "config.json"]
    files = []
    for name, size in zip(names, [*sizes, 300], strict=True):
        pad = json.dumps({"n": name, "pad": "x" * size}).encode()
        data = fake_pte(rng.randbytes(size - 40)) if name.endswith(".pte") else pad  # a header, then filler
        (folder / name).write_bytes(data)
        files.append({"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    bid = bundle_id or f"bluelm-tiny-{backend}-{(soc or 'any').lower()}-{files[0]['sha256'][:8]}"
    manifest = {"schema_version": 1, "bundle_id": bid, "model_id": "bluelm-tiny", "backend": backend, "soc": soc,
                "recipe": f"{backend}-test", "lowered": True, "program": "model.pte",
                "created_by": "tests", "files": files, "app": app or APP_SECTION, **(extra or {})}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def cli(server: AdbServer, *args: str, env: dict | None = None):
    """Run `bluelm-edge ARGS` (the device command modules) through Typer's CliRunner."""
    import typer

    from bluelm_edge.cli import deploy, devices, profile

    app = typer.Typer(pretty_exceptions_enable=False)
    for module in (devices, deploy, profile):
        module.register(app)
    env = {"COLUMNS": "220", **(env or {})}
    old = {k: os.environ.get(k) for k in {**server.env, **env}}
    os.environ.update({**server.env, **env})
    try:
        return CliRunner().invoke(app, list(args), catch_exceptions=True)
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
