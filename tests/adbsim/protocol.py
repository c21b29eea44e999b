"""The device side of the adb transport protocol over TCP (what `adbd` speaks), standard library only.

A connection carries 24-byte message headers (command, arg0, arg1, length, checksum, magic) plus a
payload. The host opens streams with OPEN("service"), the device answers OKAY and both sides send
WRTE, each acknowledged with OKAY (one message in flight per direction), until CLSE.
"""

from __future__ import annotations

import queue
import socket
import struct
import threading
from collections.abc import Callable

A_CNXN, A_AUTH, A_OPEN = 0x4E584E43, 0x48545541, 0x4E45504F
A_OKAY, A_CLSE, A_WRTE = 0x59414B4F, 0x45534C43, 0x45545257
A_VERSION = 0x01000001  # >= 0x01000001: the host skips payload checksums
MAX_PAYLOAD = 256 * 1024
AUTH_TOKEN, AUTH_SIGNATURE = 1, 2


def pack(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    checksum = sum(data) & 0xFFFFFFFF
    header = struct.pack("<6I", command, arg0, arg1, len(data), checksum, command ^ 0xFFFFFFFF)
    return header + data


class Stream:
    """One open service stream: blocking write with flow control, a queue of bytes read."""

    def __init__(self, conn: Connection, local_id: int, remote_id: int):
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.acked = threading.Event()
        self.closed = False
        self._pending = b""

    def write(self, data: bytes) -> None:
        step = min(self.conn.max_payload, MAX_PAYLOAD)
        for i in range(0, len(data), step):
            if self.closed or not self.conn.alive:
                raise ConnectionError("stream closed")
            self.acked.clear()
            self.conn.send(A_WRTE, self.local_id, self.remote_id, data[i : i + step])
            while not self.acked.wait(0.5):
                if self.closed or not self.conn.alive:
                    raise ConnectionError("stream closed")

    def read_exact(self, n: int) -> bytes:
        """Read exactly n bytes (the host may split requests across WRTE messages)."""
        while len(self._pending) < n:
            chunk = self.inbox.get()
            if chunk is None:
                raise ConnectionError("stream closed")
            self._pending += chunk
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.forget(self.local_id)
            self.conn.send(A_CLSE, self.local_id, self.remote_id)


class Connection:
    """One TCP connection from the adb server; `service(stream, name)` runs each OPENed stream."""

    def __init__(self, sock: socket.socket, banner: bytes, mode: str, service: Callable[[Stream, str], None]):
        self.sock, self.banner, self.mode, self.service = sock, banner, mode, service
        self.max_payload = MAX_PAYLOAD
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.alive = True
        self._lock = threading.Lock()  # one message on the socket at a time
        self._streams_lock = threading.Lock()  # the serve thread and each stream's thread edit `streams`

    def stream(self, local_id: int) -> Stream | None:
        with self._streams_lock:
            return self.streams.get(local_id)

    def forget(self, local_id: int) -> Stream | None:
        with self._streams_lock:
            return self.streams.pop(local_id, None)

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        with self._lock:
            if self.alive:
                try:
                    self.sock.sendall(pack(command, arg0, arg1, data))
                except OSError:
                    self.kill()

    def kill(self) -> None:
        """Drop the connection abruptly (a cable pulled)."""
        self.alive = False
        with self._streams_lock:
            dropped, self.streams = list(self.streams.values()), {}
        for s in dropped:
            s.closed = True
            s.inbox.put(None)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("host closed")
            buf += chunk
        return buf

    def serve(self) -> None:
        try:
            while self.alive:
                command, arg0, arg1, length, _, _ = struct.unpack("<6I", self._recv(24))
                self._handle(command, arg0, arg1, self._recv(length) if length else b"")
        except (ConnectionError, OSError):
            pass
        finally:
            if self.alive:
                self.kill()

    def _handle(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            self.max_payload = min(arg1, MAX_PAYLOAD) or MAX_PAYLOAD
            if self.mode == "unauthorized":
                self.send(A_AUTH, AUTH_TOKEN, 0, b"\x07" * 20)  # never accept a key
            elif self.mode != "offline":  # offline: never answer, the host shows "offline"
                self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, self.banner)
        elif command == A_AUTH and self.mode == "unauthorized" and arg0 == AUTH_SIGNATURE:
            self.send(A_AUTH, AUTH_TOKEN, 0, b"\x07" * 20)  # reject every signature; a public key waits forever
        elif command == A_OPEN:
            self._open(arg0, data.rstrip(b"\0").decode())
        elif command in (A_OKAY, A_WRTE, A_CLSE):
            self._stream_message(command, arg0, arg1, data)

    def _stream_message(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        """OKAY / WRTE / CLSE for our stream `arg1`. Its own thread may close it at any moment, so
        the stream is looked up once, under the lock; a message for a closed stream is dropped
        (a late OKAY or WRTE crossing our CLSE on the wire is normal)."""
        stream = self.forget(arg1) if command == A_CLSE else self.stream(arg1)
        if stream is None:
            return
        if command == A_OKAY:
            stream.acked.set()
        elif command == A_WRTE:
            self.send(A_OKAY, arg1, arg0)
            stream.inbox.put(data)
        else:
            stream.closed = True
            stream.inbox.put(None)

    def _open(self, remote_id: int, name: str) -> None:
        local_id, self.next_id = self.next_id, self.next_id + 1
        stream = Stream(self, local_id, remote_id)
        with self._streams_lock:
            self.streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)

        def run() -> None:
            try:
                self.service(stream, name)
            except (ConnectionError, OSError):
                pass
            finally:
                if self.alive:
                    stream.close()

        threading.Thread(target=run, daemon=True, name=f"adbsim-{name[:20]}").start()
