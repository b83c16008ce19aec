"""Every connection ends, whatever its client does (issue 11, containment):
a client that never reads its socket cannot keep a connection open, with its
socket, buffers and tasks, once the server has decided to end it.

Each test connects a client whose receive buffer is tiny
(:data:`~tests.support.attack_client.TINY_RCVBUF`) and which never reads, fills the
server's writes (a 4 MiB download, or a PING flood's acknowledgements), then
makes the server end the connection in one of the ways a connection ends:
a budget exceeded, a protocol error, an idle timeout, a shutdown. The
server's last write (GOAWAY, or the rest of a response) then cannot finish;
``send_timeout`` must still bound it, and the socket must be closed. Over h2c,
HTTP/2 over TLS and HTTP/1.1 (plain and TLS).

"Closed" is seen two ways: the server has no task left for the connection
(reader, sender, watchdog, handlers), and the client, once it reads at last,
finds the end of the stream. Every bound is a
liveness deadline (:data:`~tests.support.attack_harness.LIVENESS_LIMIT`), not a speed
test: without the bound the connection stays open for as long as the client
does, and the deadline is missed whatever the machine.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trustme
from h2.settings import SettingCodes

import trio_h2
from tests.support.attack_client import TINY_RCVBUF
from tests.support.attack_harness import LIVENESS_LIMIT, SEND_TIMEOUT, App
from tests.support.frames import (
    MAX_WINDOW,
    PREFACE,
    headers,
    ping,
    raw_frame,
    settings,
    window_update,
)
from tests.support.requests import H1_GET, request_block
from tests.support.tasks import tasks_left, trio_h2_tasks
from trio_h2 import Budget
from trio_h2.testing._servers import TEST_HOST, TLS_NAME

H2, H1 = "h2", "http/1.1"
TRANSPORTS = [pytest.param((H2, False), id="h2c"), pytest.param((H2, True), id="h2 TLS"),
              pytest.param((H1, False), id="http/1.1"),
              pytest.param((H1, True), id="http/1.1 TLS")]


@dataclass
class Server:
    port: int
    app: App
    scope: trio.CancelScope
    stopped: trio.Event


@asynccontextmanager
async def serving(ca: trustme.CA, tls: bool, **config: Any) -> AsyncIterator[Server]:
    """A server this test can shut down (``scope.cancel()``) while clients
    are connected; ``stopped`` is set when :func:`trio_h2.serve` has returned."""
    context = None
    if tls:
        context = trio_h2.configure_h2_context(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        ca.issue_cert(TLS_NAME, TEST_HOST).configure_cert(context)
    app, stopped = App(), trio.Event()
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        with scope:
            await trio_h2.serve(app, host=TEST_HOST, port=0, ssl_context=context,
                                config=trio_h2.Config(lifespan="off", **config),
                                task_status=task_status)
        stopped.set()

    async with trio.open_nursery() as nursery:
        (_, port), *_ = await nursery.start(run)
        yield Server(port, app, scope, stopped)
        scope.cancel()


async def connect(ca: trustme.CA, port: int, protocol: str, tls: bool) -> trio.abc.Stream:
    """A connection with a tiny receive buffer (the TCP window follows), TLS
    handshake done if ``tls``; nothing is read from it after that."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TINY_RCVBUF)
    await sock.connect((TEST_HOST, port))
    stream: trio.abc.Stream = trio.SocketStream(sock)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(context)
        context.set_alpn_protocols([protocol])
        stream = trio.SSLStream(stream, context, server_hostname=TLS_NAME)
        with trio.fail_after(LIVENESS_LIMIT):
            await stream.do_handshake()
    if protocol == H2:
        await stream.send_all(PREFACE + settings([(SettingCodes.INITIAL_WINDOW_SIZE,
                                                   MAX_WINDOW)])
                              + window_update(0, MAX_WINDOW - 65535))
    return stream


async def download(server: Server, client: trio.abc.Stream, protocol: str) -> None:
    """Ask for 4 MiB and do not read it: once the buffers between are full
    (a moment after the app starts), the server's write cannot finish."""
    if protocol == H2:
        await client.send_all(headers(1, request_block("GET", "/big")))
    else:
        # Chunked, so that the test can break the body later (a protocol error).
        await client.send_all(b"POST /big HTTP/1.1\r\nhost: x\r\n"
                              b"transfer-encoding: chunked\r\n\r\n4\r\nbody\r\n")
    with trio.fail_after(LIVENESS_LIMIT):
        await server.app.began.wait()
    await trio.sleep(0.5)  # the buffers fill (not a bound: the test holds either way)


async def budget(server: Server, client: trio.abc.Stream, protocol: str) -> None:
    """HTTP/2: PINGs past ``control_frame_budget`` (GOAWAY ENHANCE_YOUR_CALM)
    while the download's write is stuck."""
    await download(server, client, protocol)
    await client.send_all(ping() * 20)


async def protocol_error(server: Server, client: trio.abc.Stream, protocol: str) -> None:
    """A PING on a stream (HTTP/2, GOAWAY PROTOCOL_ERROR) or a broken chunk
    (HTTP/1.1) while the download's write is stuck."""
    await download(server, client, protocol)
    if protocol == H2:
        await client.send_all(raw_frame(0x6, 0, 1, b"x" * 8))
    else:
        await client.send_all(b"zz\r\n")


async def idle(server: Server, client: trio.abc.Stream, protocol: str) -> None:
    """No exchange: HTTP/2 PINGs whose acknowledgements are never read (within
    the budget), or an HTTP/1.1 request answered and never read; then
    ``idle_timeout`` (1 s) ends the connection."""
    if protocol == H2:
        await client.send_all(ping() * 5000)
    else:
        await client.send_all(H1_GET)


ENDINGS: dict[str, Callable[[Server, trio.abc.Stream, str], Awaitable[None]]] = {
    "budget": budget, "protocol error": protocol_error, "idle": idle}


# HTTP/1.1 has no frame budgets (one request at a time): no "budget" there.
CASES = [pytest.param(ending, transport.values[0], id=f"{ending}, {transport.id}")
         for ending in ENDINGS for transport in TRANSPORTS
         if not (ending == "budget" and transport.values[0][0] == H1)]


@pytest.mark.parametrize(("ending", "transport"), CASES)
async def test_a_client_that_never_reads_is_closed(
        h2_ca: trustme.CA, ending: str, transport: tuple[str, bool]) -> None:
    protocol, tls = transport
    async with serving(h2_ca, tls, send_timeout=SEND_TIMEOUT, idle_timeout=1,
                       control_frame_budget=Budget(10, 0), shutdown_timeout=0.5) as server:
        client = await connect(h2_ca, server.port, protocol, tls)
        await ENDINGS[ending](server, client, protocol)
        left = await tasks_left(LIVENESS_LIMIT)
        assert not left, f"left behind: {left[:10]}"
        with trio.fail_after(LIVENESS_LIMIT):
            await read_to_the_end(client)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("shutdown_timeout", "send_timeout"), [(1, 60), (60, SEND_TIMEOUT)],
                         ids=["shutdown_timeout first", "send_timeout first"])
async def test_shutdown_ends_with_clients_that_never_read(
        h2_ca: trustme.CA, transport: tuple[str, bool], shutdown_timeout: float,
        send_timeout: float) -> None:
    """Cancelling :func:`serve` while a client never reads its download: the
    server stops within ``shutdown_timeout`` or ``send_timeout`` (whichever
    comes first), plus what it takes to close."""
    protocol, tls = transport
    async with serving(h2_ca, tls, send_timeout=send_timeout,
                       shutdown_timeout=shutdown_timeout) as server:
        client = await connect(h2_ca, server.port, protocol, tls)
        await download(server, client, protocol)
        server.scope.cancel()
        with trio.fail_after(LIVENESS_LIMIT):
            await server.stopped.wait()
            await read_to_the_end(client)
        assert not trio_h2_tasks()


async def read_to_the_end(client: trio.abc.Stream) -> None:
    """Read at last, until the end of the stream: the server has closed it
    (cleanly, by reset, or without TLS close_notify)."""
    try:
        while await client.receive_some(1 << 16):
            pass
    except trio.BrokenResourceError:
        pass
    await client.aclose()

