"""Header-count bombs (issue 11): per request, per connection, per server.

``max_header_list_size`` counts 32 bytes a field, but Python holds 150 to 430
bytes for each (``trio_h2._core.headers.FIELD_COST``). So the count of fields is
bounded while HPACK decoding (``max_header_fields``: 431, trailers RST_STREAM
ENHANCE_YOUR_CALM), and the header memory of requests in progress is bounded
for the whole server (``max_header_memory``: REFUSED_STREAM).

The memory tests run the server in a separate process, so that its RSS is
its own, and attack it from this one over sockets.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

import trio_h2
from tests.support.attack_client import Attacker, Ending
from tests.support.attack_harness import (
    CALM,
    ENDING_LIMIT,
    App,
    MiB,
    handlers_finish,
    start,
    still_serves,
)
from tests.support.frames import data, headers, literal, split_block
from tests.support.frames import goaway as goaway_frame
from tests.support.h1raw import RawClient
from tests.support.processes import environment
from tests.support.rawh2 import H2Client
from tests.support.requests import request, request_block
from trio_h2.testing import H2ServerFactory, open_h2_client

LIMIT = 16
"""max_header_fields of the wire tests: four pseudo-headers and twelve more."""


@pytest.fixture
def app() -> App:
    return App()


def request_with(count: int, path: str = "/", *, indexed: bytes = b"") -> bytes:
    """A request header block of ``count`` fields in all; ``indexed`` (a
    field added to the HPACK table) goes last."""
    extra = [(f"x-f{i}", "v") for i in range(count - 4 - (1 if indexed else 0))]
    return request_block("GET", path, *extra) + indexed


def trailers_with(count: int) -> bytes:
    return b"".join(literal(b"x-t%d" % i, b"1") for i in range(count))


# ------------------------------------------------------------ on the wire


async def test_request_over_max_header_fields_gets_431_and_hpack_stays_in_step(
        h2_server: H2ServerFactory, app: App) -> None:
    """At the limit: served. One field more: ``431`` (RFC 9113 section
    10.5.1) and the connection goes on. The field past the limit was added to
    the HPACK table, and the next request refers to it by index: had the
    server not decoded it (out of step with the client's encoder), index 62
    would not exist and the connection would end with COMPRESSION_ERROR."""
    server = await start(h2_server, app, max_header_fields=LIMIT)
    attacker = await Attacker.connect(server.host, server.port)
    try:
        probe = literal(b"x-probe", b"42", indexed=True)
        await attacker.send(headers(1, request_with(LIMIT, "/sleep?0"))
                            + headers(3, request_with(LIMIT + 1, "/sleep?0", indexed=probe))
                            + headers(5, request_block("GET", "/sleep?0") + b"\xbe"))
        ending = attacker.ending
        with trio.fail_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or {1, 3, 5} <= e.ended_streams)
        assert ending.statuses == {1: 200, 3: 431, 5: 200}, ending.describe()
        assert not ending.resets and ending.goaway is None, ending.describe()
        assert app.started == 2, "the 431 request reached the app"
    finally:
        await attacker.aclose()


async def test_431_before_the_request_ends_resets_it_with_no_error(
        h2_server: H2ServerFactory, app: App) -> None:
    """An over-limit request whose body is still coming: ``431`` with
    END_STREAM, then RST_STREAM NO_ERROR (RFC 9113 section 8.1)."""
    server = await start(h2_server, app, max_header_fields=LIMIT)
    attacker = await Attacker.connect(server.host, server.port)
    try:
        await attacker.send(headers(1, request_with(LIMIT + 1, "/echo"), end_stream=False))
        with trio.fail_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or 1 in e.resets)
        ending = attacker.ending
        assert ending.statuses.get(1) == 431 and 1 in ending.ended_streams, ending.describe()
        assert ending.resets[1] == ErrorCodes.NO_ERROR, ending.describe()
        assert await still_serves(attacker, 3), ending.describe()
    finally:
        await attacker.aclose()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_431_says_what_was_wrong_as_http11_does(
        h2_server: H2ServerFactory, app: App, method: str) -> None:
    """The 431 carries the plain-text body HTTP/1.1's error responses have
    (one function makes both): what the limit is and how far past it the
    request went. HEAD gets its fields, no body (RFC 9110 section 9.3.2)."""
    server = await start(h2_server, app, max_header_fields=LIMIT)
    client = await H2Client.connect(server.host, server.port)
    extra = [(f"x-f{i}", "v") for i in range(LIMIT - 3)]
    await client.send_headers(1, request(method, "/", *extra, authority="x"), end_stream=True)
    response = await client.read_response(1)
    text = f"431 Request Header Fields Too Large: {LIMIT + 1} header fields, over " \
           f"max_header_fields {LIMIT}\n".encode()
    fields = dict(response.headers)
    assert response.status == 431
    assert fields[b"content-type"] == b"text/plain; charset=utf-8"
    assert fields[b"content-length"] == str(len(text)).encode()
    assert response.body == (text if method == "GET" else b"")
    await client.aclose()
    h1 = await RawClient.connect(server.host, server.port)
    await h1.send(f"{method} / HTTP/1.1\r\nHost: x\r\n".encode()
                  + b"".join(b"x-f%d: v\r\n" % i for i in range(LIMIT)) + b"\r\n")
    answer = await h1.response(method.encode())
    assert answer.status == 431 and answer.body == response.body
    assert answer.headers[b"content-length"] == fields[b"content-length"]
    await h1.aclose()


@pytest.mark.parametrize("count", [LIMIT, LIMIT + 1])
async def test_trailers_over_max_header_fields_reset_the_stream(
        h2_server: H2ServerFactory, app: App, count: int) -> None:
    """Trailers count the same: at the limit the upload is echoed; one more
    and the stream is reset with ENHANCE_YOUR_CALM (the response may have
    started: no status can be given), the connection goes on."""
    server = await start(h2_server, app, max_header_fields=LIMIT)
    attacker = await Attacker.connect(server.host, server.port)
    try:
        await attacker.send(headers(1, request_block("POST", "/echo"), end_stream=False)
                            + data(1, b"abc") + headers(1, trailers_with(count)))
        with trio.fail_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or 1 in e.resets or 1 in e.ended_streams)
        ending = attacker.ending
        if count <= LIMIT:
            assert ending.statuses.get(1) == 200 and ending.data_bytes == 3, ending.describe()
            assert 1 not in ending.resets, ending.describe()
        else:
            assert ending.resets.get(1) == CALM, ending.describe()
        assert await still_serves(attacker, 3), ending.describe()
    finally:
        await attacker.aclose()


@pytest.mark.parametrize("kind", ["over max_header_fields", "malformed"])
async def test_refused_request_then_goaway_in_the_same_read(
        h2_server: H2ServerFactory, app: App, kind: str) -> None:
    """A refused request and the client's GOAWAY in one read: h2 has closed
    the connection by the time the request is seen, so no answer can be
    sent, and none is tried (h2 would raise: GOAWAY INTERNAL_ERROR)."""
    server = await start(h2_server, app, max_header_fields=LIMIT)
    attacker = await Attacker.connect(server.host, server.port)
    try:
        block = (request_with(LIMIT + 1) if kind != "malformed"
                 else request_block("GET", "/", ("Bad-Name", "x")))
        await attacker.send(headers(1, block) + goaway_frame(0))
        ending = await attacker.finish(ENDING_LIMIT)
        assert ending.closed and ending.goaway in (None, ErrorCodes.NO_ERROR), ending.describe()
    finally:
        await attacker.aclose()


async def test_over_limit_requests_in_a_row_draw_on_the_reset_budget(
        h2_server: H2ServerFactory, app: App) -> None:
    """Each over-limit request costs the server a whole block's decoding and
    gets nothing done: like a malformed one, it draws on reset_budget. 40 in
    a row against a budget of 20: about 20 ``431`` answers, then GOAWAY
    ENHANCE_YOUR_CALM."""
    server = await start(h2_server, app, max_header_fields=LIMIT,
                         reset_budget=trio_h2.Budget(20, 0.0))
    attacker = await Attacker.connect(server.host, server.port)
    try:
        over = request_with(LIMIT + 1)
        await attacker.send(b"".join(headers(s, over) for s in range(1, 81, 2)))
        ending = await attacker.finish(ENDING_LIMIT)
        answered = [s for s, status in ending.statuses.items() if status == 431]
        assert ending.stopped(CALM) and ending.goaway == CALM, ending.describe()
        assert 20 <= len(answered) <= 21, ending.describe()
        assert set(ending.statuses.values()) == {431}, ending.describe()
    finally:
        await attacker.aclose()


async def test_max_header_memory_refuses_streams_and_spares_light_connections(
        h2_server: H2ServerFactory, app: App, caplog: pytest.LogCaptureFixture) -> None:
    """With a server-wide header memory of 1 byte, a connection still holds
    up to 64 KiB (the floor): three requests of 40 fields with 200-byte
    values (18 KiB each at Python's cost) run, the fourth is refused with
    REFUSED_STREAM and one WARNING line. Another connection is served
    meanwhile, and once the three handlers return, the first is served
    again."""
    server = await start(h2_server, app, max_header_memory=1)
    caplog.set_level(logging.DEBUG, logger="trio_h2")
    heavy = request_block("GET", "/slow", *[(f"x-f{i}", "v" * 200) for i in range(40)])
    attacker = await Attacker.connect(server.host, server.port)
    try:
        await attacker.send(b"".join(split_block(s, heavy) for s in (1, 3, 5, 7, 9)))
        ending = attacker.ending
        with trio.fail_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or {7, 9} <= set(e.resets))
        assert ending.resets == {7: ErrorCodes.REFUSED_STREAM, 9: ErrorCodes.REFUSED_STREAM}
        async with open_h2_client(server.host, server.port) as bystander:
            with trio.fail_after(10):
                assert (await bystander.get("/")).status == 200
        app.release.set()
        assert await handlers_finish(app) and app.started == 3
        await attacker.send(b"".join(split_block(s, heavy) for s in (11, 13, 15)))
        with trio.fail_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or {11, 13, 15} <= e.ended_streams)
        assert [ending.statuses.get(s) for s in (11, 13, 15)] == [200] * 3, ending.describe()
    finally:
        await attacker.aclose()
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and "max_header_memory" in r.getMessage()]
    assert len(warnings) == 1, warnings


# ------------------------------------------- a server in its own process

SERVER = """
import functools
import sys

import trio
import trio_h2


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    # "/" answers at once; anything else is held by the client's zero window.
    body = b"ok" if scope["path"] == "/" else b"held"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def main():
    config = trio_h2.Config(lifespan="off", send_timeout=600, idle_timeout=600)
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(functools.partial(
            trio_h2.serve, app, host="127.0.0.1", port=0, config=config))
        print(addresses[0][1], flush=True)


trio.run(main)
"""

CONNECTIONS = 8
STREAMS = 100  # Config().max_concurrent_streams
MEMORY_LIMIT = 50 * MiB


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    port: int

    def status_kib(self, key: str) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {key} for the server process")

    def reset_peak(self) -> int:
        """Reset the peak RSS to the current RSS (Linux 4.0+) and return it, in bytes."""
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return self.status_kib("VmRSS") * 1024

    def peak(self) -> int:
        return self.status_kib("VmHWM") * 1024


@contextmanager
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads the server's RSS from /proc")
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(SERVER))
    env = environment(tmp_path)  # this checkout's trio_h2
    process = subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip().isdigit(), f"the server did not start: {line!r}"
        yield ServerProcess(process, int(line))
    finally:
        process.kill()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()


@asynccontextmanager
async def attackers(port: int) -> AsyncIterator[list[Attacker]]:
    """CONNECTIONS connections that announce a zero stream window: no
    response body can be sent, so no request completes."""
    opened: list[Attacker] = []
    try:
        for _ in range(CONNECTIONS):
            opened.append(await Attacker.connect(
                "127.0.0.1", port, initial_settings=[(SettingCodes.INITIAL_WINDOW_SIZE, 0)]))
        yield opened
    finally:
        for attacker in opened:
            await attacker.aclose()


def reference_bomb(stream_id: int) -> bytes:
    """The audit's request: one empty HPACK table entry (``a:``), then 1950
    one-byte references to it: 33 bytes a field by the RFC's count, under
    max_header_list_size (64 KiB)."""
    entry = literal(b"a", b"", indexed=True) if stream_id == 1 else b""
    return headers(stream_id, request_block("GET", "/hold") + entry + b"\xbe" * 1950)


def value_bomb(stream_id: int) -> bytes:
    """A request within every per-request limit: 100 fields (max_header_fields
    is 256) of 560-byte values, 60 KB by the RFC's count (64 KiB allowed),
    79 KB at Python's cost."""
    fields = [(f"x-f{i}", f"{stream_id:08}" + "v" * 552) for i in range(96)]
    return split_block(stream_id, request_block("GET", "/hold", *fields))


@pytest.mark.parametrize("bomb", [reference_bomb, value_bomb],
                         ids=["2000 references a request", "100 fields of 560 bytes"])
async def test_header_memory_across_connections_in_a_separate_process(
        tmp_path: Path, bomb: Callable[[int], bytes]) -> None:
    """8 connections x 100 streams at a zero window, each request holding as
    many header fields as it can: the server's peak RSS grows by less than
    50 MiB, and a bystander is served while they hold. Each stream is
    answered: ``431`` (too many fields), REFUSED_STREAM (the server's header
    memory is full), or ``200`` whose body waits for a window.

    The audit saw +130 MiB for the first on an unbounded server; the second
    fits every per-request and per-connection limit and only the server-wide
    ``max_header_memory`` bounds it (63 MB without it)."""
    assert trio_h2.Config().max_concurrent_streams == STREAMS
    with server_process(tmp_path) as server:
        async with attackers(server.port) as conns:
            before = server.reset_peak()
            stream_ids = range(1, 2 * STREAMS, 2)
            for attacker in conns:
                await attacker.send(b"".join(bomb(s) for s in stream_ids))

            def answered(e: Ending) -> bool:
                return e.closed or all(s in e.statuses or s in e.resets for s in stream_ids)

            with trio.fail_after(60):  # 800 blocks on a loaded 2-core machine
                for attacker in conns:
                    await attacker.read_until(answered)
            async with open_h2_client("127.0.0.1", server.port) as bystander:
                with trio.fail_after(10):
                    assert (await bystander.get("/")).status == 200
            growth = server.peak() - before
        outcomes: dict[str, int] = {}
        for attacker in conns:
            ending = attacker.ending
            assert not ending.closed and not ending.malformed, ending.describe()
            for s in stream_ids:
                what = (f"RST_STREAM {ErrorCodes(ending.resets[s]).name}" if s in ending.resets
                        else f"{ending.statuses[s]}")
                outcomes[what] = outcomes.get(what, 0) + 1
    print(f"server peak RSS grew by {growth / MiB:.1f} MiB; streams: {outcomes}")
    assert growth < MEMORY_LIMIT, (
        f"the server's peak RSS grew by {growth / MiB:.1f} MiB (limit "
        f"{MEMORY_LIMIT // MiB} MiB); streams: {outcomes}")
