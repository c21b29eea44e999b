"""The simulated phone's `shell:` / `shell,v2,...:` / `exec:` services and its small toolbox.

Each command returns (stdout, stderr, exit code); shell_v2 sends them as packets (1 stdout,
2 stderr, 3 exit), plain `shell:` sends the bytes and closes. Output formats follow Android 14's
toybox, `getprop`, `pm`, `am`, `dumpsys meminfo` and `logcat`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import struct
import time
from typing import TYPE_CHECKING

from .protocol import Stream

if TYPE_CHECKING:
    from .phone import SimPhone

Result = tuple[str, str, int]
BATTERY = "/sys/class/power_supply/battery"


def serve_shell(phone: SimPhone, stream: Stream, name: str) -> None:
    options, _, command = name.partition(":")
    out, err, code = run_command(phone, command)
    if ",v2" in options:
        for pid, text in ((1, out), (2, err)):
            if text:
                data = text.encode()
                stream.write(struct.pack("<BI", pid, len(data)) + data)
        stream.write(struct.pack("<BI", 3, 1) + bytes([code & 0xFF]))
    else:
        stream.write((out + err).encode())


def run_command(phone: SimPhone, command: str) -> Result:
    argv = [a for a in shlex.split(command) if a != "2>/dev/null"]
    if not argv:
        return "", "", 0
    handler = COMMANDS.get(argv[0])
    if handler is None:
        return "", f"/system/bin/sh: {argv[0]}: inaccessible or not found\n", 127
    return handler(phone, argv[1:])


def _getprop(phone: SimPhone, args: list[str]) -> Result:
    if args:
        return phone.props.get(args[0], "") + "\n", "", 0
    return "".join(f"[{k}]: [{v}]\n" for k, v in sorted(phone.props.items())), "", 0


def _pm(phone: SimPhone, args: list[str]) -> Result:
    from .phone import APP_PACKAGE

    if args[:2] == ["list", "packages"]:
        return "".join(f"package:{p}\n" for p in sorted(phone.packages)), "", 0
    if args[:1] == ["path"]:
        if args[1] in phone.packages:
            return f"package:/data/app/~~x1/{args[1]}-1/base.apk\n", "", 0
        return "", "", 1
    if args[:1] == ["install"]:
        apk = phone.path(args[-1])
        if not apk.is_file() or APP_PACKAGE.encode() not in apk.read_bytes():
            return "Failure [INSTALL_PARSE_FAILED_NOT_APK: not an APK of a known package]\n", "", 1
        phone.packages.add(APP_PACKAGE)
        return "Success\n", "", 0
    return "", f"pm: unknown command {' '.join(args)}\n", 1


def _am(phone: SimPhone, args: list[str]) -> Result:
    from .phone import APP_PACKAGE

    if args[:1] == ["force-stop"]:
        for app in phone.apps:
            app.ended = app.ended or time.monotonic()
        return "", "", 0
    if args[:1] != ["start"]:
        return "", "am: unsupported\n", 1
    component, extras, i = "", {}, 1
    while i < len(args):
        if args[i] == "-n":
            component, i = args[i + 1], i + 2
        elif args[i] in ("--es", "--ei"):
            extras[args[i + 1]], i = args[i + 2], i + 3
        else:
            i += 1
    intent = f"Starting: Intent {{ cmp={component} (has extras) }}\n"
    if component != f"{APP_PACKAGE}/.BenchmarkActivity" or APP_PACKAGE not in phone.packages:
        return intent, f"Error: Activity class {{{component}}} does not exist.\n", 1
    phone.launch_benchmark(extras)
    return intent + f"Status: ok\nLaunchState: COLD\nActivity: {component}\nTotalTime: 212\nComplete\n", "", 0


def _dumpsys(phone: SimPhone, args: list[str]) -> Result:
    pid = phone.app_pid()
    if args[:1] != ["meminfo"] or pid is None:
        return f"No process found for: {args[-1] if args else ''}\n", "", 0
    pss = int(phone.profile.app_rss_kb * 0.87)
    return (
        "Applications Memory Usage (in Kilobytes):\n"
        f"** MEMINFO in pid {pid} [{args[-1]}] **\n"
        f"           TOTAL PSS:   {pss}            TOTAL RSS:   {phone.profile.app_rss_kb}"
        "       TOTAL SWAP PSS:      0\n"
    ), "", 0


def _pidof(phone: SimPhone, args: list[str]) -> Result:
    from .phone import APP_PACKAGE

    pid = phone.app_pid()
    return (f"{pid}\n", "", 0) if args == [APP_PACKAGE] and pid else ("", "", 1)


def _virtual(phone: SimPhone, device_path: str) -> str | None:
    values = {
        f"{BATTERY}/current_now": phone.current_ua, f"{BATTERY}/voltage_now": phone.voltage_uv,
        f"{BATTERY}/temp": phone.temp_decic,
        f"{BATTERY}/charge_counter": phone.charge_uah,
        "/sys/class/thermal/thermal_zone0/temp": lambda: phone.temp_decic() * 100 + 9000,
    }
    if device_path in values:
        return f"{values[device_path]()}\n"
    if device_path == "/proc/meminfo":
        return f"MemTotal:       {phone.profile.ram_kb} kB\nMemFree:         2145020 kB\n"
    pid = phone.app_pid()
    if pid and device_path == f"/proc/{pid}/status":
        rss = phone.profile.app_rss_kb
        return f"Name:\tcom.bluelm.edge.demo\nPid:\t{pid}\nVmHWM:\t{rss} kB\nVmRSS:\t{rss - 1024} kB\n"
    return None


def _cat(phone: SimPhone, args: list[str]) -> Result:
    out, err, code = [], [], 0
    for a in args:
        text = _virtual(phone, a)
        if text is None and phone.path(a).is_file():
            text = phone.path(a).read_text()
        if text is None:
            err.append(f"cat: {a}: No such file or directory\n")
            code = 1
        else:
            out.append(text)
    return "".join(out), "".join(err), code


def _df(phone: SimPhone, args: list[str]) -> Result:
    free_kb, total_kb = phone.free_bytes() // 1024, 230_000_000
    use = 100 - 100 * free_kb // total_kb
    return (
        "Filesystem      1K-blocks    Used Available Use% Mounted on\n"
        f"/dev/fuse       {total_kb} {total_kb - free_kb} {free_kb}  {use}% /storage/emulated\n"
    ), "", 0


def _sha256sum(phone: SimPhone, args: list[str]) -> Result:
    out, err = [], []
    for a in args:
        p = phone.path(a)
        if p.is_file():
            out.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {a}\n")
        else:
            err.append(f"sha256sum: {a}: No such file or directory\n")
    return "".join(out), "".join(err), 1 if err else 0


def _mv(phone: SimPhone, args: list[str]) -> Result:
    src, dst = phone.path(args[-2]), phone.path(args[-1])
    if not src.exists():
        return "", f"mv: bad '{args[-2]}': No such file or directory\n", 1
    os.replace(src, dst / src.name if dst.is_dir() and not src.is_dir() else dst)
    return "", "", 0


def _mkdir(phone: SimPhone, args: list[str]) -> Result:
    for a in (a for a in args if not a.startswith("-")):
        phone.path(a).mkdir(parents=True, exist_ok=True)
    return "", "", 0


def _rm(phone: SimPhone, args: list[str]) -> Result:
    for a in (a for a in args if not a.startswith("-")):
        p = phone.path(a)
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    return "", "", 0


def _ls(phone: SimPhone, args: list[str]) -> Result:
    paths = [a for a in args if not a.startswith("-")] or ["/"]
    p = phone.path(paths[0])
    if not p.exists():
        return "", f"ls: {paths[0]}: No such file or directory\n", 1
    names = sorted(x.name for x in p.iterdir()) if p.is_dir() else [paths[0]]
    return "".join(f"{n}\n" for n in names), "", 0


def _stat(phone: SimPhone, args: list[str]) -> Result:
    p = phone.path(args[-1])
    if not p.exists():
        return "", f"stat: '{args[-1]}': No such file or directory\n", 1
    return f"{p.stat().st_size}\n", "", 0


def _logcat(phone: SimPhone, args: list[str]) -> Result:
    if "-c" in args:
        phone.logcat.clear()
        return "", "", 0
    return "".join(f"{line}\n" for line in phone.logcat), "", 0


def _echo(phone: SimPhone, args: list[str]) -> Result:
    return " ".join(args) + "\n", "", 0


COMMANDS = {
    "getprop": _getprop, "pm": _pm, "am": _am, "dumpsys": _dumpsys, "pidof": _pidof, "cat": _cat,
    "df": _df, "sha256sum": _sha256sum, "mv": _mv, "mkdir": _mkdir, "rm": _rm, "ls": _ls,
    "stat": _stat, "logcat": _logcat, "echo": _echo,
}
