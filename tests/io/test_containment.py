"""Containment: a failure stays where it happened. An exception from h2,
from the priority package or from the socket ends only that connection; one
from the app ends only that stream; HPACK state stays in step with the peer's
decoder (or the connection ends); and each connection closed for abuse is
logged in one line.

The harness, and the promises each test checks (bystanders served, memory
bounded, the attacker stopped), are in :mod:`tests.support.attack_harness`.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from itertools import repeat
from typing import Any

import h2.connection
import hpack
import priority.priority
import pytest
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from tests.support.attack_client import TINY_RCVBUF, Attacker
from tests.support.attack_harness import (
    BASE_EXCEPTIONS,
    BYSTANDER_LIMIT,
    CALM,
    ENDING_LIMIT,
    FLOOD_LIMIT,
    SEND_TIMEOUT,
    SETTINGS_FLOOD,
    App,
    assert_stopped,
    config_with,
    start,
    still_serves,
    watched,
)
from tests.support.frames import headers, literal, ping, rst_stream, settings, split_block
from tests.support.frames import priority as priority_frame
from tests.support.requests import request_block
from tests.support.tasks import tasks_left
from trio_h2.testing import H2ServerFactory, H2TestServer, open_h2_client


@pytest.fixture
def app() -> App:
    return App()


# ------------------------------------------------------------- containment


async def test_an_exception_in_h2_ends_only_that_connection(
        h2_server: H2ServerFactory, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in h2 (here: receive_data raises RuntimeError when it sees a
    marker PING) ends that connection, with GOAWAY INTERNAL_ERROR, and
    nothing else."""
    real = h2.connection.H2Connection.receive_data

    def receive_data(self: h2.connection.H2Connection, data: bytes) -> Any:
        if not self.config.client_side and b"kaboom!!" in data:
            raise RuntimeError("injected failure in h2")
        return real(self, data)

    monkeypatch.setattr(h2.connection.H2Connection, "receive_data", receive_data)
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(ping(b"kaboom!!"))
        ending = await attacker.finish(ENDING_LIMIT)
        assert_stopped(ending, ErrorCodes.INTERNAL_ERROR, what="h2 raised")


async def test_an_exception_in_priority_ends_only_that_connection(
        h2_server: H2ServerFactory, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the priority package (PriorityTree.insert_stream raises for
    one stream id, which only the attacker uses) ends that connection, with
    GOAWAY INTERNAL_ERROR, and nothing else."""
    doomed = 2**31 - 1
    real = priority.priority.PriorityTree.insert_stream

    def insert_stream(self: Any, stream_id: int, *args: Any, **kwargs: Any) -> Any:
        if stream_id == doomed:
            raise RuntimeError("injected failure in priority")
        return real(self, stream_id, *args, **kwargs)

    monkeypatch.setattr(priority.priority.PriorityTree, "insert_stream", insert_stream)
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        # A PRIORITY frame with an exclusive dependency makes the server use
        # the package's tree (a flat connection schedules without it); it is
        # built when the sender must choose between two streams with data.
        exclusive_on_root = priority_frame(1, depends_on=0, weight=16, exclusive=True)
        await attacker.send(exclusive_on_root + headers(3, request_block("GET", "/big"))
                            + headers(doomed, request_block("GET", "/big")))
        ending = await attacker.finish(ENDING_LIMIT)
        assert_stopped(ending, ErrorCodes.INTERNAL_ERROR, what="priority raised")


async def test_an_exception_in_the_app_ends_only_that_stream(
        h2_server: H2ServerFactory, app: App) -> None:
    """The app raising is the app's failure on one stream: 500, and the
    connection goes on."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(headers(1, request_block("GET", "/raise")))
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or 1 in e.ended_streams)
        assert attacker.ending.statuses.get(1) == 500, attacker.ending.describe()
        assert await still_serves(attacker, 3), attacker.ending.describe()


@pytest.mark.parametrize("name", sorted(BASE_EXCEPTIONS))
async def test_a_base_exception_from_the_app_ends_only_that_stream(
        h2_server: H2ServerFactory, app: App, name: str) -> None:
    """The app raising a BaseException that is not an Exception (asyncio's
    CancelledError from a library written for asyncio, SystemExit, a
    library's own) is still the app's failure on one stream: 500, and the
    connection and the server go on. It used to go past every ``except
    Exception`` and end the whole server (uvicorn contains these too)."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(headers(1, request_block("GET", f"/raise-base?{name}")))
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or 1 in e.ended_streams)
        assert attacker.ending.statuses.get(1) == 500, attacker.ending.describe()
        assert await still_serves(attacker, 3), attacker.ending.describe()


async def test_a_failing_socket_ends_only_that_connection(
        h2_server: H2ServerFactory, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write raising OSError (EIO, not a clean reset) on the attacker's
    connection closes that connection, and nothing else. The sender writes
    with ``os.writev`` first and ``send_all`` for what the kernel did not
    take: both fail."""
    real_send_all, real_writev = trio.SocketStream.send_all, os.writev
    doomed: list[tuple[int, int]] = []

    async def send_all(self: trio.SocketStream, data: Any) -> None:
        if (self.socket.getsockname()[1], self.socket.getpeername()[1]) in doomed:
            raise OSError(errno.EIO, "injected I/O error")
        await real_send_all(self, data)

    def writev(fd: int, buffers: Any) -> int:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # not a socket
            return real_writev(fd, buffers)
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and \
                    (sock.getsockname()[1], sock.getpeername()[1]) in doomed:
                raise OSError(errno.EIO, "injected I/O error")
        finally:
            sock.detach()
        return real_writev(fd, buffers)

    monkeypatch.setattr(trio.SocketStream, "send_all", send_all)
    monkeypatch.setattr(os, "writev", writev)
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        doomed.append((server.port, attacker.local_port))
        await attacker.send(headers(1, request_block()))
        ending = await attacker.finish(ENDING_LIMIT)
        assert ending.closed and 1 not in ending.statuses, ending.describe()


# -------------------------------------------------------------------- HPACK


async def test_a_bad_header_from_the_app_keeps_hpack_in_step(
        h2_server: H2ServerFactory, app: App) -> None:
    """A header value with a newline from the app is refused before h2 (and
    its HPACK encoder) sees it: 500 for that stream, and later responses with
    new literal headers still decode to what the app sent."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(headers(1, request_block("GET", "/bad-header")))
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or 1 in e.ended_streams)
        ending = attacker.ending
        assert ending.statuses.get(1) == 500, ending.describe()
        for stream_id, value in [(3, "first-new-literal"), (5, "second-new-literal")]:
            await attacker.send(headers(stream_id, request_block("GET", f"/header?{value}")))
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or {3, 5} <= e.ended_streams)
        assert ending.statuses.get(3) == ending.statuses.get(5) == 200, ending.describe()
        assert (b"x-echo", b"first-new-literal") in ending.fields[3]
        assert (b"x-echo", b"second-new-literal") in ending.fields[5]
        assert not ending.malformed and ending.goaway is None, ending.describe()


async def test_h2_failing_after_encoding_headers_ends_the_connection(
        h2_server: H2ServerFactory, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """If sending a header block fails after the HPACK encoder has changed
    (here: right after the real encoding, whether h2's send_headers or
    trio_h2's fast path called it), no later header block can be trusted to
    decode: the connection must end with GOAWAY, not only the stream."""
    real = hpack.Encoder.encode

    def encode(self: hpack.Encoder, headers: Any, *args: Any, **kwargs: Any) -> bytes:
        block = real(self, headers, *args, **kwargs)
        if any(n == b"x-explode" for n, _ in headers):
            raise RuntimeError("injected failure after HPACK encoding")
        return block

    monkeypatch.setattr(hpack.Encoder, "encode", encode)
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await attacker.send(headers(1, request_block("GET", "/explode")))
        ending = await attacker.finish(ENDING_LIMIT)
        assert ending.goaway is not None and ending.closed, ending.describe()
        assert_stopped(ending, ErrorCodes.INTERNAL_ERROR, ErrorCodes.COMPRESSION_ERROR,
                       what="h2 raised after encoding a header block")


# ----------------------------------------------------------------- logging


async def hpack_bomb(server: H2TestServer, app: App) -> Attacker:
    attacker = await Attacker.connect(server.host, server.port)
    bomb = literal(b"a", b"", indexed=True) + b"\xbe" * 100_000
    await attacker.send(split_block(1, request_block() + bomb))
    return attacker


async def settings_flood(server: H2TestServer, app: App) -> Attacker:
    attacker = await Attacker.connect(server.host, server.port)
    frame = settings([(SettingCodes.ENABLE_PUSH, 0)])
    await attacker.flood(repeat(frame, SETTINGS_FLOOD), seconds=FLOOD_LIMIT, reading=True)
    return attacker


async def silent_settings_flood(server: H2TestServer, app: App) -> Attacker:
    """A SETTINGS flood that never reads: a budget and send_timeout may both
    apply to it, and still one line must be logged."""
    attacker = await Attacker.connect(server.host, server.port, rcvbuf=TINY_RCVBUF)
    frame = settings([(SettingCodes.ENABLE_PUSH, 0)])
    await attacker.flood(repeat(frame, SETTINGS_FLOOD), seconds=FLOOD_LIMIT)
    await trio.sleep(SEND_TIMEOUT + 1)
    return attacker


async def rapid_reset(server: H2TestServer, app: App) -> Attacker:
    attacker = await Attacker.connect(server.host, server.port)
    slow = request_block("GET", "/slow")
    await attacker.flood((headers(s, slow) + rst_stream(s) for s in range(1, 40_000, 2)),
                         seconds=FLOOD_LIMIT)
    return attacker


async def header_trickle(server: H2TestServer, app: App) -> Attacker:
    attacker = await Attacker.connect(server.host, server.port)
    await attacker.send(headers(1, request_block()[:2], end_headers=False))
    return attacker  # and nothing more: header_timeout (1 s) ends it


@pytest.mark.parametrize(
    "attack", [hpack_bomb, settings_flood,
               pytest.param(silent_settings_flood, marks=pytest.mark.slow),
               rapid_reset, header_trickle],
    ids=lambda f: f.__name__.replace("_", " "))
async def test_one_log_line_per_connection_closed_for_abuse(
        h2_server: H2ServerFactory, app: App, caplog: pytest.LogCaptureFixture,
        attack: Callable[[H2TestServer, App], Awaitable[Attacker]]) -> None:
    """Each connection closed for abuse is logged once, at WARNING or above,
    with the peer's address and the reason; well-behaved connections around
    it log nothing at that level."""
    config = {header_trickle: config_with(header_timeout=1),
              silent_settings_flood: config_with(send_timeout=SEND_TIMEOUT)}.get(attack, {})
    server = await start(h2_server, app, **config)
    caplog.set_level(logging.INFO, logger="trio_h2")
    # The steps' own bounds, added up: the attack (a flood, then send_timeout
    # and a second), its ending and the settling (ENDING_LIMIT each), two
    # bystander requests, and ENDING_LIMIT more for connecting.
    with trio.fail_after(FLOOD_LIMIT + SEND_TIMEOUT + 1 + 3 * ENDING_LIMIT + 2 * BYSTANDER_LIMIT):
        async with open_h2_client(server.host, server.port) as bystander:
            assert (await bystander.get("/")).status == 200
            attacker = await attack(server, app)
            try:
                ending = await attacker.finish(ENDING_LIMIT + 1)
                assert (await bystander.get("/")).status == 200
            finally:
                await attacker.aclose()
        assert_stopped(ending, CALM, what=attack.__name__)
        await tasks_left(ENDING_LIMIT)  # the server is done with the closed connections
    loud = [r for r in caplog.records if r.name.startswith("trio_h2")
            and r.levelno >= logging.WARNING]
    about = [r.getMessage() for r in loud if attacker.peer in r.getMessage()]
    shown = [(r.levelname, r.getMessage()[:200]) for r in loud][:10]
    assert len(about) == 1, (f"expected one WARNING line naming {attacker.peer}; "
                             f"trio_h2 logged at WARNING and above: {shown}")
    reason = about[0].replace(attacker.peer, "").strip(" :-")
    assert len(reason) >= 8, f"no reason given: {about[0]!r}"
    assert len(loud) == 1, f"other WARNING lines: {[r.getMessage() for r in loud]}"
