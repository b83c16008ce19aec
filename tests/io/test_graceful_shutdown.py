"""Graceful shutdown over real sockets: no request a client has sent is lost.

A proxy in front (nginx, HAProxy) keeps connections to trio_h2 open and
sends on them at any moment; when trio_h2 is told to stop, a request may be
in the listen queue, in the first bytes of a connection whose protocol is
not known yet, or on its way over a kept-alive HTTP/1.1 connection. Each is
answered (``Connection: close``), never reset. tests/interop/test_deploy.py shows
the same with nginx and HAProxy in front; these tests make each case happen
on purpose, in-process, with ``serve_listeners`` cancelled as the runner's
SIGTERM cancels it.

An open WebSocket, over HTTP/1.1 or HTTP/2, is closed with 1001 "going away"
(RFC 6455 section 7.4.1), which its client and its application see; the
``websockets`` library is the HTTP/1.1 client, ``trio_h2.testing``'s the
HTTP/2 one.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
import websockets.exceptions
import websockets.sync.client
from hyperframe.frame import DataFrame, GoAwayFrame, SettingsFrame

import trio_h2
from tests.support import frames, h1raw
from tests.support.rawh2 import H2Client, HeaderBlock
from tests.support.requests import GET, H1_GET
from tests.support.wsapps import TRANSPORTS
from trio_h2.testing import WebSocketClosed, open_websocket

# A liveness bound for one answer on a loaded 2-core machine.
LIVENESS = 10.0


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"hi\n"})


@asynccontextmanager
async def serving(app: Any = hello, config: trio_h2.Config | None = None,
                  ) -> AsyncIterator[tuple[int, trio.CancelScope]]:
    """``app`` served on a free port; cancelling the scope is the
    runner's graceful shutdown. Leaves once the server has stopped."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    stop = trio.CancelScope()

    async def serve(task_status: trio.TaskStatus[None]) -> None:
        with stop:
            await trio_h2.serve_listeners(app, listeners, config=config,
                                          task_status=task_status)

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


async def test_an_http2_preface_that_arrives_during_the_shutdown_is_answered() -> None:
    # Accepted, its protocol not yet known: the connection is drained once
    # its core exists, and the server's SETTINGS must still be its first
    # frame (RFC 9113 section 3.4), before the drain's GOAWAY.
    async with serving() as (port, stop):
        client = H2Client(await trio.open_tcp_stream("127.0.0.1", port))
        client.timeout = LIVENESS
        await trio.testing.wait_all_tasks_blocked()
        stop.cancel()
        await trio.testing.wait_all_tasks_blocked()
        await client.send_raw(frames.PREFACE + frames.settings())
        await client.send_headers(1, GET, end_stream=True)
        received = []
        while (frame := await client.recv_frame()) is not None:  # to the close
            received.append(frame)
    first = received[0]
    assert isinstance(first, SettingsFrame) and "ACK" not in first.flags, received
    head = next(f for f in received if isinstance(f, HeaderBlock) and f.stream_id == 1)
    assert dict(head.headers)[b":status"] == b"200"
    assert b"".join(f.data for f in received
                    if isinstance(f, DataFrame) and f.stream_id == 1) == b"hi\n"
    goaways = [(f.error_code, f.last_stream_id) for f in received if isinstance(f, GoAwayFrame)]
    assert goaways[0] == (0, 2**31 - 1) and goaways[-1] == (0, 1), goaways


class Chat:
    """A WebSocket application that echoes, and records how each WebSocket
    ended for it: the disconnect's code, and ``"cancelled"``. ``hold``:
    it accepts only once that is set. ``stubborn``: it ignores the
    disconnect and runs on."""

    def __init__(self, *, hold: trio.Event | None = None, stubborn: bool = False) -> None:
        self.hold = hold
        self.stubborn = stubborn
        self.connecting = trio.Event()
        self.ended: list[object] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        self.connecting.set()
        try:
            if self.hold is not None:
                await self.hold.wait()
            await send({"type": "websocket.accept"})
            while (message := await receive())["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": message["text"]})
            assert message["type"] == "websocket.disconnect"
            self.ended.append(message["code"])
            if self.stubborn:
                await trio.sleep_forever()
        except trio.Cancelled:
            self.ended.append("cancelled")
            raise


def websockets_client(port: int, talk: bool, opened: Any) -> int:
    """The ``websockets`` library over HTTP/1.1: open (and with ``talk``,
    one echo), call ``opened``, then wait for the server's close; its code."""
    with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/") as ws:
        if talk:
            ws.send("hello")
            assert ws.recv(timeout=LIVENESS) == "hello"
        opened()
        try:
            ws.recv(timeout=LIVENESS)
        except websockets.exceptions.ConnectionClosed as exc:
            assert exc.rcvd is not None, exc
            return exc.rcvd.code
    raise AssertionError("the server sent a message, not a close")


async def close_code(port: int, http2: bool, *, talk: bool = True,
                     opened: trio.Event | None = None) -> int:
    """The code of the close frame that ends a WebSocket to ``port``."""
    def tell() -> None:
        if opened is not None:
            opened.set()

    if not http2:
        logging.getLogger("websockets").setLevel(logging.WARNING)
        return await trio.to_thread.run_sync(
            websockets_client, port, talk, lambda: trio.from_thread.run_sync(tell),
            abandon_on_cancel=True)
    async with open_websocket(f"ws://127.0.0.1:{port}/", http2=True) as ws:
        if talk:
            await ws.send("hello")
            assert await ws.receive() == "hello"
        tell()
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        return closed.value.code


async def shut_down_under(app: Chat, http2: bool, *, talk: bool = True,
                          config: trio_h2.Config | None = None,
                          released: trio.Event | None = None) -> int:
    """Open a WebSocket to ``app``, shut the server down once it is open
    (with ``talk``) or once the application has its connect, then set
    ``released``. Returns the close code the client saw, once the server
    has stopped, which must be well within the default shutdown_timeout
    (30 s): a WebSocket that was not closed would hold the server that long."""
    codes: list[int] = []
    with trio.fail_after(LIVENESS):
        async with serving(app, config) as (port, stop), trio.open_nursery() as nursery:
            opened = trio.Event()

            async def client() -> None:
                codes.append(await close_code(port, http2, talk=talk, opened=opened))

            nursery.start_soon(client)
            await (opened if talk else app.connecting).wait()
            stop.cancel()
            if released is not None:
                await trio.testing.wait_all_tasks_blocked()  # the drain has begun
                released.set()
    return codes[0]


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_an_open_websocket_is_closed_with_1001(http2: bool) -> None:
    app = Chat()
    assert await shut_down_under(app, http2) == 1001
    assert app.ended == [1001]


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_a_websocket_accepted_during_the_shutdown_is_closed_with_1001(
        http2: bool) -> None:
    # The application is deciding whether to accept when the drain begins
    # (HTTP/1.1: the 101 is not out yet; the tunnel comes after the drain).
    hold = trio.Event()
    app = Chat(hold=hold)
    assert await shut_down_under(app, http2, talk=False, released=hold) == 1001
    assert app.ended == [1001]


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_an_application_that_ignores_the_close_is_cancelled(http2: bool) -> None:
    # HTTP/1.1: the tunnel ends when the application does, so at
    # shutdown_timeout; HTTP/2: when the stream has closed both ways (the
    # client answered the close) or at shutdown_timeout, whichever is first.
    app = Chat(stubborn=True)
    code = await shut_down_under(app, http2, config=trio_h2.Config(shutdown_timeout=1.0))
    assert code == 1001
    assert app.ended == [1001, "cancelled"]
