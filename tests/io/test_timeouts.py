"""Timeouts and budgets, seen on the wire, on trio's autojump clock: the
waits are virtual, the sockets are real."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import pytest
import trio
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame, PingFrame

from tests.support.apps import http_only, read_body
from tests.support.frames import raw_frame
from tests.support.rawh2 import H2Client
from tests.support.requests import request
from trio_h2 import Budget
from trio_h2._core.guard import _header_block_pending
from trio_h2.testing import H2ServerFactory

GET = request(authority="t")
"""A short block (6 bytes): the slowloris test sends all of it, a byte every
2 s, within its 5 s header timeout plus one step."""


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["method"] == "POST":
        await read_body(receive)
    size = int(scope["query_string"] or b"2")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"x" * size})


async def connect(h2_server: H2ServerFactory, **config: Any) -> H2Client:
    server = await h2_server(http_only(app), **config)
    client = await H2Client.connect(server.host, server.port)
    client.timeout = 1000  # virtual seconds: the server's timers decide
    return client


async def test_preface_timeout(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    server = await h2_server(http_only(app), preface_timeout=4)
    silent = await trio.open_tcp_stream(server.host, server.port)
    start = trio.current_time()
    while await silent.receive_some(1000):  # our SETTINGS, then EOF
        pass
    assert 4 <= trio.current_time() - start < 5


async def test_idle_timeout_closes_gracefully(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    client = await connect(h2_server, idle_timeout=30)
    await client.send_headers(1, GET, end_stream=True)
    assert (await client.read_response(1)).status == 200
    done = trio.current_time()
    first = await client.next_frame(lambda f: isinstance(f, GoAwayFrame))
    assert isinstance(first, GoAwayFrame) and first.error_code == ErrorCodes.NO_ERROR
    assert 30 <= trio.current_time() - done < 31
    assert first.last_stream_id == 2**31 - 1  # graceful: two GOAWAYs around a PING
    second = await client.next_frame(lambda f: isinstance(f, GoAwayFrame))
    assert isinstance(second, GoAwayFrame) and second.last_stream_id == 1
    assert await client.closed()


async def test_pings_do_not_keep_a_connection_alive(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    client = await connect(h2_server, idle_timeout=30)
    start = trio.current_time()
    with trio.move_on_after(60):
        while True:
            await client.send_ping(b"stayhere")
            frame = await client.next_frame(lambda f: isinstance(f, PingFrame | GoAwayFrame))
            if isinstance(frame, GoAwayFrame):
                break
            await trio.sleep(5)
    assert 30 <= trio.current_time() - start < 36


async def test_header_timeout_against_slowloris(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    client = await connect(h2_server, header_timeout=5, idle_timeout=1000)
    # HEADERS without END_HEADERS, then one CONTINUATION fragment at a time.
    block = client.encode(GET)
    await client.send_raw(raw_frame(0x1, 0x1, 1, block[:3]))
    start = trio.current_time()
    for i in range(3, len(block)):
        await trio.sleep(2)
        if await _closed_or_goaway(client):
            break
        await client.send_raw(raw_frame(0x9, 0, 1, block[i:i + 1]))
    code, _ = await client.expect_goaway()
    assert code == ErrorCodes.ENHANCE_YOUR_CALM
    assert 5 <= trio.current_time() - start < 7


async def _closed_or_goaway(client: H2Client) -> bool:
    """Whether the server has sent GOAWAY or closed. Waits half a second
    for it (virtual time, under ``autojump_clock``): ``move_on_after(0)``
    would be cancelled before reading anything at all."""
    with trio.move_on_after(0.5):
        frame = await client.recv_frame()
        if frame is None:
            return True
        client.kept.appendleft(frame)  # for expect_goaway
        return isinstance(frame, GoAwayFrame)
    return False


async def test_a_stream_stalled_at_a_zero_window_is_reset(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    server = await h2_server(http_only(app), send_timeout=20)
    client = await H2Client.connect(server.host, server.port, settings={0x4: 0})
    client.timeout = 1000
    start = trio.current_time()
    await client.send_headers(1, request("GET", "/?100000"), end_stream=True)
    assert await client.expect_rst(1) == ErrorCodes.CANCEL
    assert 20 <= trio.current_time() - start < 21
    # The connection goes on.
    await client.send_settings({0x4: 65535})
    await client.send_headers(3, GET, end_stream=True)
    assert (await client.read_response(3)).status == 200


async def test_a_stream_whose_window_runs_out_mid_response_is_reset_on_time(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    # The window closes inside the sender's framing, not when the app offers
    # its chunk; the watchdog's periodic look (every send_timeout / 2) finds
    # the stall before its deadline.
    server = await h2_server(http_only(app), send_timeout=20)
    client = await H2Client.connect(server.host, server.port)  # a 65,535-byte window
    client.timeout = 1000
    start = trio.current_time()
    await client.send_headers(1, request("GET", "/?100000"), end_stream=True)
    assert await client.expect_rst(1) == ErrorCodes.CANCEL
    assert 20 <= trio.current_time() - start < 21


async def test_a_client_that_does_not_read_is_cut_off(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    server = await h2_server(http_only(app), send_timeout=20)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    conn.initiate_connection()
    conn.update_settings({0x4: 2**31 - 1})
    conn.increment_flow_control_window(2**31 - 1 - 65535)
    conn.send_headers(1, request("GET", "/?50000000"), end_stream=True)
    raw = await trio.open_tcp_stream(server.host, server.port)
    await raw.send_all(conn.data_to_send())
    start = trio.current_time()
    await trio.sleep(30)  # never read: the server's writes stall
    received = 0
    while data := await raw.receive_some(1 << 20):
        received += len(data)
    assert received < 50_000_000  # the server gave up on the write...
    assert trio.current_time() - start < 31  # ...once send_timeout passed


@pytest.mark.parametrize(("kind", "config"), [
    ("resets", {"reset_budget": Budget(5, 0)}),
    ("pings", {"control_frame_budget": Budget(5, 0)}),
    ("empty DATA", {"empty_frame_budget": Budget(5, 0)}),
    ("1-byte DATA", {"data_frame_budget": Budget(5 * 255, 0)}),
    ("PRIORITY", {"control_frame_budget": Budget(5, 0)}),
])
async def test_budgets_end_the_connection(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory,
    caplog: pytest.LogCaptureFixture, kind: str,
    config: dict[str, Budget],
) -> None:
    client = await connect(h2_server, **config)
    for i in range(10):
        stream_id = 2 * i + 1
        if kind == "resets":
            await client.send_headers(stream_id, GET)
            await client.send_rst(stream_id, ErrorCodes.CANCEL)
        elif kind == "pings":
            await client.send_ping(b"%08d" % i)
        elif kind in ("empty DATA", "1-byte DATA"):
            if i == 0:
                await client.send_headers(1, request("POST"))
            await client.send_raw(raw_frame(0x0, 0, 1, b"" if kind == "empty DATA" else b"x"))
        else:
            await client.send_raw(raw_frame(0x2, 0, 101 + 2 * i, b"\x00\x00\x00\x00\x0f"))
    code, _ = await client.expect_goaway()
    assert code == ErrorCodes.ENHANCE_YOUR_CALM
    abuse = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(abuse) == 1 and "too many" in abuse[0].getMessage()
    assert f"127.0.0.1:{client.stream.socket.getsockname()[1]}" in abuse[0].getMessage()


async def test_budgets_refill(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    client = await connect(h2_server, control_frame_budget=Budget(5, 1))
    for i in range(20):  # one PING a second is within a refill of 1 per second
        await client.send_ping(b"%08d" % i)
        await client.next_frame(lambda f: isinstance(f, PingFrame))
        await trio.sleep(1)
    await client.send_headers(1, GET, end_stream=True)
    assert (await client.read_response(1)).status == 200


def test_header_block_pending_reads_h2s_frame_buffer() -> None:
    # _guard looks at two private attributes of h2's FrameBuffer; if an h2
    # release renames them, this fails instead of the timer going quiet.
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.receive_data(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + raw_frame(0x4, 0, 0, b""))
    assert not _header_block_pending(conn)
    conn.receive_data(b"\x00\x00")  # part of a frame header
    assert _header_block_pending(conn)
    conn.receive_data(b"\x05\x01\x00\x00\x00\x00\x01")  # HEADERS, 5 bytes, no END_HEADERS
    conn.receive_data(b"\x82\x86\x84\x41")  # 4 of its 5 bytes
    assert _header_block_pending(conn)
    conn.receive_data(b"\x01")  # the frame is complete, the block is not
    assert _header_block_pending(conn)
    conn.receive_data(raw_frame(0x9, 0x4, 1, b"t"))  # CONTINUATION with END_HEADERS
    assert not _header_block_pending(conn)


async def test_a_header_block_past_twice_the_list_size_ends_the_connection(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory,
) -> None:
    client = await connect(h2_server, max_header_list_size=4096, header_timeout=1000,
                           idle_timeout=1000)
    block = client.encode([*GET, ("x-pad", "v" * 3000)])
    await client.send_raw(raw_frame(0x1, 0x1, 1, block))  # under 2 x 4096: waits
    await trio.sleep(500)
    assert not client.kept and not await _closed_or_goaway(client)
    await client.send_raw(raw_frame(0x9, 0, 1, b"v" * 6000))  # now past it
    code, _ = await client.expect_goaway()
    assert code == ErrorCodes.ENHANCE_YOUR_CALM


async def test_body_timeout_resets_a_starved_upload(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory,
) -> None:
    client = await connect(h2_server, body_timeout=15, idle_timeout=1000)
    await client.send_headers(1, request("POST", "/", ("content-length", "1000")))
    start = trio.current_time()
    for _ in range(3):  # data keeps it alive...
        await trio.sleep(10)
        await client.send_data(1, b"x" * 10)
    assert await client.expect_rst(1) == ErrorCodes.CANCEL  # ...until it stops
    assert 45 <= trio.current_time() - start < 46
