"""Frame floods and oversized frames: every attack that sends the server
many (or huge) frames, each cheap to send and each asking for work: PING,
SETTINGS, PRIORITY, malformed and reset requests, empty frames, endless header
blocks, HPACK bombs, and streams past max_concurrent_streams.

The harness, and the promises each test checks (bystanders served, memory
bounded, the attacker stopped), are in :mod:`tests.support.attack_harness`.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat

import pytest
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from tests.support.attack_client import TINY_RCVBUF, Attacker, Ending
from tests.support.attack_harness import (
    CALM,
    ENDING_LIMIT,
    FLOOD_LIMIT,
    SEND_TIMEOUT,
    SETTINGS_FLOOD,
    App,
    MiB,
    assert_stopped,
    config_with,
    handlers_finish,
    start,
    still_serves,
    watched,
)
from tests.support.frames import (
    MAX_WINDOW,
    PING,
    SETTINGS,
    block,
    code_name,
    continuation,
    data,
    headers,
    literal,
    ping,
    raw_frame,
    rst_stream,
    settings,
    split_block,
    window_update,
)
from tests.support.frames import priority as priority_frame
from tests.support.requests import request_block
from trio_h2.testing import H2ServerFactory, H2TestServer


@pytest.fixture
def app() -> App:
    return App()


FLOOD_READING = [pytest.param(False, id="never reads", marks=pytest.mark.slow),
                 pytest.param(True, id="reads")]
"""Flooders of both kinds: one that never reads its socket, so that the
server's answers back up (the server may stop reading, but then must close
the connection within send_timeout, 1 s here); and one that reads everything,
so that only a budget for the frames themselves can stop it."""



async def start_for_flood(h2_server: H2ServerFactory, app: App, reading: bool) -> H2TestServer:
    return await start(h2_server, app,
                       **({} if reading else config_with(send_timeout=SEND_TIMEOUT)))


async def flood_ending(attacker: Attacker, reading: bool) -> Ending:
    """After a flood: a flooder that never reads keeps not reading for longer
    than send_timeout; then the connection must turn out closed."""
    if not reading:
        await trio.sleep(SEND_TIMEOUT + 1)
    return await attacker.finish(ENDING_LIMIT)


@pytest.mark.parametrize("reading", FLOOD_READING)
async def test_ping_flood_cve_2019_9512(h2_server: H2ServerFactory, app: App,
                                        reading: bool) -> None:
    """CVE-2019-9512: 100 000 PINGs, each of which asks for a PING ACK. nghttp2
    ends the connection once 1000 ACKs wait to be written; Go's server once
    10000 control frames are queued (ENHANCE_YOUR_CALM)."""
    server = await start_for_flood(h2_server, app, reading)
    async with watched(server, app) as watch:
        attacker = await watch.connect(rcvbuf=None if reading else TINY_RCVBUF)
        sent = await attacker.flood(repeat(ping(b"flooding"), 100_000), seconds=FLOOD_LIMIT,
                                    reading=reading)
        ending = await flood_ending(attacker, reading)
        assert_stopped(ending, CALM, what=f"{sent} PINGs, {ending.counts[PING]} PING ACKs read")


async def test_priority_churn_cve_2019_9513(h2_server: H2ServerFactory, app: App) -> None:
    """CVE-2019-9513: 100 000 PRIORITY frames that keep rebuilding the priority
    tree, on idle streams, with no request at all. The tree is bounded
    (max_concurrent_streams idle nodes), but the work per frame is not free:
    a connection that does nothing else is abusive (Envoy's precedent:
    max_inbound_priority_frames_per_stream, 100)."""
    server = await start(h2_server, app)

    def churn() -> Iterator[bytes]:
        for i in range(100_000):
            stream_id = 2 * (i % 1000) + 1
            depends_on = 2 * ((i * 7919) % 1000) + 1
            if depends_on == stream_id:
                depends_on = 0
            yield priority_frame(stream_id, depends_on, weight=i % 256 + 1, exclusive=i % 3 == 0)

    async with watched(server, app) as watch:
        attacker = await watch.connect()
        sent = await attacker.flood(churn(), seconds=FLOOD_LIMIT)
        ending = await attacker.finish(ENDING_LIMIT)
        assert_stopped(ending, CALM, what=f"{sent} PRIORITY frames")


@pytest.mark.parametrize("reading", FLOOD_READING)
async def test_reset_flood_cve_2019_9514(h2_server: H2ServerFactory, app: App,
                                         reading: bool) -> None:
    """CVE-2019-9514: 50 000 malformed requests (no ``:scheme``), each of which
    the server answers with RST_STREAM. nghttp2 ends the connection once 1000
    control frames wait to be written (Envoy: max_outbound_control_frames,
    1000); resets the server sends count against the stream reset budget."""
    server = await start_for_flood(h2_server, app, reading)
    malformed = block([(":method", "GET"), (":path", "/"), (":authority", "localhost")])
    async with watched(server, app) as watch:
        attacker = await watch.connect(rcvbuf=None if reading else TINY_RCVBUF)
        sent = await attacker.flood((headers(s, malformed) for s in range(1, 100_000, 2)),
                                    seconds=FLOOD_LIMIT, reading=reading)
        ending = await flood_ending(attacker, reading)
        assert_stopped(ending, CALM, what=f"{sent} malformed requests, {len(ending.resets)} "
                                          f"RST_STREAMs read")


@pytest.mark.parametrize("reading", FLOOD_READING)
async def test_settings_flood_cve_2019_9515(h2_server: H2ServerFactory, app: App,
                                            reading: bool) -> None:
    """CVE-2019-9515: 50 000 SETTINGS frames, each of which asks for a
    SETTINGS ACK (nghttp2: 1000 queued, then ENHANCE_YOUR_CALM). A client
    needs one SETTINGS frame, and a few more at most, for the connection."""
    server = await start_for_flood(h2_server, app, reading)
    async with watched(server, app) as watch:
        attacker = await watch.connect(rcvbuf=None if reading else TINY_RCVBUF)
        frame = settings([(SettingCodes.ENABLE_PUSH, 0)])
        sent = await attacker.flood(repeat(frame, SETTINGS_FLOOD), seconds=FLOOD_LIMIT,
                                    reading=reading)
        ending = await flood_ending(attacker, reading)
        assert_stopped(ending, CALM, what=f"{sent} SETTINGS, {ending.counts[SETTINGS]} read")


async def test_zero_length_headers_cve_2019_9516(h2_server: H2ServerFactory, app: App) -> None:
    """CVE-2019-9516: 50 requests, each with 2000 header fields whose name and
    value are empty (half of them added to the HPACK table), in 3 bytes each.

    Bounded by design: each field costs 32 bytes against max_header_list_size
    (64 KiB: at most 2048 fields per request), and an empty name makes the
    request malformed, so nothing is kept. The server answers each stream with
    RST_STREAM PROTOCOL_ERROR (RFC 9113 section 8.1.1), or ends the connection
    (ENHANCE_YOUR_CALM, or PROTOCOL_ERROR)."""
    server = await start(h2_server, app)
    empties = b"\x40\x00\x00" * 1000 + b"\x00\x00\x00" * 1000
    streams = range(1, 101, 2)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.flood((headers(s, request_block() + empties) for s in streams),
                             seconds=FLOOD_LIMIT)
        ending = attacker.ending
        with trio.move_on_after(10):
            await attacker.read_until(lambda e: e.closed or len(e.resets) == len(streams))
        if not ending.stopped(CALM, ErrorCodes.PROTOCOL_ERROR):
            codes = {code_name(ending.resets.get(s)) for s in streams}
            assert codes == {"PROTOCOL_ERROR"}, ending.describe()
            assert await still_serves(attacker, 101), ending.describe()
        assert not ending.malformed, ending.malformed


@pytest.mark.parametrize("kind", ["DATA", "CONTINUATION"])
async def test_empty_frames_cve_2019_9518(h2_server: H2ServerFactory, app: App,
                                          kind: str) -> None:
    """CVE-2019-9518: 100 000 frames with empty payloads and no END_STREAM:
    DATA on an open upload, or CONTINUATION after an empty HEADERS. Each costs
    the server a frame's work and achieves nothing. Envoy allows 1 such frame
    in a row (max_consecutive_inbound_frames_with_empty_payload); h2 stops
    a header block at 64 CONTINUATIONs (PROTOCOL_ERROR)."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        if kind == "DATA":
            await attacker.send(headers(1, request_block("POST", "/echo"), end_stream=False))
            frame, codes = data(1), (CALM,)
        else:
            await attacker.send(headers(1, b"", end_headers=False))
            frame, codes = continuation(1, b""), (CALM, ErrorCodes.PROTOCOL_ERROR)
        sent = await attacker.flood(repeat(frame, 100_000), seconds=FLOOD_LIMIT)
        ending = await attacker.finish(ENDING_LIMIT)
        assert_stopped(ending, *codes, what=f"{sent} empty {kind} frames")


async def test_rapid_reset_cve_2023_44487(h2_server: H2ServerFactory, app: App) -> None:
    """CVE-2023-44487: 20 000 requests each reset at once (HEADERS, RST_STREAM).
    Every reset frees a stream slot at once, so without a limit on *handlers*
    the app would run 20 000 of them. Handlers running at once must stay within
    max_concurrent_streams (+2), and the connection must end with
    ENHANCE_YOUR_CALM (nghttp2: a burst of 1000 resets, then 33 per second)."""
    server = await start(h2_server, app)
    limit = 100
    slow = request_block("GET", "/slow")

    def pairs() -> Iterator[bytes]:
        for stream_id in range(1, 40_000, 2):
            yield headers(stream_id, slow) + rst_stream(stream_id)

    async with watched(server, app) as watch:
        attacker = await watch.connect()
        sent = await attacker.flood(pairs(), seconds=FLOOD_LIMIT)
        ending = await attacker.finish(ENDING_LIMIT)
        peak, started = app.peak, app.started
        await attacker.aclose()
        assert peak <= limit + 2, (
            f"{peak} handlers ran at once ({started} started) for {sent} reset requests; "
            f"max_concurrent_streams is {limit}")
        assert_stopped(ending, CALM, what=f"{sent} rapid resets ({started} handlers started)")
        assert await handlers_finish(app), f"{app.running} handlers still running"


@pytest.mark.parametrize(("fragment", "count", "max_frame_size"), [
    pytest.param(16384, 10_000, None, id="16 KiB frames"),
    pytest.param(1, 100_000, None, id="1-byte frames"),
    pytest.param(MiB, 100, MiB, id="1 MiB frames, max_frame_size 1 MiB"),
])
async def test_continuation_flood(h2_server: H2ServerFactory, app: App, fragment: int,
                                  count: int, max_frame_size: int | None) -> None:
    """The 2024 CONTINUATION flood (VU#421644, CVE-2024-27316 and others): a
    header block that never ends. The server must bound it in bytes, not only
    in frames: h2 stops at 64 CONTINUATIONs, but with 1 MiB frames allowed that
    is 64 MiB buffered. A block past max_header_list_size cannot succeed, so
    the connection can end as soon as the block passes it."""
    config = {} if max_frame_size is None else {"max_frame_size": max_frame_size}
    server = await start(h2_server, app, **config)
    # Real header fields (literals, 1000-byte values), cut at frame boundaries.
    field_bytes = literal(b"x-pad", b"v" * 1000) * 20
    assert len(field_bytes) >= fragment or fragment == MiB
    payload = (field_bytes * (fragment // len(field_bytes) + 1))[:fragment]
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(headers(1, request_block(), end_headers=False))
        sent = await attacker.flood(repeat(continuation(1, payload), count), seconds=FLOOD_LIMIT)
        ending = await attacker.finish(ENDING_LIMIT)
        assert_stopped(ending, CALM, ErrorCodes.PROTOCOL_ERROR, ErrorCodes.COMPRESSION_ERROR,
                       what=f"{sent} CONTINUATIONs of {fragment} bytes")


@pytest.mark.parametrize("kind", ["HPACK bomb", "header count"])
async def test_hpack_bomb_cve_2016_6581(h2_server: H2ServerFactory, app: App,
                                        kind: str) -> None:
    """CVE-2016-6581: one 4000-byte field in the HPACK table, then referenced
    12 000 times, one byte each: 16 KiB on the wire, 48 MB decoded. And the
    header-count bomb: 100 000 references to an empty field (32 bytes each by
    RFC 7541's count). Both pass max_header_list_size (64 KiB) early in
    decoding: the server must stop decoding there. It may end the connection
    (ENHANCE_YOUR_CALM, or COMPRESSION_ERROR), or refuse the request (RST_STREAM
    or 431) and go on, if it kept the HPACK state in step."""
    server = await start(h2_server, app)
    if kind == "HPACK bomb":
        bomb = literal(b"x-bomb", b"a" * 4000, indexed=True) + b"\xbe" * 12_000
    else:
        bomb = literal(b"a", b"", indexed=True) + b"\xbe" * 100_000
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(split_block(1, request_block() + bomb))
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or 1 in e.resets or 1 in e.statuses)
        ending = attacker.ending
        if not ending.stopped(CALM, ErrorCodes.COMPRESSION_ERROR):
            refused = 1 in ending.resets or ending.statuses.get(1) == 431
            assert refused, f"the request was not refused: {ending.describe()}"
            assert await still_serves(attacker, 3), ending.describe()
        assert not ending.malformed, ending.malformed


async def test_max_concurrent_streams_abuse(h2_server: H2ServerFactory, app: App) -> None:
    """RFC 9113 section 5.1.2: streams past SETTINGS_MAX_CONCURRENT_STREAMS
    get RST_STREAM REFUSED_STREAM (safe to retry, section 8.7) and the
    connection goes on: the ten streams in flight complete once released."""
    server = await start(h2_server, app, max_concurrent_streams=10)
    slow = request_block("GET", "/slow")
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(b"".join(headers(s, slow) for s in range(1, 41, 2)))
        excess = set(range(21, 41, 2))
        ending = attacker.ending
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or e.goaway is not None
                                      or excess <= set(e.resets))
        assert ending.goaway is None and not ending.closed, ending.describe()
        assert {s: code_name(ending.resets.get(s)) for s in sorted(excess)} == {
            s: "REFUSED_STREAM" for s in sorted(excess)}
        assert not set(ending.resets) - excess, ending.describe()
        app.release.set()
        in_flight = set(range(1, 21, 2))
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or in_flight <= e.ended_streams)
        assert {s: ending.statuses.get(s) for s in in_flight} == dict.fromkeys(in_flight, 200)
        assert await still_serves(attacker, 41), ending.describe()


@pytest.mark.parametrize("kind", ["over the limit", "malformed"])
async def test_resetting_a_stream_the_client_already_reset(h2_server: H2ServerFactory,
                                                           app: App, kind: str) -> None:
    """The step of Rapid Reset (and of a malformed-request flood) that trips a
    server: a stream the server must refuse (past the handler limit) or reset
    (malformed), whose RST_STREAM arrives in the same read as its HEADERS.
    h2 has closed the stream already when the server decides; resetting it
    again must not fail the connection (INTERNAL_ERROR)."""
    server = await start(h2_server, app, max_concurrent_streams=1)
    slow = request_block("GET", "/slow")
    bad = slow if kind == "over the limit" else block([(":method", "GET"), (":path", "/")])
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(headers(1, slow))  # running: the limit is reached
        await attacker.send(ping(b"barrier!"))
        with trio.fail_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or e.counts[PING] > 0)
        await attacker.send(headers(3, bad) + rst_stream(3))  # one write, one read
        assert await still_serves(attacker, None), attacker.ending.describe()
        assert attacker.ending.goaway is None, attacker.ending.describe()
        app.release.set()
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or 1 in e.ended_streams)
        assert attacker.ending.statuses.get(1) == 200, attacker.ending.describe()


@pytest.mark.parametrize("kind", ["window overflow", "DATA after END_STREAM",
                                  "DATA past content-length"])
async def test_made_you_reset_cve_2025_8671(h2_server: H2ServerFactory, app: App,
                                            kind: str) -> None:
    """CVE-2025-8671 (MadeYouReset): 5000 requests, each followed by a frame
    that makes the *server* reset the stream (a stream error): a WINDOW_UPDATE
    past 2^31-1 (FLOW_CONTROL_ERROR), DATA on a half-closed stream
    (STREAM_CLOSED), or DATA past the content-length (PROTOCOL_ERROR). Each
    reset frees a stream slot while the handler may still run. Handlers running
    at once must stay within max_concurrent_streams (+2), and the connection
    must end: ENHANCE_YOUR_CALM (resets we send count against the same budget
    as resets we receive), or PROTOCOL_ERROR where h2 makes a bad content-length
    a connection error (RFC 9113 section 5.4.1 allows)."""
    server = await start(h2_server, app)
    limit = 100
    slow = request_block("GET", "/slow")
    with_length = request_block("POST", "/slow", ("content-length", "1"))
    codes: tuple[int, ...] = (CALM,)

    def attack() -> Iterator[bytes]:
        for stream_id in range(1, 10_000, 2):
            if kind == "window overflow":
                yield headers(stream_id, slow) + window_update(stream_id, MAX_WINDOW)
            elif kind == "DATA after END_STREAM":
                yield headers(stream_id, slow) + data(stream_id, b"x")
            else:
                yield (headers(stream_id, with_length, end_stream=False)
                       + data(stream_id, b"xx", end_stream=True))

    if kind == "DATA past content-length":
        codes = (CALM, ErrorCodes.PROTOCOL_ERROR)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        sent = await attacker.flood(attack(), seconds=FLOOD_LIMIT)
        ending = await attacker.finish(ENDING_LIMIT)
        peak, started = app.peak, app.started
        await attacker.aclose()
        assert peak <= limit + 2, (
            f"{peak} handlers ran at once ({started} started) for {sent} server-reset requests")
        assert_stopped(ending, *codes, what=f"{sent} requests reset by the server ({kind})")
        assert await handlers_finish(app), f"{app.running} handlers still running"


@pytest.mark.slow
async def test_oversized_settings_frame(h2_server: H2ServerFactory, app: App) -> None:
    """A SETTINGS frame whose header announces 16 MiB - 1, when our
    SETTINGS_MAX_FRAME_SIZE is 16 KiB: RFC 9113 section 4.2 makes it a
    connection error FRAME_SIZE_ERROR, which the frame header alone proves.
    The server must say so at once, not buffer the announced 16 MiB first
    (here only 1 MiB of it is ever sent)."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        header = raw_frame(SETTINGS, 0, 0, b"", length=2**24 - 1)
        await attacker.flood([header, *repeat(bytes(6 * 1024), 170)], seconds=FLOOD_LIMIT)
        ending = await attacker.finish(ENDING_LIMIT)
        assert_stopped(ending, ErrorCodes.FRAME_SIZE_ERROR,
                       what="a SETTINGS frame announcing 16 MiB (1 MiB of it sent)")


@pytest.mark.slow
async def test_settings_with_thousands_of_entries(h2_server: H2ServerFactory, app: App) -> None:
    """SETTINGS frames as large as allowed (16 KiB: 2730 entries), 300 of them,
    naming every unknown setting id in turn: each must be processed, and
    unknown ids remembered. nghttp2 allows 32 entries per frame
    (nghttp2_option_set_max_settings) and answers more with ENHANCE_YOUR_CALM."""
    server = await start(h2_server, app)

    def frames() -> Iterator[bytes]:
        ident = 0x10
        for _ in range(300):
            entries = []
            for _ in range(2730):
                entries.append((ident, 1))
                ident = ident + 1 if ident < 0xFFFF else 0x10
            yield settings(entries)

    async with watched(server, app) as watch:
        attacker = await watch.connect()
        sent = await attacker.flood(frames(), seconds=FLOOD_LIMIT)
        ending = await attacker.finish(ENDING_LIMIT)
        assert_stopped(ending, CALM, what=f"{sent} SETTINGS frames of 2730 entries")
