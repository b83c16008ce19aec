"""One client, many connections: every per-connection bound multiplied by
the number of connections one client may open (nothing limits it). Each
connection here stays within its own limits; together they must still stay
within the process's (50 MiB of memory growth, bystanders served).

The harness, and the promises each test checks (bystanders served, memory
bounded, the attacker stopped), are in :mod:`tests.attack_harness`.
"""

from __future__ import annotations

import pytest
import trio

from trio_h2.testing import H2ServerFactory

from .attack_client import CONTINUATION, HEADERS, data, headers, request_block
from .attack_harness import FLOOD_LIMIT, App, start, watched
from .h1raw import RawClient
from .rawh2 import raw_frame


@pytest.fixture
def app() -> App:
    return App()


async def test_request_bodies_held_across_connections(h2_server: H2ServerFactory,
                                                      app: App) -> None:
    """Each connection may have max_concurrent_streams x initial_window_size
    (100 x 256 KiB = 25 MiB) of request body buffered for apps that have not
    read it yet (an app that checks something before reading the body, here
    ``/slow``). Three connections, each within its windows, held 90 MiB.
    max_header_memory bounds request headers for the whole server; nothing
    bounds request bodies so."""
    server = await start(h2_server, app)
    chunk = b"x" * 16384
    async with watched(server, app) as watch:
        for _ in range(3):
            attacker = await watch.connect()
            frames = []
            for stream_id in range(1, 201, 2):
                frames.append(headers(stream_id, request_block("POST", "/slow"),
                                      end_stream=False))
                frames += [data(stream_id, chunk)] * 16  # 256 KiB: the whole window
            await attacker.flood(frames, seconds=FLOOD_LIMIT)
        with trio.move_on_after(FLOOD_LIMIT):  # until every handler has started
            while app.running < 300:
                await app.began.wait()
        app.release.set()


@pytest.mark.parametrize(("protocol", "connections"), [("h2", 500), ("http/1.1", 600)])
async def test_unfinished_heads_across_hundreds_of_connections(
        h2_server: H2ServerFactory, app: App, protocol: str, connections: int) -> None:
    """A request head may take header_timeout (20 s) to arrive, and may be
    up to max_header_list_size (64 KiB) long: h2 keeps the HEADERS and
    CONTINUATION frames of an unfinished block, h11 the bytes of an
    unfinished head, for each connection. About 170 KiB (HTTP/2) and 140
    KiB (HTTP/1.1) of the process's memory per connection: a few hundred
    connections from one client, each within every limit, went past 50 MiB.
    max_header_memory charges a request only once its head is complete."""
    server = await start(h2_server, app)
    fragment = b"\0" * 15_000
    clients: list[RawClient] = []
    async with watched(server, app) as watch:
        for _ in range(connections):
            if protocol == "h2":
                attacker = await watch.connect()
                await attacker.send(raw_frame(HEADERS, 0, 1, b"") + b"".join(
                    raw_frame(CONTINUATION, 0, 1, fragment) for _ in range(4)))
            else:
                client = await RawClient.connect(server.host, server.port)
                clients.append(client)
                await client.send(b"GET / HTTP/1.1\r\nhost: x\r\nx-a: " + fragment * 4)
        await trio.sleep(1)  # for the server to read what it was sent
    for client in clients:
        await client.aclose()
