"""The HTTP/1.1 core (``_core.h1``) without sockets: bytes in, exchanges and
bytes out. Inputs that are parsed are split at every byte."""

from __future__ import annotations

import pytest

from tests.support import h1raw
from tests.support.h1raw import Response
from tests.support.requests import h1_request
from trio_h2 import Config
from trio_h2._core.errors import LocalProtocolError
from trio_h2._core.exchange import Exchange
from trio_h2._core.guard import DRAIN_RTT
from trio_h2._core.h1 import BODY_READ_SIZE, DISCARD_LIMIT, MAX_TARGET, TAKE_AT_ONCE, H1Core
from trio_h2._core.protocol import READ_SIZE

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-One: 1\r\n\r\n"
POST = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
CHUNKED = (b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def parse(raw: bytes, methods: list[bytes], *, closed: bool = False) -> list[Response]:
    found = h1raw.parse(raw, methods, closed=closed)
    assert found is not None, f"incomplete responses in {raw!r}"
    return found


class Core:
    """An H1Core, and what its runner would do with it."""

    def __init__(self, config: Config | None = None, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.server = H1Core(config or Config(), clock=self.clock)
        self.server.initiate()
        self.started: list[Exchange] = []
        self.out = b""

    def feed(self, data: bytes, *, split: bool = False) -> list[Exchange]:
        started = []
        for piece in ([data[i:i + 1] for i in range(len(data))] if split else [data]):
            started += self.server.receive_data(piece)
        self.started += started
        return started

    def flush(self) -> bytes:
        while True:
            self.server.taken(self.server.pull(1 << 20))
            data = self.server.data_to_send()
            if not data:
                return self.out
            self.out += data

    def respond(self, stream: Exchange, body: bytes = b"ok", *,
                headers: list[tuple[bytes, bytes]] | None = None, status: int = 200,
                finish: bool = True) -> None:
        fields = headers if headers is not None else [(b"content-length", b"%d" % len(body))]
        self.server.send_headers(stream, [(b":status", b"%d" % status), *fields],
                                 end_stream=False)
        self.server.offer(stream, body, end_stream=True)
        self.flush()
        if finish:
            self.server.handler_finished(stream)
        self.flush()

    def resume(self) -> list[Exchange]:
        """What the reader does when woken from its brake."""
        started = self.server.receive_buffered()
        self.started += started
        return started


# ------------------------------------------------------------------ requests


@pytest.mark.parametrize("split", [False, True])
def test_a_request_head_starts_one_exchange(split: bool) -> None:
    core = Core()
    started = core.feed(GET, split=split)
    assert len(started) == 1
    head = started[0].head
    assert (head.method, head.path, head.authority) == (b"GET", b"/a?b=1", None)
    assert head.headers == [(b"host", b"example.com"), (b"x-one", b"1")]
    assert started[0].body_ended and started[0].http_version == "1.1"
    assert core.server.guard.header_since is None


def test_the_header_timer_runs_while_a_head_is_incomplete() -> None:
    core = Core()
    for i in range(len(GET) - 1):
        core.feed(GET[i:i + 1])
        assert core.server.guard.header_since is not None, i
    core.feed(GET[-1:])
    assert core.server.guard.header_since is None
    assert len(core.started) == 1


@pytest.mark.parametrize("request_bytes", [POST, CHUNKED], ids=["content-length", "chunked"])
@pytest.mark.parametrize("split", [False, True])
def test_request_bodies_arrive_whole(request_bytes: bytes, split: bool) -> None:
    core = Core()
    core.feed(request_bytes, split=split)
    [stream] = core.started
    assert stream.body_ended
    assert core.server.take_body(stream) == b"hello world"


def test_absolute_form_target_gives_path_and_authority() -> None:
    core = Core()
    [stream] = core.feed(b"GET http://other.example:8080/p?q HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (stream.head.path, stream.head.authority) == (b"/p?q", b"other.example:8080")


def test_http10_request_without_host() -> None:
    core = Core()
    [stream] = core.feed(b"GET / HTTP/1.0\r\n\r\n")
    assert stream.http_version == "1.0"


# ------------------------------------------------------------------ responses


def test_keep_alive_serves_requests_in_turn() -> None:
    core = Core()
    for n in range(3):
        [stream] = core.feed(GET)
        core.respond(stream, b"n%d" % n)
        assert stream.closed and not stream.disconnected
    responses = parse(core.out, [b"GET"] * 3)
    assert [r.body for r in responses] == [b"n0", b"n1", b"n2"]
    assert all(b"date" not in r.headers for r in responses)  # the ASGI layer adds it
    assert not core.server.finished


@pytest.mark.parametrize("split", [False, True])
def test_pipelined_requests_wait_for_the_response_before(split: bool) -> None:
    core = Core()
    core.feed(GET + POST + GET, split=split)
    assert len(core.started) == 1
    assert core.server.reading_paused  # bytes held: the reader stops
    assert core.resume() == []  # the first exchange is still running
    for n in range(3):
        stream = core.started[n]
        core.respond(stream, b"r%d" % n)
        core.resume()
        assert len(core.started) == min(n + 2, 3)
    assert core.server.take_body(core.started[1]) == b""  # the app did not read; dropped
    assert not core.server.reading_paused
    assert [r.body for r in parse(core.out, [b"GET", b"POST", b"GET"])] == [b"r0", b"r1", b"r2"]


def test_streaming_response_is_chunked_on_11_with_trailers() -> None:
    core = Core()
    [stream] = core.feed(GET)
    core.server.send_headers(stream, [(b":status", b"200")], end_stream=False)
    for part in (b"ab", b"cd"):
        core.server.offer(stream, part, end_stream=False)
        core.flush()
    core.server.offer(stream, b"", end_stream=True, trailers=[(b"x-sum", b"4")])
    core.flush()
    [response] = parse(core.out, [b"GET"])
    assert response.headers[b"transfer-encoding"] == b"chunked"
    assert (response.body, response.trailers) == (b"abcd", {b"x-sum": b"4"})


def test_a_chunk_is_taken_at_once_only_into_an_idle_output_within_one_write() -> None:
    """With no write under way and at most 128 KiB queued, a chunk of any
    size is framed at once, whole (as a view of the application's bytes,
    not a copy): its handler need not wait. Any chunk while more is queued,
    or while a write is under way, waits for the sender, so the output holds
    at most 128 KiB besides the chunk of the application's latest send."""
    core = Core()
    [stream] = core.feed(GET)
    core.server.send_headers(stream, [(b":status", b"200")], end_stream=False)
    core.server.offer(stream, b"a" * 1000, end_stream=False)
    assert not stream.in_flight and core.server.output_backlog > 1000
    core.server.offer(stream, b"b" * 2 * TAKE_AT_ONCE, end_stream=False)
    assert not stream.in_flight and core.server.output_backlog > 2 * TAKE_AT_ONCE
    backlog = core.server.output_backlog
    core.server.offer(stream, b"c", end_stream=False)  # past TAKE_AT_ONCE queued: waits
    assert stream.in_flight and core.server.output_backlog == backlog
    core.flush()
    core.server.guard.writing_since = core.clock()  # a write blocks
    core.server.offer(stream, b"d", end_stream=False)
    assert stream.in_flight and core.server.output_backlog == 0
    core.flush()
    core.server.guard.writing_since = None
    core.server.offer(stream, b"e", end_stream=True)
    assert not stream.in_flight and stream.response_ended
    core.flush()
    [response] = parse(core.out, [b"GET"])
    assert response.body == b"a" * 1000 + b"b" * 2 * TAKE_AT_ONCE + b"cde"


def test_the_sender_takes_a_whole_offer_whatever_its_budget() -> None:
    """One exchange at a time: no other stream waits behind a budget, so
    the sender takes all of an offer in one pull, as one view of the
    application's bytes (no copy)."""
    core = Core()
    [stream] = core.feed(GET)
    core.server.send_headers(stream, [(b":status", b"200")], end_stream=False)
    core.server.guard.writing_since = core.clock()  # the offer waits for the sender
    body = b"x" * (1 << 20)
    core.server.offer(stream, body, end_stream=True)
    assert stream.in_flight
    assert core.server.pull(16 * 1024) == [stream]
    pieces = core.server.pieces_to_send()
    assert any(isinstance(piece, memoryview) and piece.obj is body for piece in pieces)
    assert sum(len(piece) for piece in pieces) > len(body)


def test_a_body_is_read_in_pieces_up_to_the_room_left_in_the_window() -> None:
    """While a request body arrives, the reader asks for as much as the
    window has room for (at least 64 KiB, at most 256 KiB); a head, 64 KiB.
    So at most initial_window_size + 64 KiB of body is held, as before."""
    core = Core()
    window = core.server.config.initial_window_size
    assert core.server.read_size == READ_SIZE
    [stream] = core.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                         % (4 * window))
    assert core.server.read_size == min(BODY_READ_SIZE, window)
    core.feed(b"u" * (window - 1000))
    assert core.server.read_size == READ_SIZE  # 1000 bytes of room: one ordinary read
    assert not core.server.reading_paused
    core.feed(b"u" * READ_SIZE)
    assert core.server.reading_paused
    core.server.take_body(stream)
    assert core.server.read_size == min(BODY_READ_SIZE, window)


def test_a_content_length_body_reaches_the_application_as_it_was_read() -> None:
    """Body bytes go past h11 (``h11_take_body``): the application gets the
    very ``bytes`` the reader read, not a copy; what follows the body in the
    same read (a pipelined request) still goes through h11, in order."""
    core = Core()
    [stream] = core.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    read = b"12345"
    core.feed(read)
    assert stream.body[0][0] is read
    assert core.server.take_body(stream) == read
    core.feed(b"67890" + GET)
    assert core.server.take_body(stream) == b"67890" and stream.body_ended
    core.respond(stream)
    core.flush()
    core.server.handler_finished(stream)
    [second] = core.server.receive_buffered()
    assert second.head.method == b"GET"


def test_a_body_sent_without_waiting_for_100_continue_keeps_the_connection() -> None:
    """A client that asks for 100 Continue and sends its body anyway is not
    waiting any more (as h11 records it on body it parses): no 100, and the
    connection stays open after the response."""
    core = Core()
    [stream] = core.feed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 10\r\n\r\n")
    core.feed(b"hello")
    core.server.body_wanted(stream, True)
    assert b" 100 " not in core.flush()
    core.feed(b"world")
    assert core.server.take_body(stream) == b"helloworld" and stream.body_ended
    core.respond(stream)
    core.server.handler_finished(stream)
    out = core.flush()
    assert b" 100 " not in out and b"connection: close" not in out.lower()
    assert not core.server.finished


def test_streaming_response_is_close_delimited_on_10() -> None:
    core = Core()
    [stream] = core.feed(b"GET / HTTP/1.0\r\n\r\n")
    core.server.send_headers(stream, [(b":status", b"200")], end_stream=False)
    core.server.offer(stream, b"abc", end_stream=False)
    core.flush()
    core.server.offer(stream, b"def", end_stream=True, trailers=[(b"x-dropped", b"1")])
    core.flush()
    core.server.handler_finished(stream)
    assert core.server.finished
    [response] = parse(core.out, [b"GET"], closed=True)
    assert b"transfer-encoding" not in response.headers
    assert response.headers[b"connection"] == b"close"
    assert response.body == b"abcdef"


@pytest.mark.parametrize("pipelined", [True, False])
def test_http10_keep_alive_when_asked(pipelined: bool) -> None:
    core = Core()
    request = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    core.feed(request + request if pipelined else request)
    core.respond(core.started[0], b"one")
    assert not core.server.finished
    if pipelined:
        core.resume()
    else:
        core.feed(request)
    core.respond(core.started[1], b"two")
    assert not core.server.finished
    responses = parse(core.out, [b"GET", b"GET"])
    assert [r.headers[b"connection"] for r in responses] == [b"keep-alive"] * 2
    assert [r.body for r in responses] == [b"one", b"two"]


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",  # keep-alive, but no length
])
def test_no_keep_alive_closes_after_the_response(request_bytes: bytes) -> None:
    core = Core()
    [stream] = core.feed(request_bytes + GET)
    core.respond(stream, headers=[])  # no content-length
    assert core.server.finished
    assert core.resume() == []
    assert b"onnection: close\r\n" in core.out


def test_head_response_has_no_body() -> None:
    core = Core()
    [stream] = core.feed(h1_request("HEAD", "/"))
    core.server.send_headers(stream, [(b":status", b"200"), (b"content-length", b"1000")],
                             end_stream=False)
    with pytest.raises(LocalProtocolError):
        core.server.offer(stream, b"x", end_stream=True)
    core.server.offer(stream, b"", end_stream=True)
    core.flush()
    [response] = parse(core.out, [b"HEAD"])
    assert response.headers[b"content-length"] == b"1000" and response.body == b""


@pytest.mark.parametrize("body", [b"12345", b"123"])
def test_body_that_breaks_its_content_length_is_the_apps_error(body: bytes) -> None:
    core = Core()
    [stream] = core.feed(GET)
    core.server.send_headers(stream, [(b":status", b"200"), (b"content-length", b"4")],
                             end_stream=False)
    with pytest.raises(LocalProtocolError, match="content-length"):
        core.server.offer(stream, body, end_stream=True)


def test_handler_gone_mid_response_closes_the_connection() -> None:
    core = Core()
    [stream] = core.feed(GET)
    core.server.send_headers(stream, [(b":status", b"200")], end_stream=False)
    core.server.handler_finished(stream)
    assert core.server.finished and stream.disconnected


def test_drain_finishes_the_exchange_with_connection_close() -> None:
    core = Core()
    [stream] = core.feed(GET)
    core.server.start_drain()
    assert not core.server.finished
    core.respond(stream)
    assert core.server.finished
    [response] = parse(core.out, [b"GET"])
    assert response.headers[b"connection"] == b"close"


@pytest.mark.parametrize("split", [False, True])
def test_drain_of_an_idle_connection_answers_a_request_that_crossed_it(split: bool) -> None:
    # HTTP/1.1 cannot tell a client to stop sending on a kept-alive
    # connection: a request may already be on its way when the drain begins.
    core = Core()
    [first] = core.feed(GET)
    core.respond(first)
    core.server.start_drain()
    assert not core.server.finished  # waiting DRAIN_RTT for such a request
    core.clock.now += DRAIN_RTT / 2
    core.server.check_timeouts()
    [second] = core.feed(GET, split=split)
    assert not core.server.finished
    core.respond(second)
    assert core.server.finished
    responses = parse(core.out, [b"GET", b"GET"])
    assert b"connection" not in responses[0].headers
    assert responses[1].headers[b"connection"] == b"close"


def test_drain_of_an_idle_connection_closes_it_after_drain_rtt() -> None:
    core = Core()
    core.server.start_drain()
    assert core.server.check_timeouts() == DRAIN_RTT
    assert not core.server.finished
    core.clock.now = DRAIN_RTT
    core.server.check_timeouts()
    assert core.server.finished and core.out == b""


def test_drain_after_a_keep_alive_head_waits_for_the_next_request() -> None:
    # The response's head left before the drain, without Connection: close:
    # the client may send its next request on this connection right away.
    core = Core()
    [first] = core.feed(GET)
    core.server.send_headers(first, [(b":status", b"200"), (b"content-length", b"2")],
                             end_stream=False)
    core.flush()
    core.server.start_drain()
    core.server.offer(first, b"ok", end_stream=True)
    core.flush()
    core.server.handler_finished(first)
    assert not core.server.finished
    [second] = core.feed(GET)
    core.respond(second)
    assert core.server.finished
    responses = parse(core.out, [b"GET", b"GET"])
    assert responses[1].headers[b"connection"] == b"close"
    core.clock.now = DRAIN_RTT  # (the second answer closes: no timer left to wait for)
    core.server.check_timeouts()
    assert core.server.finished


def test_drain_while_a_head_arrives_waits_for_it() -> None:
    core = Core()
    core.feed(GET[:10])
    core.server.start_drain()
    core.clock.now = DRAIN_RTT
    core.server.check_timeouts()
    assert not core.server.finished  # a request half received is in flight
    [stream] = core.feed(GET[10:])
    core.respond(stream)
    assert core.server.finished
    [response] = parse(core.out, [b"GET"])
    assert response.headers[b"connection"] == b"close"


# --------------------------------------------------------------- backpressure


def test_unread_body_pauses_reading_at_the_window() -> None:
    core = Core(Config(initial_window_size=1000))
    core.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 999)
    [stream] = core.started
    assert not core.server.reading_paused
    core.feed(b"x")
    assert core.server.reading_paused
    assert core.server.take_body(stream) == b"x" * 1000
    assert not core.server.reading_paused


def test_unread_upload_is_dropped_up_to_the_limit_then_the_connection_closes() -> None:
    core = Core(Config(initial_window_size=1000))
    length = 2 * DISCARD_LIMIT
    core.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length)
    [stream] = core.started
    core.respond(stream)  # answered without reading
    assert not stream.closed and not core.server.reading_paused
    core.feed(b"x" * DISCARD_LIMIT)
    assert not core.server.terminated
    core.feed(b"x")
    assert core.server.terminated


def test_unread_upload_within_the_limit_keeps_the_connection() -> None:
    core = Core(Config(initial_window_size=1000))
    core.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    core.respond(core.started[0])
    core.feed(b"x" * 5000 + GET)
    assert len(core.started) == 2 and not core.server.terminated


# ------------------------------------------------------------------ bad input


BAD = [
    pytest.param(b"GARBAGE GARBAGE\r\n\r\n", 400, id="garbage"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="no host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two hosts"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400, id="bad name"),
    pytest.param(b"GET x HTTP/1.1\r\nHost: x\r\n\r\n", 400, id="bad target"),
    pytest.param(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, id="asterisk with GET"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400,
                 id="CL+TE"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400,
                 id="conflicting CL"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 400, id="bad chunk"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                 id="TE gzip"),
    pytest.param(b"CONNECT x:1 HTTP/1.1\r\nHost: x:1\r\n\r\n", 501, id="CONNECT"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, id="HTTP/2.0"),
    pytest.param(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, id="HTTP/3.0"),
    pytest.param(b"GET /" + b"a" * MAX_TARGET + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
                 id="long target"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n"
                 + b"X-A: 1\r\n" * Config().max_header_fields + b"\r\n", 431,
                 id="too many fields"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 70000 + b"\r\n\r\n", 431,
                 id="head too large"),
]


@pytest.mark.parametrize(("request_bytes", "status"), BAD)
def test_bad_requests_are_answered_and_closed(request_bytes: bytes, status: int) -> None:
    core = Core()
    core.feed(request_bytes)
    core.flush()
    assert core.server.terminated and all(stream.disconnected for stream in core.started)
    assert core.server.error is not None and core.server.error.status == status
    [response] = parse(core.out, [b"GET"])
    assert response.status == status
    assert response.headers[b"connection"] == b"close"
    assert response.headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert response.body.startswith(b"%d " % status) and len(response.body) < 200


@pytest.mark.parametrize(("request_bytes", "status"), [
    param for param in BAD if param.id in ("garbage", "CL+TE", "bad chunk", "TE gzip",
                                           "HTTP/2.0", "too many fields")])
def test_bad_requests_split_at_every_byte(request_bytes: bytes, status: int) -> None:
    core = Core()
    core.feed(request_bytes, split=True)
    core.flush()
    assert all(stream.disconnected for stream in core.started)
    assert core.server.error is not None
    assert parse(core.out, [b"GET"])[0].status == status


def test_an_unfinished_head_over_the_limit_is_431_before_it_ends() -> None:
    core = Core(Config(max_header_list_size=4096))
    core.feed(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 5000)
    core.flush()
    assert parse(core.out, [b"GET"])[0].status == 431


def test_a_bad_body_after_the_app_started_disconnects_it() -> None:
    core = Core()
    [stream] = core.feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    core.feed(b"zz\r\n")
    assert stream.disconnected and core.server.terminated
    assert parse(core.flush(), [b"POST"])[0].status == 400


# --------------------------------------------------------------------- timers


def test_header_timeout_answers_408() -> None:
    config = Config(header_timeout=5)
    core = Core(config)
    core.feed(b"GET / HTTP/1.1\r\n")
    core.clock.now = 4.9
    core.server.check_timeouts()
    assert not core.server.terminated
    core.clock.now = 5
    core.server.check_timeouts()
    assert core.server.terminated
    assert parse(core.flush(), [b"GET"])[0].status == 408


def test_idle_timeout_closes_between_requests() -> None:
    core = Core(Config(idle_timeout=30))
    [stream] = core.feed(GET)
    core.clock.now = 100  # a long request is not idle
    core.server.check_timeouts()
    core.respond(stream)
    assert not core.server.finished
    core.clock.now = 129
    core.server.check_timeouts()
    assert not core.server.finished
    core.clock.now = 130
    core.server.check_timeouts()
    assert core.server.finished


def test_body_timeout_answers_408_and_disconnects() -> None:
    core = Core(Config(body_timeout=10))
    [stream] = core.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    core.server.body_wanted(stream, True)
    core.clock.now = 10
    core.server.check_timeouts()
    assert stream.disconnected and core.server.terminated
    assert parse(core.flush(), [b"POST"])[0].status == 408


@pytest.mark.parametrize("pipelined", [True, False])
def test_upgrade_requests_are_answered_over_http11(pipelined: bool) -> None:
    core = Core()
    upgrade = (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    [stream] = core.feed(upgrade + GET if pipelined else upgrade)
    core.respond(stream, b"not upgraded")
    if pipelined:
        core.resume()
    else:
        core.feed(GET)
    core.respond(core.started[1], b"next")
    assert [r.body for r in parse(core.out, [b"GET", b"GET"])] == [b"not upgraded", b"next"]
