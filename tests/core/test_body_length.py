"""A request body that disagrees with its content-length, in the sans-IO core.

RFC 9113 section 8.1.1: the request is malformed, a stream error of type
PROTOCOL_ERROR. h2 raises InvalidBodyLengthError for DATA short of the
length at END_STREAM, or past it; the stream alone is reset, its handler
sees a disconnect, the connection and its other streams go on, and the
connection window gets the dropped DATA's credit back.
"""

from __future__ import annotations

import logging

import h2.events
import h2.stream
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import RstStreamFrame

from tests.support.requests import GET, request
from tests.support.sansio import Pair, parse_frames, received
from trio_h2 import Config
from trio_h2._core.h2internals import HookMissing, check_hooks


def resets(events: list[h2.events.Event]) -> dict[int, int]:
    return {e.stream_id: e.error_code for e in events if isinstance(e, h2.events.StreamReset)}


def assert_connection_goes_on(pair: Pair) -> None:
    assert pair.server.error is None and not pair.server.terminated
    assert not [e for e in pair.events if isinstance(e, h2.events.ConnectionTerminated)]
    stream = pair.request(GET)
    pair.respond(stream, b"still here")
    pair.drain_output()
    assert received(pair.events, stream.stream_id) == b"still here"


def post(length: int) -> list[tuple[bytes, bytes]]:
    return request("POST", "/", ("content-length", str(length)))


# Each: the declared length, then the DATA frames (payload, END_STREAM) sent.
BODIES = {
    "ended short": (10, [(b"12345", True)]),
    "ended short after a piece": (10, [(b"123", False), (b"45", True)]),
    "ended short by an empty DATA": (10, [(b"12345", False), (b"", True)]),
    "past the length": (5, [(b"1234567890", False)]),
    "past the length with END_STREAM": (5, [(b"1234567890", True)]),
    "past the length in a second frame": (5, [(b"123", False), (b"4567", False)]),
    "a body where none was declared": (0, [(b"x", True)]),
}


@pytest.mark.parametrize(("length", "frames"), BODIES.values(), ids=BODIES.keys())
def test_body_length_mismatch_resets_only_that_stream(
        length: int, frames: list[tuple[bytes, bool]], caplog: pytest.LogCaptureFixture) -> None:
    pair = Pair()
    stream = pair.request(post(length), end_stream=False)
    caplog.set_level(logging.DEBUG, "trio_h2")
    for payload, end_stream in frames:
        pair.client.send_data(stream.stream_id, payload, end_stream=end_stream)
    pair.pump()
    assert resets(pair.events) == {stream.stream_id: ErrorCodes.PROTOCOL_ERROR}
    # The handler sees a disconnect, never a body it could take as whole.
    assert stream.closed and stream.disconnected and not stream.body_ended
    assert not stream.body
    assert stream.stream_id not in pair.server.streams
    lines = [r for r in caplog.records if f"stream {stream.stream_id}" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO, lines
    assert f"content-length {length}" in lines[0].getMessage()
    assert_connection_goes_on(pair)


@pytest.mark.parametrize("answered_first", [False, True],
                         ids=["response pending", "response complete"])
def test_trailers_ending_the_body_short_reset_the_stream(answered_first: bool) -> None:
    # h2 checks content-length only on DATA; trailers end the body too.
    pair = Pair()
    stream = pair.request(post(10), end_stream=False)
    pair.client.send_data(stream.stream_id, b"12345")
    pair.pump()
    if answered_first:
        pair.respond(stream, b"early")
        pair.drain_output()
        assert stream.response_ended and not stream.closed
    pair.client.send_headers(stream.stream_id, [(b"x-checksum", b"1")], end_stream=True)
    # Read on the wire: once both sides have sent END_STREAM, the client's h2
    # drops a RST_STREAM without an event.
    pair.server.receive_data(pair.client.data_to_send())
    answer = pair.server.data_to_send()
    assert [(f.stream_id, f.error_code) for f in parse_frames(answer)
            if isinstance(f, RstStreamFrame)] == [(stream.stream_id, ErrorCodes.PROTOCOL_ERROR)]
    pair.client.receive_data(answer)
    assert stream.closed and stream.disconnected and not stream.body_ended
    assert_connection_goes_on(pair)


def test_trailers_after_the_whole_body_end_it() -> None:
    pair = Pair()
    stream = pair.request(post(5), end_stream=False)
    pair.client.send_data(stream.stream_id, b"12345")
    pair.client.send_headers(stream.stream_id, [(b"x-checksum", b"1")], end_stream=True)
    pair.pump()
    assert stream.body_ended and not stream.disconnected
    assert pair.server.take_body(stream) == b"12345"
    assert resets(pair.events) == {}


def test_dropped_body_gives_the_connection_window_back() -> None:
    # The connection window is 4 x 16 KiB. Eight streams each send a whole
    # stream window past a content-length of 5: twice the connection window,
    # which the client can send only if the reset streams' DATA is credited.
    pair = Pair(Config(max_concurrent_streams=4, initial_window_size=16384))
    for _ in range(8):
        stream = pair.request(post(5), end_stream=False)
        room = pair.client.local_flow_control_window(stream.stream_id)
        assert room == 16384, f"stream {stream.stream_id}: only {room} bytes of window"
        pair.client.send_data(stream.stream_id, bytes(room))
        pair.pump()
        assert resets(pair.events)[stream.stream_id] == ErrorCodes.PROTOCOL_ERROR
        pair.server.handler_finished(stream)  # it saw the disconnect and returned
    assert pair.server.stats()["open_streams"] == 0
    assert_connection_goes_on(pair)


def test_h2_no_longer_raising_for_the_length_fails_the_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A release that counts content-length elsewhere (or makes it a stream
    error itself) would leave the wrapper unused: the check says so."""
    monkeypatch.setattr(h2.stream.H2Stream, "_track_content_length",
                        lambda self, length, end_stream: None)
    with pytest.raises(HookMissing, match=r"_receive_data_frame raising InvalidBodyLengthError"):
        check_hooks()
