"""Slow peers: clients that send, read or open windows too slowly, so that
the server would hold buffers, handlers or connections for them: the data
dribble, internal data buffering, slowloris, R-U-Dead-Yet and slow read, and
the timeouts that end them.

The harness, and the promises each test checks (bystanders served, memory
bounded, the attacker stopped), are in :mod:`tests.support.attack_harness`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
from h2.settings import SettingCodes

from tests.support.attack_client import TINY_RCVBUF, Attacker
from tests.support.attack_harness import (
    BIG,
    CALM,
    ENDING_LIMIT,
    FLOOD_LIMIT,
    App,
    assert_stopped,
    config_with,
    handlers_finish,
    start,
    still_serves,
    watched,
)
from tests.support.frames import MAX_WINDOW, continuation, data, headers, ping, window_update
from tests.support.requests import request_block
from trio_h2.testing import H2ServerFactory, open_h2_client


@pytest.fixture
def app() -> App:
    return App()


async def test_data_dribble_cve_2019_9511(h2_server: H2ServerFactory, app: App) -> None:
    """CVE-2019-9511: 100 streams of ``/big`` and a window opened one byte at
    a time (20 000 WINDOW_UPDATEs), so the server could queue 1-byte DATA frames.

    Harmless by design: a handler hands over one chunk, by reference, and
    waits until it is framed; the sender frames DATA only as the windows allow.
    So the bound is memory and bystander latency; the server may keep the
    connection (then it must still answer) or end it with ENHANCE_YOUR_CALM.
    It must never send more DATA than the windows allowed."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect(rcvbuf=TINY_RCVBUF,
                                       initial_settings=[(SettingCodes.INITIAL_WINDOW_SIZE, 0)])
        streams = range(1, 201, 2)
        await attacker.send(window_update(0, MAX_WINDOW - 65535) + b"".join(
            headers(s, request_block("GET", "/big")) for s in streams))
        await attacker.flood((window_update(s, 1) for _ in range(200) for s in streams),
                             seconds=FLOOD_LIMIT)
        ending = attacker.ending
        if not await still_serves(attacker, None):  # (all 100 stream slots are taken)
            assert_stopped(ending, CALM, what="data dribble")
        granted = 200 * len(streams)  # at most: the flood may have stopped early
        assert ending.data_bytes <= granted, (
            f"{ending.data_bytes} bytes of DATA for {granted} bytes of window")
        await attacker.aclose()
        assert await handlers_finish(app), f"{app.running} handlers still running"


async def test_internal_data_buffering_cve_2019_9517(h2_server: H2ServerFactory,
                                                      app: App) -> None:
    """CVE-2019-9517: HTTP/2 windows opened wide, the TCP window kept shut (the
    client never reads), and 100 streams asking for 4 MiB each.

    Harmless by design: the sender frames DATA only when the socket takes it,
    and each handler holds one chunk, by reference; so 400 MiB of responses
    cost the server a few chunks. The bound is memory; afterwards, closing the
    connection must release every handler."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect(
            rcvbuf=TINY_RCVBUF, initial_settings=[(SettingCodes.INITIAL_WINDOW_SIZE, MAX_WINDOW)])
        await attacker.send(window_update(0, MAX_WINDOW - 65535) + b"".join(
            headers(s, request_block("GET", "/big")) for s in range(1, 201, 2)))
        await trio.sleep(1.5)  # the server does whatever it does with 400 MiB to send
        with trio.move_on_after(ENDING_LIMIT):  # a loaded machine may take longer
            while app.started < 100:
                await app.began.wait()
        assert app.started == 100
        await attacker.aclose()
        assert await handlers_finish(app), (
            f"{app.running} handlers still running after the client left")


# ---------------------------------------------------------------- timeouts

LATEST = 8.0
"""Seconds by which each slowloris connection must be closed: the 1 s timer, a
graceful close's unanswered PING (1 s), room for a loaded machine, and still
below 10 s, the smallest default of the three timers (preface_timeout), so
that it is the configured 1 s that closed it."""


@dataclass
class Loris:
    """One slow connection: what it does and when the server closed it."""

    name: str
    attacker: Attacker | None = None
    closed_at: float | None = None


@pytest.mark.slow
async def test_slowloris(h2_server: H2ServerFactory, app: App) -> None:
    """Slowloris: connections that hold a slot while doing (almost) nothing.

    With preface_timeout, idle_timeout and header_timeout at 1 s, each of
    these is closed between 0.5 s and 8 s after it connects (before 10 s, the
    smallest of those timers' defaults, so the 1 s is what closed it): one that sends
    nothing; one that sends the preface a byte every 0.2 s; one that stops
    after the preface; one that only sends PINGs (no stream is ever open, so
    it is idle); one that sends a header block a byte every 0.2 s
    (CONTINUATION). Meanwhile a request that takes 2 s is not idle and
    completes, and the steady bystander's connection (a request every 100 ms)
    is never closed."""
    server = await start(h2_server, app, **config_with(
        preface_timeout=1, idle_timeout=1, header_timeout=1))
    host, port = server.host, server.port

    async def run(loris: Loris, started: float) -> None:
        name = loris.name
        handshake = name not in ("silent", "preface trickle")
        attacker = loris.attacker = await Attacker.connect(host, port, handshake=handshake)

        async def misbehave() -> None:
            if name == "preface trickle":
                for byte in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n":
                    if not await attacker.send(bytes([byte])):
                        return
                    await trio.sleep(0.2)
            elif name == "pings":
                for _ in range(50):
                    if not await attacker.send(ping(b"i'm here")):
                        return
                    await trio.sleep(0.2)
            elif name == "header trickle":
                await attacker.send(headers(1, b"\x82", end_headers=False))
                for byte in request_block()[1:]:
                    if not await attacker.send(continuation(1, bytes([byte]))):
                        return
                    await trio.sleep(0.2)
            await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(misbehave)
            with trio.move_on_after(LATEST + 1):
                await attacker.read_until(lambda e: e.closed or e.send_refused)
            if attacker.ending.closed or attacker.ending.send_refused:
                loris.closed_at = trio.current_time() - started
            nursery.cancel_scope.cancel()
        await attacker.aclose()

    names = ["silent", "preface trickle", "idle after preface", "pings", "header trickle"]
    lorises = [Loris(name) for name in names]
    async with watched(server, app):
        async def busy() -> None:
            async with open_h2_client(host, port) as client:
                response = await client.get("/sleep?2")
                assert response.status == 200

        with trio.fail_after(LATEST + 2):
            async with trio.open_nursery() as nursery:
                started = trio.current_time()
                for loris in lorises:
                    nursery.start_soon(run, loris, started)
                nursery.start_soon(busy)
        outcomes = {loris.name: (None if loris.closed_at is None
                                 else round(loris.closed_at, 1)) for loris in lorises}
        assert all(t is not None and 0.5 <= t <= LATEST for t in outcomes.values()), (
            f"seconds until each connection was closed (expected 0.5-{LATEST:g}): {outcomes}")


@pytest.mark.slow
async def test_slow_body_rudy(h2_server: H2ServerFactory, app: App) -> None:
    """R-U-Dead-Yet, slowloris for bodies: 10 uploads that announce 1 MB,
    send 10 bytes and then nothing, so their handlers wait in ``receive()``
    for ever and no idle timer runs (streams are open). With body_timeout=1,
    each stream is reset (any code) or answered, or the connection closed,
    within ENDING_LIMIT (far below the 60 s default), and the handlers are
    released. (nginx: client_body_timeout; Apache: mod_reqtimeout body. The
    fuzz test found this state.)"""
    server = await start(h2_server, app, **config_with(body_timeout=1))
    uploads = range(1, 21, 2)
    post = request_block("POST", "/echo", ("content-length", "1000000"))
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(b"".join(headers(s, post, end_stream=False) + data(s, b"x" * 10)
                                     for s in uploads))
        ending = attacker.ending
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(
                lambda e: e.closed or all(s in e.resets or s in e.statuses for s in uploads))
        given_up = {s for s in uploads if s in ending.resets or s in ending.statuses}
        assert ending.closed or given_up == set(uploads), (
            f"streams still waiting for their body: {sorted(set(uploads) - given_up)}; "
            f"{ending.describe()}")
        assert await handlers_finish(app), f"{app.running} handlers still running"
        await attacker.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("window", ["HTTP/2 window", "TCP window"])
async def test_slow_read_at_zero_window(h2_server: H2ServerFactory, app: App,
                                        window: str) -> None:
    """Slow read: a client asks for 4 MiB and never lets it through, by a
    zero HTTP/2 stream window or by never reading its socket (zero TCP
    window). With send_timeout=1, a response that makes no progress for 1 s is
    given up: the stream is reset (any code) or the connection closed, within
    ENDING_LIMIT (3 s of not reading for the TCP window), and the handler is
    released. Not by 4 MiB of DATA: it never gets it."""
    server = await start(h2_server, app, **config_with(send_timeout=1))
    async with watched(server, app) as watch:
        if window == "HTTP/2 window":
            attacker = await watch.connect(
                initial_settings=[(SettingCodes.INITIAL_WINDOW_SIZE, 0)])
        else:
            attacker = await watch.connect(
                rcvbuf=TINY_RCVBUF,
                initial_settings=[(SettingCodes.INITIAL_WINDOW_SIZE, MAX_WINDOW)])
            await attacker.send(window_update(0, MAX_WINDOW - 65535))
        await attacker.send(headers(1, request_block("GET", "/big")))
        ending = attacker.ending
        if window == "HTTP/2 window":
            with trio.move_on_after(ENDING_LIMIT):
                await attacker.read_until(lambda e: e.closed or 1 in e.resets)
        else:
            await trio.sleep(3)  # never reading, as the attack goes
            with trio.move_on_after(ENDING_LIMIT):
                # Now read: what the kernel holds, then the end; or the whole
                # response if the server never gave up.
                await attacker.read_until(lambda e: e.closed or 1 in e.ended_streams)
        given_up = 1 in ending.resets or ending.closed
        assert given_up and 1 not in ending.ended_streams, (
            f"{ending.data_bytes} of {BIG} bytes sent; {ending.describe()}")
        assert await handlers_finish(app), f"{app.running} handlers still running"
        await attacker.aclose()
