"""Request bodies in DATA frames far smaller than the work each costs.

Every DATA frame costs the server about the same CPU whatever it carries
(``bench/receive_cost.py``: 10 microseconds), so a body in 1-byte frames
costs thousands of times what it costs in 16 KiB frames, within every
window. ``Config.data_frame_budget`` counts each frame's overhead in bytes
(``_core.limits.data_frame_overhead``: 256 plus its padding, less its
payload; larger frames give back): a flood of small frames to an
application that reads ends with GOAWAY ENHANCE_YOUR_CALM after about the
budget, while bystanders are served, and small frames at the rate real
streaming clients send them pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import trio
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame, PingFrame

from tests.support.apps import http_only, read_body
from tests.support.attack_harness import (
    CALM,
    ENDING_LIMIT,
    FLOOD_LIMIT,
    App,
    assert_stopped,
    respond,
    start,
    watched,
)
from tests.support.frames import data, headers
from tests.support.rawh2 import H2Client
from tests.support.requests import request, request_block
from trio_h2 import Budget, Config
from trio_h2._core.limits import DATA_FRAME_COST
from trio_h2.testing import H2ServerFactory

ONE_BYTE_DRAW = DATA_FRAME_COST - 1
"""What a 1-byte DATA frame draws on the budget."""


@dataclass
class ReadingApp(App):
    """The harness's app, and ``/count``: reads the body to its end,
    counting every byte it is given in :attr:`body_read`."""

    body_read: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] != "/count":
            await super().__call__(scope, receive, send)
            return
        while True:
            message = await receive()
            self.body_read += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await respond(send, b"read")


async def test_one_byte_data_flood_to_an_app_that_reads(h2_server: H2ServerFactory) -> None:
    """100 000 1-byte DATA frames over 4 uploads to an application that
    reads them all: without a budget each read of 64 KiB costs the server
    about 60 ms of CPU, for as long as the client goes on. The connection
    ends with ENHANCE_YOUR_CALM once the default budget is spent (its burst
    and its refill over the time the flood took), and bystanders are
    served meanwhile."""
    app = ReadingApp()
    server = await start(h2_server, app)
    budget = Config().data_frame_budget
    streams = (1, 3, 5, 7)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(b"".join(headers(s, request_block("POST", "/count"),
                                             end_stream=False) for s in streams))
        began = trio.current_time()
        sent = await attacker.flood((data(s, b"x") for _ in range(25_000) for s in streams),
                                    seconds=FLOOD_LIMIT, reading=True)
        ending = await attacker.finish(ENDING_LIMIT)
        took = trio.current_time() - began
        assert_stopped(ending, CALM, what=f"{sent} 1-byte DATA frames, {app.body_read} read")
    allowed = (budget.burst + budget.per_second * took) / ONE_BYTE_DRAW
    assert app.body_read <= allowed + 1, (
        f"the application read {app.body_read} 1-byte frames before the GOAWAY; the "
        f"budget allows {allowed:.0f} in {took:.1f}s")


async def length_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the request body to its end and answers its length."""
    await respond(send, b"%d" % len(await read_body(receive)))


async def upload_client(h2_server: H2ServerFactory, budget: Budget) -> H2Client:
    """A connection with an upload open on stream 1, to :func:`length_app`."""
    server = await h2_server(http_only(length_app), data_frame_budget=budget)
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, request("POST", "/"))
    return client


async def still_open(client: H2Client, payload: bytes) -> bool:
    """The server answers a PING sent after everything before it (it reads
    in order), with no GOAWAY first."""
    await client.send_ping(payload)
    frame = await client.next_frame(
        lambda f: isinstance(f, GoAwayFrame) or (isinstance(f, PingFrame)
                                                 and f.opaque_data == payload))
    return isinstance(frame, PingFrame)


@pytest.mark.parametrize("frames", [80, 400])
async def test_small_frames_past_the_budget_end_the_connection(
        h2_server: H2ServerFactory, frames: int) -> None:
    """A budget with no refill of ``frames`` 1-byte frames: exactly that
    many pass, the next one ends the connection (a smaller budget trips
    sooner); a frame larger than 256 bytes gives back what it carries past
    them."""
    client = await upload_client(h2_server, Budget(frames * ONE_BYTE_DRAW, 0))
    await client.send_raw(data(1, b"x") * frames)
    assert await still_open(client, b"spent-01")
    # 16 KiB gives back 16 384 - 256 bytes (within the burst): 63 more 1-byte frames.
    await client.send_raw(data(1, b"x" * 16384) + data(1, b"x") * 63)
    assert await still_open(client, b"spent-02")
    await client.send_raw(data(1, b"x"))
    code, _ = await client.expect_goaway()
    assert code == ErrorCodes.ENHANCE_YOUR_CALM


@pytest.mark.parametrize("frames", [40, 400])
async def test_padding_draws_and_the_last_frame_is_free(
        h2_server: H2ServerFactory, frames: int) -> None:
    """Padding is overhead too: with one bare 1-byte frame's draw left, a
    1-byte frame padded by 254 (and its Pad Length byte), which draws twice
    that, ends the connection. A stream's last frame draws nothing, however
    small: the body ends and is read whole."""
    client = await upload_client(h2_server, Budget(frames * ONE_BYTE_DRAW, 0))
    await client.send_raw(data(1, b"x") * (frames - 1))
    await client.send_raw(data(1, b"y", end_stream=True, pad_length=254))
    assert (await client.read_response(1)).body == b"%d" % frames
    await client.send_headers(3, request("POST", "/"))
    await client.send_raw(data(3, b"z", pad_length=254))
    code, _ = await client.expect_goaway()
    assert code == ErrorCodes.ENHANCE_YOUR_CALM


async def test_small_messages_at_a_streaming_rate_pass(
        autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory) -> None:
    """gRPC client streams or fetch() uploads of 100-byte messages, one DATA
    frame each, 1000 a second on each of 6 streams for 30 (virtual)
    seconds, 180 000 frames: within the default budget's refill, so every
    body arrives whole."""
    client = await upload_client(h2_server, Config().data_frame_budget)
    client.timeout = 1000
    streams = range(1, 13, 2)
    for stream_id in streams[1:]:
        await client.send_headers(stream_id, request("POST", "/"))
    message = b"m" * 100
    for _ in range(3000):  # every 10 ms, 10 messages on each stream
        await client.send_raw(b"".join(data(s, message) for s in streams for _ in range(10)))
        await trio.sleep(0.01)
    await client.send_raw(b"".join(data(s, b"", end_stream=True) for s in streams))
    for stream_id in streams:
        response = await client.read_response(stream_id)
        assert response.status == 200 and response.body == b"%d" % (len(message) * 30_000)
