"""One client, many connections: every per-connection bound multiplied by
the number of connections one client may open (nothing limits it). Each
connection here stays within its own limits; together they must still stay
within the process's (50 MiB of memory growth, bystanders served).

The harness, and the promises each test checks (bystanders served, memory
bounded, the attacker stopped), are in :mod:`tests.support.attack_harness`.
"""

from __future__ import annotations

import logging

import pytest
import trio
from h2.errors import ErrorCodes

from tests.support.attack_client import Attacker
from tests.support.attack_harness import (
    CALM,
    ENDING_LIMIT,
    FLOOD_LIMIT,
    LIVENESS_LIMIT,
    App,
    assert_stopped,
    handlers_finish,
    start,
    still_serves,
    watched,
)
from tests.support.frames import (
    CONTINUATION,
    END_HEADERS,
    HEADERS,
    SETTINGS,
    data,
    headers,
    raw_frame,
)
from tests.support.h1raw import RawClient
from tests.support.requests import request_block
from trio_h2.testing import H2ServerFactory, open_h2_client


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


def warnings_naming(caplog: pytest.LogCaptureFixture, field: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and field in r.getMessage()]


async def test_max_body_memory_refuses_streams_with_a_body_and_spares_light_connections(
        h2_server: H2ServerFactory, app: App, caplog: pytest.LogCaptureFixture) -> None:
    """With a server-wide body memory of 1 byte, a connection may still hold
    one stream window (one upload at a time): its first POST runs, the next
    ones are refused with REFUSED_STREAM (a ``content-length`` of 10 too)
    and one WARNING line, while a GET on the same connection (no body) is
    answered and another connection's upload is echoed. Once the first
    handler returns, the connection uploads again."""
    server = await start(h2_server, app, max_body_memory=1)
    caplog.set_level(logging.DEBUG, logger="trio_h2")
    attacker = await Attacker.connect(server.host, server.port)
    try:
        small = request_block("POST", "/slow", ("content-length", "10"))
        await attacker.send(
            headers(1, request_block("POST", "/slow"), end_stream=False) + data(1, b"x" * 1000)
            + headers(3, request_block("POST", "/slow"), end_stream=False)
            + headers(5, small, end_stream=False) + headers(7, request_block("GET", "/")))
        ending = attacker.ending
        with trio.fail_after(ENDING_LIMIT):
            await attacker.read_until(
                lambda e: e.closed or ({3, 5} <= set(e.resets) and 7 in e.ended_streams))
        refused = ErrorCodes.REFUSED_STREAM
        assert ending.resets == {3: refused, 5: refused}, ending.describe()
        assert ending.statuses[7] == 200, ending.describe()
        async with open_h2_client(server.host, server.port) as bystander:
            with trio.fail_after(LIVENESS_LIMIT):
                upload = await bystander.request("POST", "/echo", body=b"y" * 100_000)
        assert (upload.status, upload.body) == (200, b"y" * 100_000)
        app.release.set()
        assert await handlers_finish(app)
        await attacker.send(headers(9, request_block("POST", "/echo"), end_stream=False)
                            + data(9, b"z" * 1000, end_stream=True))
        with trio.fail_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or 9 in e.ended_streams)
        assert ending.statuses.get(9) == 200 and ending.data_bytes >= 1000, ending.describe()
    finally:
        await attacker.aclose()
    assert len(warnings_naming(caplog, "max_body_memory")) == 1


@pytest.mark.parametrize("protocol", ["h2", "http/1.1"])
async def test_a_head_arriving_past_the_servers_share_closes_its_connection(
        h2_server: H2ServerFactory, app: App, protocol: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """With max_header_memory of 4 KiB, heads still arriving may hold 1 KiB
    of the server, and a connection always 8 KiB: one with 20 KB of a head
    arrived is closed (GOAWAY ENHANCE_YOUR_CALM; ``431`` over HTTP/1.1)
    with a WARNING line; one with 4 KB arrived is not, and is answered
    once its head is complete."""
    server = await start(h2_server, app, max_header_memory=4096)
    caplog.set_level(logging.DEBUG, logger="trio_h2")
    padding = ("x-pad", "p" * 4000)
    if protocol == "h2":
        heavy = await Attacker.connect(server.host, server.port)
        light = await Attacker.connect(server.host, server.port)
        try:
            await heavy.send(raw_frame(HEADERS, 0, 1, b"") + 2 * raw_frame(
                CONTINUATION, 0, 1, b"\0" * 10_000))
            with trio.fail_after(ENDING_LIMIT):
                await heavy.read_until(lambda e: e.closed)
            assert_stopped(heavy.ending, CALM, what="a head of 20 KB arriving")
            assert heavy.ending.goaway == CALM, heavy.ending.describe()
            block = request_block("GET", "/", padding)
            await light.send(raw_frame(HEADERS, 0, 1, block[:3000]))
            await trio.sleep(0.5)  # for the server to read it
            await light.send(raw_frame(CONTINUATION, END_HEADERS, 1, block[3000:]))
            assert await still_serves(light, 3), light.ending.describe()
            assert light.ending.statuses.get(1) == 200, light.ending.describe()
        finally:
            await heavy.aclose()
            await light.aclose()
    else:
        heavy_client = await RawClient.connect(server.host, server.port)
        light_client = await RawClient.connect(server.host, server.port)
        try:
            await heavy_client.send(b"GET / HTTP/1.1\r\nhost: x\r\nx-a: " + b"a" * 20_000)
            with trio.fail_after(ENDING_LIMIT):
                assert (await heavy_client.response()).status == 431
                await heavy_client.eof()
            head = b"GET / HTTP/1.1\r\nhost: x\r\nx-pad: " + b"p" * 4000
            await light_client.send(head[:3000])
            await trio.sleep(0.5)  # for the server to read it
            await light_client.send(head[3000:] + b"\r\n\r\n")
            with trio.fail_after(ENDING_LIMIT):
                assert (await light_client.response()).status == 200
        finally:
            await heavy_client.aclose()
            await light_client.aclose()
    assert len(warnings_naming(caplog, "heads arriving")) == 1


async def test_max_connections_closes_connections_past_it_at_accept(
        h2_server: H2ServerFactory, app: App, caplog: pytest.LogCaptureFixture) -> None:
    """With max_connections 2, a third connection is closed before the
    server says anything (no SETTINGS), with one WARNING line; the two open
    ones are still served, and once one closes a new one is served."""
    server = await start(h2_server, app, max_connections=2)
    caplog.set_level(logging.DEBUG, logger="trio_h2")
    first = await Attacker.connect(server.host, server.port)
    second = await Attacker.connect(server.host, server.port)
    turned_away = []
    try:
        for _ in range(3):
            third = await Attacker.connect(server.host, server.port, handshake=False)
            turned_away.append(third)
            await third.send(raw_frame(SETTINGS, 0, 0, b""))  # (no preface: never read)
            with trio.fail_after(ENDING_LIMIT):
                await third.read_until(lambda e: e.closed)
            assert not third.ending.counts, third.ending.describe()
        assert await still_serves(second, 1), second.ending.describe()
        await first.aclose()
        with trio.fail_after(LIVENESS_LIMIT):
            while True:  # until the server has seen the first one close
                try:
                    async with open_h2_client(server.host, server.port) as client:
                        assert (await client.get("/")).status == 200
                        break
                except Exception:
                    await trio.sleep(0.1)
    finally:
        for attacker in [first, second, *turned_away]:
            await attacker.aclose()
    assert len(warnings_naming(caplog, "max_connections")) == 1
