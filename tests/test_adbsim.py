"""The simulator's own races, made deterministic (issue 16): a stream closed by its service thread
while the serve thread handles a message for it, and a private adb server port that another
session's server already holds."""

from __future__ import annotations

import socket
import threading

import pytest
from adbsim import harness
from adbsim.harness import AdbServer, adb_available
from adbsim.protocol import A_CLSE, A_OKAY, A_WRTE, Connection


class _ClosesOnLookup(dict):
    """A stream table whose entry vanishes right after a membership test: what happens when the
    stream's own thread closes it between the serve thread's check and its lookup."""

    def __contains__(self, key) -> bool:
        found = super().__contains__(key)
        self.pop(key, None)
        return found


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


@pytest.fixture
def conn():
    a, b = socket.socketpair()
    threading.Thread(target=_drain, args=(b,), daemon=True).start()  # the host side reads what we send
    gate = threading.Event()  # each stream's service waits here, so only the test closes streams
    c = Connection(a, b"device::", "ok", service=lambda stream, name: gate.wait(10))
    yield c
    gate.set()
    c.kill()
    b.close()


@pytest.mark.parametrize("command", [A_OKAY, A_WRTE, A_CLSE])
def test_a_message_for_a_stream_closed_meanwhile_is_dropped(conn, command):
    conn._open(remote_id=7, name="shell:true")
    [(local_id, stream)] = list(conn.streams.items())
    conn.streams = _ClosesOnLookup(conn.streams)
    conn._handle(command, 7, local_id, b"late")  # KeyError in the serve thread before the fix
    if command == A_OKAY:
        assert stream.acked.is_set()
    elif command == A_WRTE:
        assert stream.inbox.get_nowait() == b"late"
    else:
        assert stream.closed and stream.inbox.get_nowait() is None


def test_closing_streams_while_messages_arrive(conn):
    errors: list[BaseException] = []
    for _ in range(200):
        conn._open(remote_id=1, name="shell:true")
    ids = list(conn.streams)

    def close_all() -> None:
        for i in ids:
            stream = conn.stream(i)
            if stream is not None:
                stream.close()

    closer = threading.Thread(target=close_all)
    closer.start()
    try:
        for i in ids:
            conn._handle(A_OKAY, 1, i, b"")
            conn._handle(A_CLSE, 1, i, b"")
    except Exception as err:  # noqa: BLE001  (any error here is the race)
        errors.append(err)
    closer.join()
    assert errors == [] and conn.streams == {}


@pytest.mark.skipif(not adb_available(), reason="needs the adb binary")
def test_private_adb_server_never_shares_a_port(tmp_path, monkeypatch):
    first = AdbServer(tmp_path / "a")
    taken = iter([first.port])  # the next session is handed the port the first server holds
    real_free_port = harness.free_port
    monkeypatch.setattr(harness, "free_port", lambda: int(next(taken, None) or real_free_port()))
    second = AdbServer(tmp_path / "b")
    try:
        assert second.port != first.port and second.proc.poll() is None
        second.close()  # ends our own server process only
        assert first.proc.poll() is None and first.adb("devices").returncode == 0
    finally:
        second.close()
        first.close()
    assert first.proc.poll() is not None
