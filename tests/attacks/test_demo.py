"""The demo app attacked: what ``python -m trio_h2`` serves with no app,
which people expose. Its priority page (``_apps.priority_page``) builds
``/priority/record.json`` from what a client sent, and logs the signals it
recorded: neither may let one client pin memory or fill the log at a cost
out of proportion to what it sends."""

from __future__ import annotations

import json
import logging

import pytest
import trio
from h2.settings import SettingCodes
from hyperframe.frame import WindowUpdateFrame

from tests.support.rawh2 import H2Client, HeaderBlock
from trio_h2._apps.demo import DemoApp
from trio_h2._apps.priority_page import RECORD_BUDGET
from trio_h2._core.sendlog import MAX_STREAMS
from trio_h2.testing import H2ServerFactory, H2TestServer

WIDE = 2**31 - 1


def request(path: str, method: str = "GET", *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", "t"),
            *extra]


async def recording(server: H2TestServer, *, window: int) -> H2Client:
    """A connection with stream windows of ``window`` whose record has started
    (``/priority``; its page's body waits if the window is shut)."""
    client = await H2Client.connect(server.host, server.port,
                                    settings={SettingCodes.INITIAL_WINDOW_SIZE: window})
    await client.send_headers(1, request("/priority"), end_stream=True)
    page = await client.next_frame(lambda f: isinstance(f, HeaderBlock) and f.stream_id == 1)
    assert isinstance(page, HeaderBlock) and dict(page.headers)[b":status"] == b"200"
    return client


async def status_of(client: H2Client, stream_id: int) -> int:
    block = await client.next_frame(
        lambda f: isinstance(f, HeaderBlock) and f.stream_id == stream_id)
    assert isinstance(block, HeaderBlock)
    return int(dict(block.headers)[b":status"])


async def test_record_json_is_held_once_per_connection_that_does_not_read(
        h2_server: H2ServerFactory) -> None:
    """Each ``record.json`` is built whole (up to ~0.7 MB) before it is sent
    and held until the client takes it. A client that asked for it on 99
    streams and never opened its windows held 99 of them: 53 MB a
    connection for send_timeout, from 40 KB of requests. One at a time per
    connection: the others are answered 429 at once, and the next is served
    once the one held has gone out. Another connection is not affected."""
    server = await h2_server(DemoApp())
    attacker = await recording(server, window=0)
    asked = list(range(3, 3 + 2 * 20, 2))
    for stream_id in asked:
        await attacker.send_headers(stream_id, request("/priority/record.json"),
                                    end_stream=True)
    statuses = [await status_of(attacker, stream_id) for stream_id in asked]
    assert statuses.count(200) == 1 and statuses.count(429) == len(asked) - 1, statuses
    held = asked[statuses.index(200)]
    # Another connection gets its own record meanwhile.
    bystander = await recording(server, window=WIDE)
    await bystander.send_headers(3, request("/priority/record.json"), end_stream=True)
    assert json.loads((await bystander.read_response(3)).body)["record"] is not None
    await bystander.aclose()
    # Once the held one has gone out, the next is answered.
    await attacker.send_settings({SettingCodes.INITIAL_WINDOW_SIZE: WIDE})
    await attacker.send_frame(WindowUpdateFrame(0, window_increment=WIDE - 65535))
    assert json.loads((await attacker.read_response(held)).body)["record"] is not None
    after = asked[-1] + 2
    await attacker.send_headers(after, request("/priority/record.json"), end_stream=True)
    assert await status_of(attacker, after) == 200
    await attacker.aclose()


async def test_the_signals_logged_for_record_json_are_bounded(
        h2_server: H2ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    """The server logs the priority signals of the page's requests each time
    ``record.json`` is asked for. A client that asked for one resource of the
    page on all MAX_STREAMS recorded streams, each with a 250-byte
    ``priority`` field, made each HEAD of ``record.json`` (a few bytes with
    HPACK) log 77 KB. The line names each resource's first request only,
    its field cut short: about what an access-log line costs."""
    caplog.set_level(logging.INFO, logger="trio_h2")
    server = await h2_server(DemoApp())
    client = await recording(server, window=WIDE)
    field = "u=1, " + "x" * 245
    stream_id = 3
    for _ in range(MAX_STREAMS):
        await client.send_headers(
            stream_id, request("/priority/r/style.css", "HEAD", ("priority", field)),
            end_stream=True)
        assert (await client.read_response(stream_id)).status == 200
        stream_id += 2
    caplog.clear()
    for _ in range(3):
        await client.send_headers(stream_id, request("/priority/record.json", "HEAD"),
                                  end_stream=True)
        assert (await client.read_response(stream_id)).status == 200
        stream_id += 2
    lines = [r.getMessage() for r in caplog.records if "priority page: " in r.getMessage()]
    assert len(lines) == 3
    assert all(len(line) <= 1024 for line in lines), [len(line) for line in lines]
    assert "style.css (stream 3): priority field 'u=1, xxx" in lines[0]
    await client.aclose()


async def test_record_json_is_built_at_most_at_its_budget_for_the_server(
        h2_server: H2ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    """Building a full record costs up to 40 ms of CPU, and a HEAD of
    ``record.json`` is a few bytes: a client asking in a loop, one at a
    time, had one built every time. Past RECORD_BUDGET's burst the server
    builds no more than its rate, answers 429 at once, and logs one line."""
    caplog.set_level(logging.INFO, logger="trio_h2")
    server = await h2_server(DemoApp())
    client = await recording(server, window=WIDE)
    statuses = []
    began = trio.current_time()
    for stream_id in range(3, 3 + 2 * 60, 2):
        await client.send_headers(stream_id, request("/priority/record.json", "HEAD"),
                                  end_stream=True)
        statuses.append((await client.read_response(stream_id)).status)
    elapsed = trio.current_time() - began
    built = statuses.count(200)
    assert built + statuses.count(429) == len(statuses)
    assert built <= RECORD_BUDGET.burst + RECORD_BUDGET.per_second * elapsed + 1, \
        (built, elapsed)
    assert statuses[:RECORD_BUDGET.burst] == [200] * RECORD_BUDGET.burst
    refused = [r for r in caplog.records if "429 until it is served again" in r.getMessage()]
    assert 1 <= len(refused) <= built - RECORD_BUDGET.burst + 1
    await client.aclose()
