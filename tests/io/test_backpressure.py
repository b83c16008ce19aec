"""The backpressure guarantees of docs/backpressure.rst, as bounds in bytes and tasks."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import trio
import trio.testing
from h2.settings import SettingCodes

from tests.support.apps import http_only, read_body
from tests.support.requests import GET, request
from tests.support.sansio import Pair
from tests.support.tasks import all_trio_h2_tasks
from tests.support.windows import open_window_and_read
from trio_h2._io.connection import SEND_BATCH
from trio_h2.testing import H2ServerFactory, open_h2_client

KiB = 1024


async def unread_upload_app(scope: Any, receive: Any, send: Any) -> None:
    """``/ignore`` never reads its body; ``/echo`` reads it; others answer at once."""
    if scope["path"] == "/ignore":
        await trio.sleep_forever()
    body = await read_body(receive) if scope["path"] == "/echo" else b""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body or b"ok"})


@pytest.mark.parametrize("window", [64 * KiB, 256 * KiB])
async def test_an_unread_upload_is_bounded_by_the_stream_window(
    h2_server: H2ServerFactory, window: int
) -> None:
    """Guarantee 2: a client can send at most the advertised stream window to a
    handler that never reads, and the same connection keeps working."""
    server = await h2_server(http_only(unread_upload_app), initial_window_size=window)
    chunk = 16 * KiB
    yielded = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal yielded
        while True:
            yielded += chunk
            yield b"u" * chunk

    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(client.request, "POST", "/ignore",
                                                     body=endless()))
                await trio.testing.wait_all_tasks_blocked(0.05)
                # The client holds at most one chunk it could not send yet.
                assert window <= yielded <= window + chunk
                echoed = await client.request("POST", "/echo", body=b"e" * 100_000)
                assert echoed.body == b"e" * 100_000
                assert (await client.get("/")).body == b"ok"
                assert yielded <= window + chunk  # still nothing more went through
                nursery.cancel_scope.cancel()


async def test_request_body_per_connection_is_at_most_streams_times_window(
    h2_server: H2ServerFactory,
) -> None:
    """Guarantee 3: with every stream's app ignoring its body, the connection
    accepts max_concurrent_streams x initial_window_size bytes and no more."""
    streams, window, chunk = 4, 32 * KiB, 8 * KiB
    server = await h2_server(http_only(unread_upload_app), initial_window_size=window,
                                max_concurrent_streams=streams)
    yielded = [0] * streams

    def endless(i: int) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            while True:
                yielded[i] += chunk
                yield b"m" * chunk
        return gen()

    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for i in range(streams):
                    nursery.start_soon(functools.partial(client.request, "POST", "/ignore",
                                                         body=endless(i)))
                await trio.testing.wait_all_tasks_blocked(0.05)
                accepted = sum(yielded) - streams * chunk  # each holds one unsent chunk
                assert streams * window - streams * chunk <= accepted <= streams * window
                nursery.cancel_scope.cancel()


async def test_closed_window_holds_a_large_download_at_one_chunk(
    h2_server: H2ServerFactory,
) -> None:
    """Guarantee 1: an app streaming 1 GiB to a client whose 64 KiB window
    stays closed gets at most one chunk past ``send`` beyond the window."""
    chunk = 256 * KiB
    passed = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal passed
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4096):  # 1 GiB
            await send({"type": "http.response.body", "body": b"g" * chunk, "more_body": True})
            passed += chunk
        await send({"type": "http.response.body", "body": b""})

    server = await h2_server(http_only(app))
    window = 65535  # the RFC default for both stream and connection windows
    async with open_h2_client(server.host, server.port, initial_window_size=window,
                              auto_window=False) as client:
        with trio.fail_after(10):
            async with client.stream("GET", "/") as response:
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert passed <= window + chunk < 1024 * KiB
                # Opening the window resumes exactly where it stopped.
                await open_window_and_read(client, response, more=3 * chunk,
                                           through=window + 3 * chunk)
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert 3 * chunk <= passed <= window + 4 * chunk


async def test_a_vanished_client_disconnects_handlers_and_leaves_no_task(
    h2_server: H2ServerFactory,
) -> None:
    """Guarantee 4: the client's socket closes mid-request; the handler's
    ``receive`` returns http.disconnect, its ``send`` raises, and every task
    of that connection is gone."""
    seen: list[str] = []
    entered = trio.Event()
    done = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/receive":
            entered.set()
            seen.append((await receive())["type"])
            seen.append((await receive())["type"])
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            try:
                while True:
                    await send({"type": "http.response.body", "body": b"s" * 65536,
                                "more_body": True})
            except OSError as exc:
                seen.append(type(exc).__name__)
        done.set()

    server = await h2_server(http_only(app))
    await trio.testing.wait_all_tasks_blocked()
    baseline = all_trio_h2_tasks()
    for path in ("/receive", "/send"):
        done = trio.Event()
        raw = await trio.open_tcp_stream(server.host, server.port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        conn.initiate_connection()
        conn.send_headers(1, request("POST", path, authority="t"))
        conn.send_data(1, b"part")
        await raw.send_all(conn.data_to_send())
        with trio.fail_after(10):  # liveness, not speed: holds on a loaded machine
            if path == "/receive":
                await entered.wait()
            else:
                while not any(isinstance(e, h2.events.DataReceived)
                              for e in conn.receive_data(await raw.receive_some(65536))):
                    pass
            assert all_trio_h2_tasks() != baseline
            await raw.aclose()  # vanish: no GOAWAY, no RST_STREAM
            with trio.fail_after(10):
                await done.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert all_trio_h2_tasks() == baseline
    assert seen == ["http.request", "http.disconnect", "ClientDisconnected"]


async def test_initial_window_size_changes_apply_to_open_streams(
    h2_server: H2ServerFactory,
) -> None:
    """Guarantee 5: SETTINGS_INITIAL_WINDOW_SIZE changes adjust open streams,
    down to a negative window; data resumes only once it is positive again."""
    body = bytes(range(256)) * 1024  # 256 KiB

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = await h2_server(http_only(app))
    raw = await trio.open_tcp_stream(server.host, server.port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    conn.initiate_connection()
    conn.increment_flow_control_window(1 << 20)  # connection window is not the limit
    conn.send_headers(1, request(authority="t"), end_stream=True)
    await raw.send_all(conn.data_to_send())
    received = bytearray()

    async def read_until(predicate: Callable[[], bool]) -> None:
        while not predicate():
            data = await raw.receive_some(65536)
            assert data, "server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    received.extend(event.data)
                elif isinstance(event, h2.events.PingAckReceived):
                    pongs.append(event.ping_data)
            await raw.send_all(conn.data_to_send())

    async def round_trip(tag: bytes) -> None:
        """PING and wait for its ACK: the server frames any DATA its windows
        allow before it writes the ACK, so what arrived by then is all."""
        conn.ping(tag)
        await raw.send_all(conn.data_to_send())
        await read_until(lambda: tag in pongs)

    pongs: list[bytes] = []
    with trio.fail_after(5):
        await read_until(lambda: len(received) >= 65535)  # the default window, used up
        assert len(received) == 65535
        # Shrink the initial window by 60000: the stream's window goes to -60000.
        conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535 - 60000})
        conn.increment_flow_control_window(50000, 1)  # -10000: nothing may come
        await raw.send_all(conn.data_to_send())
        await round_trip(b"negative")
        assert len(received) == 65535
        conn.increment_flow_control_window(10000 + 4096, 1)  # +4096 now
        await raw.send_all(conn.data_to_send())
        await round_trip(b"positive")
        assert len(received) == 65535 + 4096
        conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        await raw.send_all(conn.data_to_send())
        await read_until(lambda: len(received) == len(body))
    assert bytes(received) == body
    await raw.aclose()


def test_one_write_holds_at_most_a_batch_of_framed_data() -> None:
    """docs/backpressure.rst: per connection, at most SEND_BATCH of framed
    DATA (plus frame headers) waits for one send_all, however much the
    handlers offered and however wide the client's windows are."""
    pair = Pair(client_window=2**31 - 1)
    pair.client.increment_flow_control_window(2**31 - 1 - 65535)
    pair.pump()
    streams = [pair.request(GET) for _ in range(4)]
    for stream in streams:
        pair.server.send_headers(stream, [(b":status", b"200")], end_stream=False)
    pair.server.data_to_send()  # the header blocks
    for stream in streams:
        pair.server.offer(stream, b"x" * (1024 * KiB), end_stream=True)
    writes = []
    while any(stream.in_flight for stream in streams):
        pair.server.taken(pair.server.pull(SEND_BATCH))
        writes.append(len(pair.server.data_to_send()))
    # Frame headers count against the batch; the last frame's may overshoot it.
    assert max(writes) <= SEND_BATCH + 9
    assert sum(writes) >= 4 * 1024 * KiB  # and everything went out
    assert len(writes) >= 4 * 1024 * KiB // SEND_BATCH
