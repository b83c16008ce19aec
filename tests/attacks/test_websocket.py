"""WebSocket attacks, over HTTP/1.1 and HTTP/2, in the attack harness
(:mod:`tests.support.attack_harness`): bystanders are served throughout, memory
stays bounded, and each attack ends (or is held by backpressure on) its own
connection only."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import trio

from tests.support.attack_harness import FLOOD_LIMIT, LIVENESS_LIMIT, App, watched
from tests.support.wsapps import TRANSPORTS, echo, frame
from trio_h2.testing import H2ServerFactory, H2TestServer, WebSocketClosed, open_websocket

KiB = 1024
MiB = 1024 * KiB


class WsApp:
    """The harness's :class:`App` for HTTP (the bystanders), ``wsapps.echo``
    for WebSockets, and ``/push``: sends 64 KiB messages for ever, counting."""

    def __init__(self) -> None:
        self.http = App()
        self.pushed = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["path"] == "/push":
            await receive()
            await send({"type": "websocket.accept"})
            while True:
                await send({"type": "websocket.send", "bytes": b"p" * (64 * KiB)})
                self.pushed += 1
        else:
            await echo(scope, receive, send)


async def serve(h2_server: H2ServerFactory) -> tuple[H2TestServer, WsApp]:
    app = WsApp()
    # (as attack_harness.start: handlers left waiting must not hold up the teardown)
    return await h2_server(app, lifespan="off", shutdown_timeout=0.5), app


def url(server: H2TestServer, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


async def flood(ws: Any, data: bytes, count: int) -> tuple[int, bool]:
    """Send ``data`` up to ``count`` times without reading, for at most
    ``FLOOD_LIMIT`` seconds. Returns how many went, and whether the server's
    backpressure held the client (a send blocked for a second). Either limit
    may cut a send, and a frame with it: the WebSocket is then fit only to be
    aborted (:func:`flood_whole` keeps it usable)."""
    sent = 0
    with trio.move_on_after(FLOOD_LIMIT):
        while sent < count:
            with trio.move_on_after(1) as held:
                await ws.send_raw(data)
            if held.cancelled_caught:
                return sent, True
            sent += 1
    return sent, False


async def flood_whole(ws: Any, data: bytes, count: int) -> int:
    """Send ``data`` (whole frames) up to ``count`` times without reading,
    until ``FLOOD_LIMIT`` has passed; returns how many went. No send is cut,
    so no frame is, and the WebSocket goes on (a cut frame would take what
    comes next as its payload): the time is looked at between sends, and
    each must be taken within ``LIVENESS_LIMIT``, as a server that reads
    takes it, however loaded."""
    deadline = trio.current_time() + FLOOD_LIMIT
    sent = 0
    while sent < count and trio.current_time() < deadline:
        with trio.move_on_after(LIVENESS_LIMIT) as held:
            await ws.send_raw(data)
        assert not held.cancelled_caught, f"the server stopped reading after {sent} sends"
        sent += 1
    return sent


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_frame_flood_is_held_by_backpressure(h2_server: H2ServerFactory,
                                                   http2: bool) -> None:
    """10 000 000 one-byte messages (70 MB), echoed by the app, none read
    back: the echoes block, the pump holds one message, and the client is
    stopped by TCP or the stream window long before the end. (70 MB: what
    the server legitimately consumes before its echoes fill its send buffer
    (about 9 MB of input for 4 MB of echoes), plus what the kernels' socket
    buffers may take, is far less; 1.4 MB was not, on some runs.)"""
    server, app = await serve(h2_server)
    async with watched(server, app.http), \
            open_websocket(url(server, "/echo"), http2=http2) as ws:
        burst = frame(0x2, b"x") * 1000
        sent, held = await flood(ws, burst, 10_000)
        assert held, f"the server never stopped a client that reads nothing ({sent} sent)"
        await ws.abort()


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_pings_never_read(h2_server: H2ServerFactory, http2: bool) -> None:
    """500 000 PINGs with 125-byte payloads (65 MB, or what goes within
    FLOOD_LIMIT on a loaded machine), no PONG read while they go: at most one
    PONG waits per read the server makes (RFC 6455 section 5.5.3 lets it
    answer only the latest), so the PONGs are a small fraction of the PINGs
    and of our output (at most 1/50: 1.3 MB, which loopback's buffers hold,
    so the server goes on reading), and the WebSocket answers after them.
    (tests/apps/test_websocket.py: a client that never reads them is held.)"""
    server, app = await serve(h2_server)
    async with watched(server, app.http), \
            open_websocket(url(server, "/echo"), http2=http2) as ws:
        burst = frame(0x9, b"p" * 125) * 500  # 65 KB
        sent = 500 * await flood_whole(ws, burst, 1000)
        await ws.send("after")
        with trio.fail_after(LIVENESS_LIMIT):
            assert await ws.receive() == "after"
        assert sent > 0 and ws.pongs <= sent // 50, (sent, ws.pongs)
        await ws.abort()


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_slow_reader_of_our_messages(h2_server: H2ServerFactory, http2: bool) -> None:
    """An app that pushes 64 KiB messages to a client that reads nothing:
    its sends block; what it got through is what TCP and the window hold."""
    server, app = await serve(h2_server)
    async with watched(server, app.http), \
            open_websocket(url(server, "/push"), http2=http2) as ws:
        await trio.sleep(2)
        held = app.pushed
        await trio.sleep(1)
        assert app.pushed == held, "sends went on to a client that reads nothing"
        # Kernel buffers on loopback take a few MB at most.
        assert app.pushed * 64 * KiB < 16 * MiB, app.pushed
        assert await ws.receive() == b"p" * (64 * KiB)  # and it still works
        await ws.abort()


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_huge_declared_length_is_refused_before_buffering(h2_server: H2ServerFactory,
                                                                http2: bool) -> None:
    server, app = await serve(h2_server)
    async with watched(server, app.http), \
            open_websocket(url(server, "/echo"), http2=http2) as ws:
        await ws.send_raw(frame(0x2, b"", length=2**62))  # the header alone
        with trio.fail_after(LIVENESS_LIMIT), pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert closed.value.code == 1009


def bomb(size: int) -> bytes:
    """A permessage-deflate frame that inflates to ``size`` zero bytes,
    built without holding them."""
    deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    payload = b"".join(deflate.compress(zeros) for _ in range(size // MiB))
    payload += deflate.flush(zlib.Z_SYNC_FLUSH)[:-4]
    return frame(0x2, payload, rsv1=True)


@pytest.mark.parametrize("http2", TRANSPORTS)
async def test_decompression_bomb(h2_server: H2ServerFactory, http2: bool) -> None:
    """256 MiB of zeros in a 256 KiB deflated message: refused with 1009
    once it inflates past websocket_max_message_size (1 MiB), having
    inflated at most about that much more (the harness bounds memory)."""
    data = await trio.to_thread.run_sync(bomb, 256 * MiB)
    server, app = await serve(h2_server)
    async with watched(server, app.http), \
            open_websocket(url(server, "/echo"), http2=http2, deflate=True) as ws:
        await ws.send("warm-up")
        assert await ws.receive() == "warm-up"
        with trio.move_on_after(FLOOD_LIMIT):
            await ws.send_raw(data)
        with trio.fail_after(LIVENESS_LIMIT), pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert closed.value.code == 1009
