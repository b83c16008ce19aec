"""A listening socket's queue as it closes (``_io.listen_queue``), over real
sockets: what was queued is taken and works both ways; from the moment the
close begins no handshake completes, so a client that connects then is
refused before it can send a request, never reset after sending one."""

from __future__ import annotations

import socket
import sys

import pytest

from trio_h2._io.listen_queue import take_queued

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a socket filter on the listener is Linux's")


def test_the_queue_is_taken_and_later_handshakes_never_complete() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address = listener.getsockname()
        with socket.create_connection(address) as queued:
            queued.sendall(b"GET / HTTP/1.1\r\n")
            [taken] = take_queued(listener.fileno())
            with taken:
                queued.sendall(b"Host: x\r\n\r\n")  # after the close began
                received = b""
                while not received.endswith(b"\r\n\r\n"):
                    received += taken.recv(100)
                assert received == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                taken.sendall(b"HTTP/1.1 200 OK\r\n")
                assert queued.recv(100) == b"HTTP/1.1 200 OK\r\n"
            with socket.socket() as late:
                late.settimeout(0.5)
                with pytest.raises(TimeoutError):  # its SYN was dropped
                    late.connect(address)
    with socket.socket() as after, pytest.raises(ConnectionRefusedError):
        after.connect(address)
