"""The adb `sync:` service on the simulated phone: STAT/STA2/LST2, LIST, SEND, RECV, QUIT.

Requests are an id, a little-endian length and a payload; files live under the phone's root
folder. SEND writes straight into the target path as data arrives (as adbd does), so a dropped
connection leaves a half-written file behind: the deploy code must never take it as done.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from .protocol import Stream

if TYPE_CHECKING:
    from .phone import SimPhone

SYNC_DATA_MAX = 64 * 1024


def _stat_v1(path) -> bytes:
    if not path.exists():
        return b"STAT" + struct.pack("<3I", 0, 0, 0)
    st = path.stat()
    return b"STAT" + struct.pack("<3I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))


def _stat_v2(tag: bytes, path) -> bytes:
    if not path.exists():
        return tag + struct.pack("<I", 2) + bytes(68)  # ENOENT
    st = path.stat()
    mtime = int(st.st_mtime)
    return tag + struct.pack("<IQQIIIIQqqq", 0, 0, st.st_ino, st.st_mode, 1, 0, 0, st.st_size, mtime, mtime, mtime)


def _fail(stream: Stream, message: str) -> None:
    data = message.encode()
    stream.write(b"FAIL" + struct.pack("<I", len(data)) + data)


def serve_sync(phone: SimPhone, stream: Stream) -> None:
    while True:
        tag = stream.read_exact(4)
        (length,) = struct.unpack("<I", stream.read_exact(4))
        if tag == b"QUIT":
            return
        arg = stream.read_exact(length).decode()
        if tag == b"STAT":
            stream.write(_stat_v1(phone.path(arg)))
        elif tag in (b"STA2", b"LST2"):
            stream.write(_stat_v2(tag, phone.path(arg)))
        elif tag == b"LIST":
            _list(phone, stream, arg)
        elif tag == b"RECV":
            _recv(phone, stream, arg)
        elif tag == b"SEND":
            if not _send(phone, stream, arg):
                return
        else:
            _fail(stream, f"unknown sync request {tag!r}")
            return


def _list(phone: SimPhone, stream: Stream, device_path: str) -> None:
    folder = phone.path(device_path)
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        st, name = entry.stat(), entry.name.encode()
        stream.write(b"DENT" + struct.pack("<4I", st.st_mode, st.st_size, int(st.st_mtime), len(name)) + name)
    stream.write(b"DONE" + bytes(16))


def _recv(phone: SimPhone, stream: Stream, device_path: str) -> None:
    path = phone.path(device_path)
    if not path.is_file():
        _fail(stream, f"open failed: No such file or directory: {device_path}")
        return
    with open(path, "rb") as f:
        while block := f.read(SYNC_DATA_MAX):
            stream.write(b"DATA" + struct.pack("<I", len(block)) + block)
    stream.write(b"DONE" + struct.pack("<I", 0))


def _send(phone: SimPhone, stream: Stream, spec: str) -> bool:
    """Receive one file; False when the connection was dropped on purpose (a fault)."""
    device_path, _, _mode = spec.rpartition(",")
    path = phone.path(device_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = False
    with open(path, "wb") as f:
        while True:
            tag = stream.read_exact(4)
            (length,) = struct.unpack("<I", stream.read_exact(4))
            if tag == b"DONE":
                break
            data = stream.read_exact(length)
            keep, drop = phone.accept_push_bytes(len(data))
            if drop:  # fault: the cable is pulled after `keep` more bytes
                f.write(data[:keep])
                f.flush()
                stream.conn.kill()
                return False
            if keep < len(data):
                full = True
            if not full:
                f.write(data)
    if full:
        os.unlink(path)  # adbd removes what it could not finish
        _fail(stream, f"write failed: No space left on device: {device_path}")
        return True
    stream.write(b"OKAY" + struct.pack("<I", 0))
    return True
