"""Graceful shutdown over real sockets: no request a client has sent is lost.

A proxy in front (nginx, HAProxy) keeps connections to trio_h2 open and
sends on them at any moment; when trio_h2 is told to stop, a request may be
in the listen queue, in the first bytes of a connection whose protocol is
not known yet, or on its way over a kept-alive HTTP/1.1 connection. Each is
answered (``Connection: close``), never reset. tests/interop/test_deploy.py shows
the same with nginx and HAProxy in front; these tests make each case happen
on purpose, in-process, with ``serve_listeners`` cancelled as the runner's
SIGTERM cancels it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

import trio_h2
from tests.support import h1raw
from tests.support.requests import H1_GET

# A liveness bound for one answer on a loaded 2-core machine.
LIVENESS = 10.0


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"hi\n"})


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[int, trio.CancelScope]]:
    """``hello`` served on a free port; cancelling the scope is the
    runner's graceful shutdown. Leaves once the server has stopped."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    stop = trio.CancelScope()

    async def serve(task_status: trio.TaskStatus[None]) -> None:
        with stop:
            await trio_h2.serve_listeners(hello, listeners, task_status=task_status)

    async with trio.open_nursery() as nursery:
        await nursery.start(serve)
        yield port, stop


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset fails the test)."""
    sock.settimeout(LIVENESS)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def answered_with_close(raw: bytes, requests: int = 1) -> None:
    responses = h1raw.parse(raw, [b"GET"] * requests, closed=True)
    assert responses is not None, raw
    assert [response.status for response in responses] == [200] * requests, raw
    assert responses[-1].headers[b"connection"] == b"close", raw


async def test_connections_in_the_listen_queue_are_answered() -> None:
    # The kernel completes the handshakes, the clients send their requests,
    # and the shutdown begins before trio_h2 has accepted any of them:
    # closing the listener would reset them all.
    clients = []
    async with serving() as (port, stop):
        for _ in range(4):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(H1_GET)
            clients.append(client)
        stop.cancel()  # no checkpoint since the connects: none was accepted
    for client in clients:
        with client:
            answered_with_close(read_to_eof(client))


async def test_a_request_still_arriving_is_answered() -> None:
    # Accepted, its first bytes read (not yet enough to tell its protocol):
    # the connection is not running yet when the shutdown begins.
    async with serving() as (port, stop):
        client = await trio.open_tcp_stream("127.0.0.1", port)
        await client.send_all(H1_GET[:5])
        await trio.testing.wait_all_tasks_blocked()
        stop.cancel()
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(H1_GET[5:])
        raw = b""
        with trio.fail_after(LIVENESS):
            while chunk := await client.receive_some():
                raw += chunk
    answered_with_close(raw)


async def test_a_keep_alive_request_that_crosses_the_shutdown_is_answered() -> None:
    # HTTP/1.1 cannot tell a client to stop sending on a kept-alive
    # connection: its next request may be on the wire when the drain begins.
    async with serving() as (port, stop):
        client = await trio.open_tcp_stream("127.0.0.1", port)
        await client.send_all(H1_GET)
        raw = b""
        with trio.fail_after(LIVENESS):
            while h1raw.parse(raw, [b"GET"]) is None:
                raw += await client.receive_some()
        stop.cancel()
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(H1_GET)
        with trio.fail_after(LIVENESS):
            while chunk := await client.receive_some():
                raw += chunk
    answered_with_close(raw, requests=2)
