"""adb: the one function every adb call goes through, a `Device` per phone, and device discovery.

This module knows nothing of models or bundles. We drive the `adb` binary rather than a Python
client (adbutils) because it is the same binary users already have, so what passes here works on
their machine; it speaks the real protocol (USB, auth keys, the server every other tool shares);
and through `shell_v2` it returns the phone command's real exit code, so failures are typed from
facts. `BLUELM_ADB` points at a specific adb binary and `BLUELM_ADB_PORT` picks the adb server
port (`adb -P`), which tests use to run a private server.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bluelm_edge.device.errors import (
    AdbNotFound,
    AdbTimeout,
    CommandFailed,
    DeviceError,
    MultipleDevices,
    NoDevice,
    Offline,
    Unauthorized,
)

ENV_ADB, ENV_PORT = "BLUELM_ADB", "BLUELM_ADB_PORT"


def adb_binary() -> str:
    """Path of the adb to run: $BLUELM_ADB, else `adb` on PATH, else $ANDROID_HOME's platform-tools."""
    explicit = os.environ.get(ENV_ADB)
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise AdbNotFound(f"no adb at BLUELM_ADB={explicit}; point BLUELM_ADB at an adb binary or unset it")
        return explicit
    sdk = os.environ.get("ANDROID_HOME", "")
    candidates = [shutil.which("adb"), os.path.join(sdk, "platform-tools", "adb") if sdk else None]
    for c in candidates:
        if c and os.path.isfile(c):
            return c
    raise AdbNotFound("adb not found: install Android platform-tools (e.g. `apt install adb`) or set BLUELM_ADB")


def adb_command(args: list[str], serial: str | None = None) -> list[str]:
    """The full command line: adb [-P PORT] [-s SERIAL] ARGS."""
    cmd = [adb_binary()]
    port = os.environ.get(ENV_PORT)
    if port:
        cmd += ["-P", port]
    if serial:
        cmd += ["-s", serial]
    return cmd + list(args)


def adb(args: list[str], serial: str | None = None, *, timeout: float = 60.0, check: bool = True,
        wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    """Run adb (every call in bluelm-edge comes here). With wait=False, return the running Popen."""
    cmd = adb_command(args, serial)
    if not wait:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AdbTimeout(f"`adb {' '.join(args)[:60]}` on {serial or 'the phone'} took over {timeout:.0f} s; "
                         "check the cable and `adb devices`, then rerun") from None
    if check and result.returncode != 0:
        raise classify(result.stdout, result.stderr, result.returncode, args, serial)
    return result


_ADB_ERRORS: list[tuple[str, type[DeviceError], str]] = [
    (r"device unauthorized|still authorizing", Unauthorized,
     "{who} is unauthorized: unlock it and accept 'Allow USB debugging', then rerun"),
    (r"device offline", Offline, "{who} is offline: replug it (or `adb disconnect` + `adb connect`), then rerun"),
    (r"more than one device", MultipleDevices,
     "several phones are attached: pick one with -s SERIAL (see `bluelm-edge devices`) or use --all"),
    (r"no devices/emulators found", NoDevice, "no phone attached: connect one with USB debugging on (`adb devices`)"),
    (r"device '.*' not found", NoDevice, "no phone with serial {who}: see `bluelm-edge devices`"),
    (r"couldn't read from device|connection reset|protocol fault|failed to read", Offline,
     "lost the connection to {who} during `adb {cmd}`: reconnect it and rerun"),
    (r"cannot connect to daemon|failed to start daemon", NoDevice,
     "the adb server did not start: run `adb start-server` and read its error"),
]


def classify(stdout: str, stderr: str, code: int, args: list[str], serial: str | None) -> DeviceError:
    """Turn a failed adb run into the typed error its output describes."""
    text, who = f"{stderr}\n{stdout}", serial or "the phone"
    adb_said = "\n".join(ln for ln in text.splitlines() if ln.startswith(("error:", "adb: error:", "* ")))
    for pattern, kind, message in _ADB_ERRORS:
        if re.search(pattern, adb_said, re.IGNORECASE):
            return kind(message.format(who=who, cmd=args[0]))
    lines = [ln.strip() for ln in (adb_said or text).splitlines() if ln.strip()]
    command = " ".join(args)[:80]
    return CommandFailed(f"`{command}` on {who} exited with {code}: {lines[-1] if lines else 'no output'}", code, text)


def list_devices() -> list[tuple[str, str]]:
    """(serial, state) of every phone the adb server sees; state is device|offline|unauthorized|..."""
    out = adb(["devices"]).stdout
    rows = [ln.split("\t") for ln in out.splitlines()[1:] if "\t" in ln]
    return [(r[0].strip(), r[1].strip()) for r in rows]


_STATE_ERRORS = {"unauthorized": _ADB_ERRORS[0], "authorizing": _ADB_ERRORS[0], "offline": _ADB_ERRORS[1]}


def _usable(serial: str, state: str) -> Device:
    if state in _STATE_ERRORS:
        _, kind, message = _STATE_ERRORS[state]
        raise kind(message.format(who=serial))
    if state != "device":
        raise Offline(f"{serial} is in state {state!r}, not ready for adb: wait for it to boot, then rerun")
    return Device(serial)


def select_devices(serial: str | None = None, all_devices: bool = False) -> list[Device]:
    """The phones a command should act on: the one named, all ready ones, or the only one."""
    found = list_devices()
    if serial:
        states = dict(found)
        if serial not in states:
            raise NoDevice(f"no phone with serial {serial}: see `bluelm-edge devices`")
        return [_usable(serial, states[serial])]
    if not found:
        raise NoDevice("no phone attached: connect one with USB debugging on (`adb devices`)")
    if all_devices:
        ready = [Device(s) for s, st in found if st == "device"]
        if not ready:
            return [_usable(*found[0])]
        return ready
    if len(found) > 1:
        raise MultipleDevices("several phones are attached: pick one with -s SERIAL "
                              "(see `bluelm-edge devices`) or use --all")
    return [_usable(*found[0])]


@dataclass
class Device:
    """One phone, addressed by serial; every method is one adb call."""

    serial: str
    _props: dict[str, str] | None = field(default=None, repr=False)

    def adb(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        return adb(args, self.serial, **kw)

    def shell(self, command: str, *, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return self.adb(["shell", command], check=check, timeout=timeout)

    def props(self) -> dict[str, str]:
        if self._props is None:
            out = self.shell("getprop").stdout
            self._props = dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]$", out, re.MULTILINE))
        return self._props

    def read_text(self, path: str) -> str | None:
        """A file's text, or None when it does not exist."""
        r = self.shell(f"cat {shlex.quote(path)}", check=False)
        return r.stdout if r.returncode == 0 else None

    def exists(self, path: str) -> bool:
        return self.shell(f"ls {shlex.quote(path)}", check=False).returncode == 0

    def listdir(self, path: str) -> list[str]:
        r = self.shell(f"ls {shlex.quote(path)}", check=False)
        return r.stdout.split() if r.returncode == 0 else []

    def mkdirs(self, path: str) -> None:
        self.shell(f"mkdir -p {shlex.quote(path)}")

    def remove(self, path: str) -> None:
        self.shell(f"rm -rf {shlex.quote(path)}")

    def move(self, src: str, dst: str) -> None:
        self.shell(f"mv {shlex.quote(src)} {shlex.quote(dst)}")

    def sha256(self, paths: list[str]) -> dict[str, str]:
        """sha256 of each existing file among `paths` (missing files are simply absent)."""
        if not paths:
            return {}
        r = self.shell("sha256sum " + " ".join(shlex.quote(p) for p in paths), check=False, timeout=600)
        return {p: h for h, p in re.findall(r"^([0-9a-f]{64})\s+(.+)$", r.stdout, re.MULTILINE)}

    def free_bytes(self, path: str) -> int:
        """Free bytes on the filesystem holding `path` (`df -k`, Available column)."""
        out = self.shell(f"df -k {shlex.quote(path)}").stdout.strip().splitlines()
        return int(out[-1].split()[3]) * 1024

    def mem_total_kb(self) -> int | None:
        m = re.search(r"MemTotal:\s+(\d+) kB", self.read_text("/proc/meminfo") or "")
        return int(m.group(1)) if m else None

    def has_package(self, package: str) -> bool:
        return self.shell(f"pm path {package}", check=False).returncode == 0

    def install(self, apk: Path) -> None:
        r = self.adb(["install", "-r", str(apk)], timeout=300)
        if "Success" not in r.stdout:
            raise CommandFailed(f"installing {apk.name} on {self.serial} failed: {r.stdout.strip()[-200:]}", 1)

    def push(self, local: Path, remote: str, *, wait: bool = True, timeout: float = 3600):
        return self.adb(["push", str(local), remote], timeout=timeout, wait=wait)

    def pull(self, remote: str, local: Path) -> None:
        self.adb(["pull", remote, str(local)], timeout=600)
