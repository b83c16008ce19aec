"""Request body pieces as the cores store them (``_core.exchange.add_body``):
small pieces joined as they arrive, their flow-control credit summed, so that
a body in 1-byte pieces holds about its bytes. HTTP/1.1 chunks are
``tests/core/test_h1_chunked_body.py``'s; the server over a socket is
``tests/attacks/test_body_pieces.py``'s."""

from __future__ import annotations

import tracemalloc

from tests.support.requests import POST, h1_request
from tests.support.sansio import Pair
from trio_h2 import Config
from trio_h2._core.exchange import JOIN_BELOW
from trio_h2._core.h1 import H1Core

WINDOW = 65535


def test_small_frames_are_joined_and_their_padding_is_credited() -> None:
    """10,000 DATA frames of 1 byte, each padded by 4 (6 bytes of window
    each): the stream holds three pieces (pages), and taking the body
    returns every byte and the whole credit, padding included (RFC 9113
    section 6.9)."""
    pair = Pair(Config(initial_window_size=WINDOW))
    stream = pair.request(POST, end_stream=False)
    for i in range(10_000):
        pair.client.send_data(stream.stream_id, b"%d" % (i % 10), pad_length=4)
    pair.pump()
    assert pair.client.local_flow_control_window(stream.stream_id) == WINDOW - 60_000
    assert [len(piece) for piece, _ in stream.body] == [JOIN_BELOW, JOIN_BELOW, 10_000 - 8192]
    assert sum(flow for _, flow in stream.body) == 60_000
    assert pair.server.take_body(stream) == b"0123456789" * 1000
    pair.pump()
    assert pair.client.local_flow_control_window(stream.stream_id) == WINDOW


def test_pieces_of_a_page_are_kept_as_they_came() -> None:
    """A frame of :data:`JOIN_BELOW` bytes or more is never copied into
    another; the small frames between two of them are joined."""
    pair = Pair(Config(initial_window_size=WINDOW))
    stream = pair.request(POST, end_stream=False)
    page = b"p" * JOIN_BELOW
    for payload in (page, b"a", b"b", page, b"c"):
        pair.client.send_data(stream.stream_id, payload)
    pair.pump()
    assert [(bytes(piece), flow) for piece, flow in stream.body] == [
        (page, JOIN_BELOW), (b"ab", 2), (page, JOIN_BELOW), (b"c", 1)]
    assert pair.server.take_body(stream) == page + b"ab" + page + b"c"


def test_a_lone_frame_reaches_the_application_uncopied() -> None:
    pair = Pair(Config(initial_window_size=WINDOW))
    stream = pair.request(POST, end_stream=False)
    pair.client.send_data(stream.stream_id, b"z" * 100)
    pair.pump()
    [(piece, flow)] = stream.body
    assert type(piece) is bytes and flow == 100
    assert pair.server.take_body(stream) is piece


def test_a_websocket_tunnel_in_one_byte_reads_holds_about_its_bytes() -> None:
    """A WebSocket over HTTP/1.1 (``_core.tunnel``): a client that trickles
    its bytes makes each read one byte. The tunnel holds at most
    initial_window_size of them unread (docs/backpressure.rst), in about as
    many bytes: one object per read held 16 MiB."""
    config = Config()
    core = H1Core(config)
    core.initiate()
    [stream] = core.receive_data(h1_request(
        "GET", "/ws", ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")))
    core.send_headers(stream, [(b":status", b"200")], end_stream=False)
    tunnel = core.successor
    assert tunnel is not None
    tunnel.receive_buffered()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        while not tunnel.reading_paused:
            tunnel.receive_data(b"w")
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert tunnel.take_body(stream) == b"w" * config.initial_window_size
    assert held <= 2 * config.initial_window_size, held
