"""WebSockets over HTTP/1.1 (RFC 6455) and HTTP/2 (RFC 8441) over sockets:
the handshake and its refusals, messages, close codes, limits and
backpressure in bytes; the ``websockets`` library as a real client."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
import trio
import trio.testing
import websockets.exceptions
import websockets.sync.client
from h2.settings import SettingCodes
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType
from wsproto.events import CloseConnection, Ping

from tests.support.h1raw import RawClient
from tests.support.rawh2 import H2Client as RawH2
from tests.support.requests import request
from tests.support.wsapps import TRANSPORTS, echo, echo_messages, frame
from trio_h2 import Config
from trio_h2._apps.asgi import asgi_handler
from trio_h2._core.h1 import H1Core
from trio_h2._core.protocol import READ_SIZE
from trio_h2._io.connection import Connection
from trio_h2.testing import (
    H2ServerFactory,
    H2TestServer,
    WebSocketClosed,
    WebSocketRejected,
    open_websocket,
)

KiB = 1024
MiB = 1024 * KiB
LIVENESS = 10.0  # generous, for a loaded 2-core machine (see tests/support/attack_harness.py)


@pytest.fixture
async def server(h2_server: H2ServerFactory) -> H2TestServer:
    return await h2_server(echo)


def ws_url(server: H2TestServer, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


# ---------------------------------------------------------------- messages


@pytest.mark.parametrize("http2", TRANSPORTS)
@pytest.mark.parametrize("deflate", [False, True])
async def test_echo_text_bytes_and_a_mebibyte(server: H2TestServer, http2: bool,
                                              deflate: bool) -> None:
    async with open_websocket(ws_url(server, "/echo"), http2=http2, deflate=deflate,
                              subprotocols=["chat", "x"]) as ws:
        assert ws.http_version == ("2" if http2 else "1.1")
        assert ws.subprotocol == "chat"
        accepted = dict(ws.headers).get(b"sec-websocket-extensions", b"")
        assert accepted.startswith(b"permessage-deflate") == deflate
        await ws.send("héllo")
        assert await ws.receive() == "héllo"
        await ws.send(b"\x00\xff")
        assert await ws.receive() == b"\x00\xff"
        big = os.urandom(MiB)  # exactly websocket_max_message_size
        await ws.send(big)
        assert await ws.receive() == big
        assert await ws.close() == 1000


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_app_close_code_and_reason_reach_the_client(server: H2TestServer,
                                                          http2: bool) -> None:
    async with open_websocket(ws_url(server, "/close/4001"), http2=http2) as ws:
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
    assert (closed.value.code, closed.value.reason) == (4001, "bye")


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_app_error_after_accept_closes_1011(server: H2TestServer, http2: bool,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    async with open_websocket(ws_url(server, "/boom"), http2=http2) as ws:
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
    assert closed.value.code == 1011
    assert "websocket application raised RuntimeError" in caplog.text


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_denial_is_a_real_http_response(server: H2TestServer, http2: bool) -> None:
    with pytest.raises(WebSocketRejected) as denied:
        async with open_websocket(ws_url(server, "/deny"), http2=http2):
            pass
    assert (denied.value.status, denied.value.body) == (401, b"no entry")
    with pytest.raises(WebSocketRejected) as rejected:
        async with open_websocket(ws_url(server, "/reject"), http2=http2):
            pass
    assert rejected.value.status == 403


async def greeter(scope: Any, receive: Any, send: Any) -> None:
    """Greets the first message with ``hello``, then echoes the messages."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    await receive()
    await send({"type": "websocket.send", "text": "hello"})
    await echo_messages(receive, send)


async def test_http2_client_keeps_what_it_reads_while_waiting_for_window(
        h2_server: H2ServerFactory) -> None:
    """trio_h2.testing's client reads while a send waits for HTTP/2 window:
    what comes meanwhile (``hello``, sent as the app takes ``first``, while
    64 windows of ``big`` are still to go) is the next ``receive``. (It
    was dropped: the receive then waited for ever.)"""
    server = await h2_server(greeter, initial_window_size=16 * KiB)
    async with open_websocket(ws_url(server, "/"), http2=True) as ws:
        big = os.urandom(MiB)
        await ws.send("first")
        await ws.send(big)
        with trio.fail_after(LIVENESS):
            assert await ws.receive() == "hello"
            assert await ws.receive() == big


class Listener:
    """Accepts, then records what one ``receive`` returns."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.done = trio.Event()
        self.scope: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        self.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        self.seen.append(await receive())
        self.done.set()


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_client_close_code_reaches_the_app(h2_server: H2ServerFactory,
                                                 http2: bool) -> None:
    app = Listener()
    server = await h2_server(app)
    async with open_websocket(ws_url(server, "/"), http2=http2) as ws:
        assert await ws.close(4321, "done") == 4321
    with trio.fail_after(LIVENESS):
        await app.done.wait()
    assert app.seen == [{"type": "websocket.disconnect", "code": 4321, "reason": "done"}]
    assert app.scope["scheme"] == "ws"
    assert app.scope["http_version"] == ("2" if http2 else "1.1")


# ------------------------------------------------------------- protocol errors


@pytest.mark.parametrize("http2", TRANSPORTS)
@pytest.mark.parametrize(("data", "code"), [
    pytest.param(frame(0x1, b"\xff\xfe"), 1007, id="invalid-utf8"),
    pytest.param(frame(0x0, b"x"), 1002, id="continuation-first"),
    pytest.param(frame(0x9, b"x" * 10, fin=False), 1002, id="fragmented-ping"),
    pytest.param(frame(0x2, b"", length=2**40), 1009, id="declared-1TiB"),
    pytest.param(frame(0x2, b"x" * 600, fin=False) + frame(0x0, b"x" * 600), 1009,
                 id="fragments-over-limit"),
])
async def test_protocol_errors_get_their_close_code(h2_server: H2ServerFactory, http2: bool,
                                                    data: bytes, code: int) -> None:
    server = await h2_server(echo, websocket_max_message_size=1000)
    async with open_websocket(ws_url(server, "/echo"), http2=http2) as ws:
        await ws.send(b"y" * 1000)  # at the limit: fine
        assert await ws.receive() == b"y" * 1000
        await ws.send_raw(data)
        with trio.fail_after(LIVENESS), pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
    assert closed.value.code == code


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_decompression_bomb_is_refused_1009(h2_server: H2ServerFactory,
                                                  http2: bool) -> None:
    server = await h2_server(echo)
    async with open_websocket(ws_url(server, "/echo"), http2=http2, deflate=True) as ws:
        await ws.send(b"\x00" * (64 * MiB))  # about 64 KiB on the wire
        with trio.fail_after(LIVENESS), pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
    assert closed.value.code == 1009


# ------------------------------------------------------------- the handshake


@pytest.mark.parametrize(("fields", "status"), [
    (b"Sec-WebSocket-Version: 13\r\n", 400),
    (b"Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n", 400),
    (b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n", 426),
    (b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", 426),
])
async def test_http1_bad_handshake_is_refused_never_101(server: H2TestServer, fields: bytes,
                                                        status: int) -> None:
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\n" + fields + b"\r\n")
    raw = await client.eof()
    assert raw.startswith(b"HTTP/1.1 %d " % status), raw
    assert b" 101 " not in raw
    if status == 426:
        assert b"sec-websocket-version: 13\r\n" in raw.lower()


async def test_http1_upgrade_without_connection_upgrade_is_plain_http(
        server: H2TestServer) -> None:
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          b"Connection: close\r\n\r\n")
    raw = await client.eof()
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"http")


def connect_headers(path: bytes = b"/echo", **extra: bytes) -> list[tuple[bytes, bytes]]:
    fields = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"),
              (b":path", path), (b":authority", b"x"), (b"sec-websocket-version", b"13")]
    return fields + [(name.replace("_", "-").encode(), value) for name, value in extra.items()]


async def test_h2_settings_advertise_extended_connect(server: H2TestServer,
                                                      h2_server: H2ServerFactory) -> None:
    client = await RawH2.connect(server.host, server.port)
    assert client.server_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1
    off = await h2_server(echo, websocket=False)
    client = await RawH2.connect(off.host, off.port)
    assert client.server_settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) == 0
    # Not advertised: :protocol is the unknown pseudo-header it then is.
    await client.send_headers(1, connect_headers())
    assert await client.expect_rst(1) == 1  # PROTOCOL_ERROR
    # And over HTTP/1.1 a WebSocket handshake is a plain request.
    raw = await RawClient.connect(off.host, off.port)
    await raw.send(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, "
                   b"close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")
    answer = await raw.eof()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"http"), answer


async def test_h2_extended_connect_edge_cases(server: H2TestServer) -> None:
    # Sent before our SETTINGS was read by the client: it was sent, so it holds.
    client = await RawH2.connect(server.host, server.port, wait_for_settings=False)
    await client.send_headers(1, connect_headers())
    response = await client.next_frame(lambda f: f.stream_id == 1)
    assert dict(getattr(response, "headers", []))[b":status"] == b"200"
    client = await RawH2.connect(server.host, server.port)
    # Plain CONNECT (no :protocol) stays a plain request for the app's http
    # scope, as before; :protocol on GET is malformed.
    await client.send_headers(1, [(b":method", b"CONNECT"), (b":authority", b"x:1")])
    assert (await client.read_response(1)).body == b"http"
    await client.send_headers(3, [(b":method", b"GET"), (b":protocol", b"websocket"),
                                  (b":scheme", b"http"), (b":path", b"/"),
                                  (b":authority", b"x")], end_stream=True)
    assert await client.expect_rst(3) == 1
    # END_STREAM on the CONNECT: no tunnel can begin.
    await client.send_headers(5, connect_headers(), end_stream=True)
    assert (await client.read_response(5)).status == 400
    # Another protocol; a wrong version.
    await client.send_headers(7, [*connect_headers()[:1], (b":protocol", b"chat"),
                                  *connect_headers()[2:]])
    assert (await client.read_response(7)).status == 501
    await client.send_headers(9, [*connect_headers()[:-1], (b"sec-websocket-version", b"8")])
    response = await client.read_response(9)
    assert response.status == 426
    assert (b"sec-websocket-version", b"13") in response.headers
    # Still serving on the same connection.
    await client.send_headers(11, request(authority="x"), end_stream=True)
    assert (await client.read_response(11)).body == b"http"


# ------------------------------------------------------------ backpressure


async def h1_connection(nursery: trio.Nursery, app: Any, config: Config,
                        ) -> trio.testing.LockstepStream:
    """A real Connection over an unbuffered in-memory stream: every byte the
    client sends is a byte the server took, so the counts are exact."""
    client, server = trio.testing.lockstep_stream_pair()
    handler = asgi_handler(app, config, scheme="http", server=None, client=None, state=None)
    conn = Connection(server, H1Core(config, clock=trio.current_time), handler, peer="test")
    nursery.start_soon(conn.run)
    return client


class Holder:
    """Accepts, then calls ``receive`` only once released; sets ``enough``
    once ``want`` messages have arrived."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.enough = trio.Event()
        self.want = 0
        self.received: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await self.release.wait()
        while (message := await receive())["type"] == "websocket.receive":
            self.received.append(message)
            if len(self.received) >= self.want:
                self.enough.set()


async def send_until_stuck(ws: Any, message: bytes) -> int:
    """Bytes of messages sent until one send makes no progress for a second."""
    sent = 0
    while True:
        with trio.move_on_after(1) as scope:
            await ws.send(message)
        if scope.cancelled_caught:
            return sent
        sent += len(message)


async def test_http1_app_that_does_not_receive_stops_the_client_by_tcp(
        nursery: trio.Nursery) -> None:
    app = Holder()
    window = 64 * KiB
    config = Config(initial_window_size=window)
    stream = await h1_connection(nursery, app, config)
    message = b"m" * (16 * KiB)
    async with open_websocket("ws://test/", stream=stream) as ws:
        sent = await send_until_stuck(ws, message)
        # One message held for receive, the core's read, the tunnel's brake.
        assert sent <= len(message) + READ_SIZE + window + READ_SIZE, sent
        app.want = sent // len(message)  # then all of them arrive
        app.release.set()
        with trio.fail_after(LIVENESS):
            await app.enough.wait()
        await ws.abort()  # (its last send was cut short)


async def test_http2_app_that_does_not_receive_gets_no_window_update(
        h2_server: H2ServerFactory) -> None:
    app = Holder()
    window = 64 * KiB
    server = await h2_server(app, initial_window_size=window)
    message = b"m" * (16 * KiB)
    async with open_websocket(ws_url(server, "/"), http2=True) as ws:
        sent = await send_until_stuck(ws, message)
        # The stream window, plus the credit the pump returned for the one
        # message it holds for receive (and the read it was part of).
        assert window - len(message) <= sent <= 2 * window + len(message), sent
        app.want = sent // len(message)  # then all of them arrive
        app.release.set()
        with trio.fail_after(LIVENESS):
            await app.enough.wait()
        await ws.abort()  # (its last send was cut short)


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_send_to_a_client_that_reads_nothing_blocks(h2_server: H2ServerFactory,
                                                           http2: bool,
                                                           nursery: trio.Nursery) -> None:
    passed = 0
    message = b"s" * (64 * KiB)

    async def sender(scope: Any, receive: Any, send: Any) -> None:
        nonlocal passed
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            await send({"type": "websocket.send", "bytes": message})
            passed += 1

    if http2:
        server = await h2_server(sender)
        url, stream = ws_url(server, "/"), None
    else:
        url, stream = "ws://test/", await h1_connection(nursery, sender, Config())
    async with open_websocket(url, http2=http2, stream=stream) as ws:
        await trio.sleep(1)
        # HTTP/2: the client's 64 KiB stream window; HTTP/1.1 in lockstep:
        # one message in the write, one offered.
        assert passed <= 2, passed
        for _ in range(5):
            assert await ws.receive() == message
        await trio.sleep(0.2)
        assert passed <= 5 + 2, passed


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_vanished_client_is_a_disconnect(h2_server: H2ServerFactory, http2: bool) -> None:
    app = Listener()
    server = await h2_server(app)
    async with open_websocket(ws_url(server, "/"), http2=http2) as ws:
        await ws.abort()
        with trio.fail_after(LIVENESS):
            await app.done.wait()
    assert app.seen == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


async def test_pings_never_read_are_bounded(nursery: trio.Nursery) -> None:
    """A client that sends PINGs and reads nothing: one PONG waits at most,
    then the pump stops and the tunnel's brake stops the client."""
    window = 64 * KiB
    stream = await h1_connection(nursery, echo, Config(initial_window_size=window))
    async with open_websocket("ws://test/echo", stream=stream) as ws:
        ping = frame(0x9, b"p" * 125)
        sent = 0
        with trio.move_on_after(1):
            while True:
                await ws.send_raw(ping * 64)
                sent += len(ping) * 64
        assert sent <= 2 * READ_SIZE + window + len(ping) * 64, sent
        await ws.abort()


async def test_keepalive_closes_1011_without_pong(h2_server: H2ServerFactory,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "trio_h2")
    server = await h2_server(echo, websocket_ping_interval=0.2, websocket_ping_timeout=0.5)
    async with open_websocket(ws_url(server, "/echo")) as ws:
        client = WsConnection(ConnectionType.CLIENT)
        events: list[Any] = []
        with trio.fail_after(LIVENESS):
            while (data := await ws._stream.receive_some(65536)):
                client.receive_data(data)
                events += list(client.events())  # PINGs seen, never answered
    assert any(isinstance(e, Ping) for e in events)
    close = [e for e in events if isinstance(e, CloseConnection)]
    assert close and close[0].code == 1011
    assert "no PONG within 0.5s" in caplog.text


async def test_keepalive_pings_are_answered_and_keep_it_open(
        h2_server: H2ServerFactory) -> None:
    server = await h2_server(echo, websocket_ping_interval=0.2, websocket_ping_timeout=0.5)
    async with open_websocket(ws_url(server, "/echo"), http2=True) as ws:
        for _ in range(10):
            await ws.send("tick")
            assert await ws.receive() == "tick"
            await trio.sleep(0.15)
        assert ws.pings >= 3


# ---------------------------------------------------------- real clients


def run_websockets_client(url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # (max_size: random data grows a little when our side deflates it, and
    # the library counts the deflated frame against its limit.)
    with websockets.sync.client.connect(url + "/echo", subprotocols=["chat"],
                                        max_size=2 * MiB) as ws:
        results["subprotocol"] = ws.subprotocol
        ws.send("hello")
        results["text"] = ws.recv()
        big = os.urandom(MiB)
        ws.send(big)
        results["big"] = ws.recv() == big
    with websockets.sync.client.connect(url + "/close/4002") as ws:
        try:
            ws.recv()
        except websockets.exceptions.ConnectionClosed as exc:
            results["close"] = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else None
    try:
        with websockets.sync.client.connect(url + "/deny"):
            pass
    except websockets.exceptions.InvalidStatus as exc:
        results["deny"] = exc.response.status_code
    with websockets.sync.client.connect(url + "/echo", max_size=None) as ws:
        ws.send(b"x" * (MiB + 1))
        try:
            ws.recv()
        except websockets.exceptions.ConnectionClosed as exc:
            results["too_big"] = exc.rcvd.code if exc.rcvd else None
    return results


async def test_websockets_library_over_http1(server: H2TestServer) -> None:
    logging.getLogger("websockets").setLevel(logging.WARNING)
    results = await trio.to_thread.run_sync(run_websockets_client,
                                            f"ws://{server.host}:{server.port}")
    assert results == {"subprotocol": "chat", "text": "hello", "big": True,
                       "close": (4002, "bye"), "deny": 401, "too_big": 1009}
