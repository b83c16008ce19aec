"""HTTP/1.1 responses whose body comes in one large ``send``: the sender
writes the whole chunk at once (``_io.connection.Connection._write``). Over
TCP and TLS, ``send_timeout`` must still cut off only a client that stops
reading (``tests/io/test_http1.py``), never one that reads slowly but steadily."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.apps import http_only
from tests.support.h1raw import parse
from tests.support.requests import H1_GET
from trio_h2._core.output import Piece
from trio_h2._io.connection import _batches, _write_now
from trio_h2.testing import H2ServerFactory

MiB = 1024 * 1024
BODY = 8 * MiB
"""Twice what the kernel's send buffer holds at most on loopback (tcp_wmem's
4 MiB), so much of it waits in the server while the client reads."""


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_client_that_reads_slowly_gets_a_large_chunk_whole(
    h2_server: H2ServerFactory, framing: str, tls: bool,
) -> None:
    body = b"x" * BODY

    async def one_send(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", str(BODY).encode())] if framing == "content-length" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # The client reads 64 KiB every 20 ms: never idle for anywhere near
    # send_timeout, though the whole body takes several times as long.
    server = await h2_server(http_only(one_send), tls=tls, send_timeout=1)
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    await sock.connect((server.host, server.port))
    stream: trio.abc.Stream = trio.SocketStream(sock)
    if tls:
        context = server.client_ssl_context()
        context.set_alpn_protocols(["http/1.1"])
        stream = trio.SSLStream(stream, context, server_hostname=server.host)
    await stream.send_all(H1_GET)
    received = bytearray()
    while len(received) < BODY or parse(bytes(received), [b"GET"]) is None:
        data = await stream.receive_some(64 * 1024)
        if not data:
            break
        if len(received) // (64 * 1024) < (len(received) + len(data)) // (64 * 1024):
            await trio.sleep(0.02)  # (TLS hands over a 16 KiB record at a time)
        received += data
    responses = parse(bytes(received), [b"GET"])
    assert responses is not None, f"cut off after {len(received)} bytes"
    assert responses[0].body == body


# ----------------------------------------------- _write_now, over a socketpair


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=200),
       kinds=st.lists(st.sampled_from(["bytes", "bytearray", "view"]), min_size=200,
                      max_size=200),
       reads=st.lists(st.integers(1, 9000), min_size=1, max_size=50))
def test_write_now_keeps_the_order_whatever_the_kernel_takes(
    sizes: list[int], kinds: list[str], reads: list[int],
) -> None:
    """Pieces of every kind and size (empty ones too, more than one writev
    takes), written to a socket whose buffers are tiny, so that the kernel
    takes part of a piece, a whole number of them, or nothing (EAGAIN)."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ours.setblocking(False)
        theirs.setblocking(False)
        pieces: list[Piece] = []
        for index, (size, kind) in enumerate(zip(sizes, kinds, strict=False)):
            data = bytes([index % 251]) * size
            piece: Piece = bytearray(data) if kind == "bytearray" else data
            pieces.append(memoryview(b"<" + data + b">")[1:-1] if kind == "view" else piece)
        expected = b"".join(pieces)
        left, received, turn = list(pieces), bytearray(), 0
        while left or len(received) < len(expected):
            left = _write_now(ours.fileno(), left)
            try:
                received += theirs.recv(reads[turn % len(reads)])
            except BlockingIOError:
                assert left == [] or len(received) < len(expected)
            turn += 1
        assert bytes(received) == expected


@given(sizes=st.lists(st.integers(0, 300), max_size=40), size=st.integers(1, 500))
def test_tls_batches_are_the_pieces_in_order_and_at_most_a_batch(
    sizes: list[int], size: int,
) -> None:
    pieces: list[Piece] = [bytes([index]) * length for index, length in enumerate(sizes)]
    batches = [bytes(batch) for batch in _batches(pieces, size)]
    assert b"".join(batches) == b"".join(pieces)
    assert all(0 < len(batch) <= size for batch in batches)
