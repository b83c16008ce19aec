"""Attacks through a dependency: inputs that are valid HTTP/2, cheap for the
client, and costly only because of how hpack (here) does its work on the
server's side. The frames are ordinary; the cost is in what the library
does with them, so only a test that watches the whole process sees it.

The harness, and the promises each test checks (bystanders served, memory
bounded, the attacker stopped), are in :mod:`tests.support.attack_harness`.
"""

from __future__ import annotations

import pytest
import trio
from h2.settings import SettingCodes

from tests.support.attack_harness import ENDING_LIMIT, App, start, watched
from tests.support.frames import headers, literal, split_block
from trio_h2.testing import H2ServerFactory

HEADER_TABLE_LIMIT = 4096
"""The most the server's HPACK encoder table may hold, whatever the client
announces (nghttp2's max_deflate_dynamic_table_size and Go's
maxEncoderHeaderTableSize are both 4096)."""


@pytest.fixture
def app() -> App:
    return App()


def echo_block(value: bytes) -> bytes:
    """A GET of ``/header?value`` (the app answers with ``x-echo: value``),
    every field a literal that is not indexed and not Huffman-coded: cheap
    for the attacker to build, and valid in any order on any stream."""
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"),
              (b":path", b"/header?" + value)]
    return b"".join(literal(name, value) for name, value in fields)


async def test_long_response_header_values_cost_linear_time(h2_server: H2ServerFactory,
                                                            app: App) -> None:
    """hpack's Huffman encoder builds one big integer, shifting it once per
    byte: quadratic in the value's length, 0.65 s of CPU for a 64 KB value,
    spent in one synchronous call on the event loop. An app that puts a
    request's data into a response header (a redirect's Location holding the
    path, here ``x-echo``) let one connection of 60 requests of 60 KB stop the
    whole process for about 40 s. A linear encoder takes 5 ms per value."""
    server = await start(h2_server, app)
    value = b"v" * 60_000  # under max_header_list_size (64 KiB) with the rest
    streams = range(1, 121, 2)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        # Reading meanwhile: 1.8 MB of answers would fill our socket buffer.
        await attacker.flood((split_block(s, echo_block(value)) for s in streams),
                             seconds=ENDING_LIMIT * 3, reading=True)
        ending = attacker.ending
        with trio.move_on_after(ENDING_LIMIT * 3):
            await attacker.read_until(lambda e: e.closed or set(streams) <= e.ended_streams)
        assert {s: ending.statuses.get(s) for s in streams} == dict.fromkeys(streams, 200), (
            ending.describe())
        assert all((b"x-echo", value) in ending.fields[s] for s in streams)


async def test_the_hpack_table_stays_small_whatever_the_client_allows(
        h2_server: H2ServerFactory, app: App) -> None:
    """SETTINGS_HEADER_TABLE_SIZE is the most the client's decoder accepts;
    RFC 7541 section 4.2 lets the encoder use less. h2 sized the server's
    encoder table to whatever the client announced, up to 2^32-1, and every
    distinct response field (a date, a content-length, a Location, a cookie)
    is indexed into it and never evicted: a connection could keep 4 GiB of
    response headers, and hpack searches the table linearly for every field
    it encodes. The client's decoder mirrors the server's table, so its size
    is seen on the wire."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect(
            initial_settings=[(SettingCodes.HEADER_TABLE_SIZE, 2**32 - 1)])
        streams = range(1, 41, 2)
        await attacker.send(b"".join(headers(s, echo_block(b"%05d" % s + b"v" * 1000))
                                     for s in streams))
        with trio.move_on_after(ENDING_LIMIT):
            await attacker.read_until(lambda e: e.closed or set(streams) <= e.ended_streams)
        assert set(streams) <= attacker.ending.ended_streams, attacker.ending.describe()
        table = attacker.decoder.header_table
        held = sum(32 + len(name) + len(value) for name, value in table.dynamic_entries)
        assert table.maxsize <= HEADER_TABLE_LIMIT and held <= HEADER_TABLE_LIMIT, (
            f"the server's HPACK table may hold {table.maxsize} bytes and holds {held}")
