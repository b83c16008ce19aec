"""A chunked request body in tiny chunks (``_core.h1``): h11 turns each chunk
into an event, so its bytes cost far more than their count, in CPU per read
and in what the body buffer holds. The documented bounds must hold anyway."""

from __future__ import annotations

import tracemalloc

from trio_h2 import Config
from trio_h2._core.h1 import H1Core
from trio_h2._core.protocol import READ_SIZE

KiB = 1024
HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
ONE_BYTE = b"1\r\nx\r\n"


def test_an_unread_body_in_one_byte_chunks_holds_about_its_bytes() -> None:
    """docs/backpressure.rst: at most initial_window_size + 64 KiB of request
    input per HTTP/1.1 connection. One object per 1-byte chunk held 31 MiB."""
    config = Config()
    core = H1Core(config)
    core.initiate()
    assert core.receive_data(HEAD)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        while not core.reading_paused:
            core.receive_data(ONE_BYTE * (core.read_size // len(ONE_BYTE)))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert core.stats()["buffered_body_bytes"] >= config.initial_window_size
    assert held <= 2 * (config.initial_window_size + READ_SIZE), held


def test_a_chunked_body_is_read_and_parsed_as_an_http2_read_is() -> None:
    """hardening.rst, CPU per read: a read full of events is handed to the
    core in slices with a checkpoint between (``whole_reads`` False), and is
    no larger than :data:`READ_SIZE`: 256 KiB of 1-byte chunks is 43,690
    h11 events in one call."""
    core = H1Core(Config())
    core.initiate()
    assert core.receive_data(HEAD)
    core.receive_data(ONE_BYTE * 10)
    assert core.read_size == READ_SIZE
    assert not core.whole_reads
    core.receive_data(b"0\r\n\r\n")
    assert core.whole_reads  # a head, as before


def test_a_content_length_body_is_still_read_whole_and_large() -> None:
    core = H1Core(Config())
    core.initiate()
    assert core.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    assert core.read_size > READ_SIZE
    assert core.whole_reads
