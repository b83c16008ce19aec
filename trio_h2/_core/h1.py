"""The sans-IO core of one HTTP/1.1 connection, on h11. Imports no trio.

It offers what ``_core.protocol.ProtocolCore`` describes, as ``_core.h2`` does for
HTTP/2, so the same runner (``_io.connection``) and the same ASGI handler
(``_apps.asgi``) serve it. An exchange is a ``Exchange``; this module is the
single owner of its state, and of the connection's (h11's) state.

One exchange at a time, in order (RFC 9112 section 9.3.2): the next request
is not parsed until the response to the current one has gone out. Bounds:

* Request head: as ``_core.h1heads`` checks it once parsed (431, 414); an
  unfinished head at most ``Config.max_header_list_size`` bytes held in h11.
* Request body: the body is read from the socket only as the application
  takes it. The reader pauses once ``Config.initial_window_size`` bytes wait
  unread (the bound an HTTP/2 stream has), and asks for no more than the room
  left (at least 64 KiB, at most :data:`BODY_READ_SIZE`), so at most that
  plus 64 KiB is held.
* Pipelining: once a request is complete, bytes after it are held, not
  parsed, and the reader pauses at the first such read, so at most one read
  is held. Holding more would buy nothing (they are answered in order) and
  cost memory per connection.
* A response that ends before its request body (an upload the app did not
  read): up to :data:`DISCARD_LIMIT` bytes of it are read and dropped to
  keep the connection; past that the connection is closed.

Errors in the request are answered with their status and a small plain-text
body saying what was wrong (``_core.headers.error_page``), one log line, and the
connection is closed.

``Expect: 100-continue`` (RFC 9110 section 10.1.1): ``100 Continue`` goes out
when the application first waits for the body (:meth:`H1Core.body_wanted`),
never before. An application that answers without reading gets its response
with ``Connection: close``: the client may hold its body back or send it
anyway, so its next bytes could be either, and only closing is safe.

``Upgrade: h2c`` (RFC 7540 section 3.2) on a connection that may speak HTTP/2
(plain TCP: the ``upgrade`` callback), when ``_core.h1heads.h2c_settings``
takes it: once the request, body included, has arrived, ``101 Switching
Protocols`` is queued and this core hands the connection to the HTTP/2 core
it builds (:attr:`H1Core.successor`, from a ``_core.protocol.Handover``): the
request becomes stream 1 and the bytes h11 holds after it
(``trailing_data``) are the client's preface. A body past
``Config.initial_window_size``, or a drain, declines it: the request is
served over HTTP/1.1 as if ``Upgrade`` were absent, as RFC 7540 allows.

``Upgrade: websocket`` (RFC 6455 section 4), once
``_core.h1heads.check_request`` has checked the handshake: the exchange
starts with ``RequestHead.protocol`` set, for the ASGI websocket adapter.
When it accepts (a 200 response head, as over HTTP/2), ``101 Switching
Protocols`` is queued with ``Sec-WebSocket-Accept`` and the connection is
handed to ``_core.tunnel.TunnelCore`` with the running exchange;
any other response denies the WebSocket as a plain HTTP/1.1 response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast, final

import h11
from h2.errors import ErrorCodes

from .._config import Config
from .errors import LocalProtocolError, RemoteProtocolError
from .exchange import Exchange, add_body, drain_body, going_away, release, take_offered
from .guard import ConnectionGuard
from .h1heads import MAX_TARGET as MAX_TARGET
from .h1heads import (
    Refused,
    check_request,
    h2c_settings,
    response_head,
    tokens,
    without_hop_fields,
)
from .h2internals import h11_buffered, h11_take_body
from .headers import Headers, RequestHead, error_page, reason_phrase
from .memory import Holding, ServerMemory
from .output import Output, Piece
from .protocol import READ_SIZE, Handover, ProtocolCore
from .tunnel import TunnelCore
from .websocket import accept_key

log = logging.getLogger("trio_h2")

# Request body a response left unread that is read and dropped to keep the
# connection alive; past it the connection is closed. Go's server reads up
# to 256 KiB (maxPostHandlerReadBytes) for the same purpose.
DISCARD_LIMIT = 256 * 1024

_NO_BODY_STATUSES = (204, 304)

# While a request body is arriving, the reader asks for up to this much (the
# room left under initial_window_size, if less): asyncio's own read size, as
# uvicorn reads. Four reads per MiB instead of sixteen, each a turn of the
# reader and one of the handler: a 1 MiB echo upload took 24% less CPU per
# MiB than with 64 KiB reads (bench/cpu_cost.py --only h1-echo).
BODY_READ_SIZE = 256 * 1024

# A chunk offered while no write is under way is framed at once, whole, if
# the output holds at most this (one HTTP/2 write's worth,
# ``_io.connection.SEND_BATCH``); else it waits for the sender. So besides
# the chunk of the application's latest send (its own bytes, held as a view)
# the output holds at most this much.
TAKE_AT_ONCE = 128 * 1024

Upgrade = Callable[[Handover], ProtocolCore]


@final
class H1Core:
    """h11 and the current exchange of one HTTP/1.1 connection.

    Methods never block and never raise for the client's mistakes: those are
    answered with an error response and recorded in :attr:`error`.
    """

    def __init__(self, config: Config, *, peer: str = "?",
                 clock: Callable[[], float] = time.monotonic,
                 memory: ServerMemory | None = None,
                 upgrade: Upgrade | None = None) -> None:
        """``upgrade`` builds the HTTP/2 core an ``Upgrade: h2c`` request
        hands the connection to; None where HTTP/2 cannot follow (over TLS,
        RFC 7540 section 3.2 leaves h2 to ALPN): the upgrade is ignored.
        Heads still arriving draw on the server's ``memory`` (request bodies
        need not: one window and one read per connection is its floor)."""
        self.config = config
        self.peer = peer
        self.guard = ConnectionGuard(config, clock)
        self.error: RemoteProtocolError | None = None
        self.terminated = False
        """No more exchanges; what is queued now is the last output."""
        self.draining = False
        self.current: Exchange | None = None
        """The exchange whose request is being read or answered."""
        self.running = 0
        """Handlers running, whatever the state of their exchange."""
        self._h11 = self._new_h11()
        self._out = Output()
        self._count = 0
        self._closing = False
        """Close once the last response is out (no keep-alive, or draining)."""
        self._held = False
        """Bytes after a complete request are waiting in h11 (pipelining):
        the reader pauses until the current exchange completes."""
        self._head_started = False
        """Bytes of a request head have arrived and the head is not complete."""
        self.head = Holding((memory or ServerMemory(config)).heads)
        """What the head still arriving holds of the server's header memory."""
        self._unread = 0
        """Bytes of the current request body waiting for the application."""
        self._chunked_request = False
        """The current request's body is chunked (h11: an event per chunk)."""
        self._discard: int | None = None
        """Bytes of an abandoned request body still to be dropped, or None."""
        self._remaining: int | None = None
        """Response body bytes still due by its framing (None: not counted)."""
        self._chunked = False
        """The response is chunked: trailers can go out."""
        self._renew = False
        """HTTP/1.0 keep-alive: h11 serves 1.0 without it, so the exchange
        ends with a fresh h11 connection instead of its next cycle."""
        self._upgrade = upgrade
        self._upgrading: bytes | None = None
        """The current request asks for h2c: its SETTINGS payload, while its
        body arrives. Its handler starts over HTTP/2 once it has."""
        self.successor: ProtocolCore | None = None
        """The HTTP/2 core this connection was handed to (then terminated)."""
        self.scheduler_control = None  # one exchange at a time: nothing to schedule

    def _new_h11(self) -> h11.Connection:
        # h11's bound on bytes held for an unfinished event: the request
        # head, a chunk header, the trailers.
        return h11.Connection(h11.SERVER,
                              max_incomplete_event_size=self.config.max_header_list_size)

    # ------------------------------------------------------------------ input

    def initiate(self) -> None:
        """Nothing to say first; the client's first bytes chose HTTP/1.1 already."""
        self.guard.preface_done()

    def receive_data(self, data: bytes | bytearray) -> list[Exchange]:
        """Process bytes from the client. Returns the exchange to start, if
        a request head completed."""
        if self.terminated or self._closing:
            return []  # closing after this response; nothing more is read
        state = self._h11.their_state
        if state is h11.IDLE:
            self._head_started = True
        elif state is not h11.SEND_BODY:
            self._held = True  # a request is complete: the next one waits
        elif body := h11_take_body(self._h11, len(data)):
            # Body h11 need not see: to the application as it was read.
            # (One copy at most: none for a whole read of bytes.)
            self._body(bytes(data) if body == len(data) else bytes(memoryview(data)[:body]))
            data = data[body:]
        if data:
            self._h11.receive_data(cast(bytes, data))  # h11 takes any bytes-like object
        return self._parse()

    def receive_buffered(self) -> list[Exchange]:
        """Parse the requests held while the last exchange ran, once it is done."""
        if not self._held or self.current is not None or self.finished:
            return []
        self._held = False
        self._head_started = True
        return self._parse()

    @property
    def read_size(self) -> int:
        stream = self.current
        if stream is None or stream.body_ended or self._discard is not None \
                or self._chunks_arriving:
            return READ_SIZE  # a head (most are far smaller), or chunks
        room = self.config.initial_window_size - self._unread
        return max(READ_SIZE, min(BODY_READ_SIZE, room))

    @property
    def whole_reads(self) -> bool:
        """h11 parses at most one request head per exchange (the rest is
        held) and hands a Content-Length body through: a read costs about
        its copy. A chunked body is an event per chunk, and 64 KiB of 1-byte
        chunks is 10,922 of them: such a read goes in slices, as HTTP/2's."""
        return not self._chunks_arriving

    @property
    def _chunks_arriving(self) -> bool:
        stream = self.current
        return self._chunked_request and stream is not None and not stream.body_ended

    @property
    def reading_paused(self) -> bool:
        # (While an upgrade body arrives there is no application to take it:
        # past the bound the upgrade is declined, and the brake applies.)
        return self._held or (self._unread >= self.config.initial_window_size
                              and self._discard is None and self._upgrading is None)

    def _parse(self) -> list[Exchange]:
        started: list[Exchange] = []
        conn = self._h11
        while not self.terminated:
            if conn.their_state is h11.MUST_CLOSE:
                # Connection: close or HTTP/1.0: h11 reads nothing more. With
                # HTTP/1.0 keep-alive, bytes already here are the next
                # request, for a fresh h11 once this exchange is over: hold
                # them, or the reader would wait for bytes it already has.
                self._held = self._held or (self._renew and bool(conn.trailing_data[0]))
                break
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc.error_status_hint, str(exc))
                break
            kind = type(event)
            stream = None
            if kind is h11.Data:
                self._body(cast(h11.Data, event).data)
                if self._upgrading is not None and \
                        self._unread > self.config.initial_window_size:
                    stream = self._decline_upgrade(f"request body over initial_window_size "
                                                   f"({self.config.initial_window_size})")
            elif kind is h11.Request:
                stream = self._request(cast(h11.Request, event))
            elif kind is h11.EndOfMessage:
                stream = self._request_ended()
            else:  # NEED_DATA or PAUSED (ConnectionClosed needs an EOF we never pass)
                # h11 pauses after a complete request only with bytes
                # waiting, and after an upgrade request (MIGHT_SWITCH_PROTOCOL)
                # whatever waits: look (one read at most, once per request).
                if event is h11.PAUSED and (conn.their_state is h11.DONE
                                            or conn.trailing_data[0]):
                    self._held = True
                break
            if stream is not None:
                started.append(stream)
        pending = self.guard.header_pending(self._head_started and not self.terminated
                                            and conn.their_state is h11.IDLE)
        if not self.head.hold(h11_buffered(conn) if pending else 0):
            memory = self.head.account
            self._bad_request(431, f"a request head of {h11_buffered(conn)} bytes still "
                                   f"arriving while heads arriving hold {memory.held} bytes "
                                   f"(a quarter of max_header_memory: {memory.limit})",
                              level=logging.WARNING if memory.warn else logging.DEBUG)
        return started

    def _request(self, event: h11.Request) -> Exchange | None:
        self._head_started = False
        checked = check_request(event, self.config)
        if isinstance(checked, Refused):
            self._bad_request(checked.status, checked.reason, checked.extra)
            return None
        version, head = checked
        fields = head.headers
        if self.draining:
            # The drain began while this head was on its way: a keep-alive
            # request that crossed it (see start_drain). Answered, with
            # Connection: close; dropping it would leave the client to guess
            # whether it was processed.
            self._closing = True
            self.guard.drain_deadline = None
        settings = None
        if self._upgrade is not None:  # (over TLS, ALPN alone chooses HTTP/2)
            try:
                asked = h2c_settings(version, fields, busy=bool(self.running),
                                     window=self.config.initial_window_size)
            except ValueError as exc:
                self._bad_request(400, str(exc))
                return None
            if isinstance(asked, str):
                log.debug("%s: Upgrade: h2c ignored: %s", self.peer, asked)
            else:
                settings = asked
        self._count += 1
        stream = Exchange(self._count, head, http_version=version, going_away=self.draining)
        self._renew = version == "1.0" and b"keep-alive" in tokens(fields, b"connection")
        self.current = stream
        self._unread = 0
        self._chunked_request = b"chunked" in tokens(fields, b"transfer-encoding")
        if settings is not None:
            self._upgrading = settings
            self.guard.streams_running(1)  # not idle: a request is arriving
            # Nobody else will read this body: body_timeout bounds its arrival,
            # and a client that waits for 100 Continue gets it now.
            self.body_wanted(stream, True)
            return None
        return self._begin(stream)

    def _begin(self, stream: Exchange) -> Exchange:
        """The exchange's handler is to start."""
        self.running += 1
        self.guard.streams_running(self.running)
        return stream

    def _body(self, data: bytes) -> None:
        stream = self.current
        if self._discard is not None:
            self._discard -= len(data)
            if self._discard < 0:
                log.info("%s: over %d bytes of unread request body; closing", self.peer,
                         DISCARD_LIMIT)
                self._terminate()
            return
        if stream is None or stream.disconnected:
            return
        add_body(stream, data, len(data))
        self._unread += len(data)
        self.guard.body_arrived(stream.stream_id)
        stream.wake()

    def _request_ended(self) -> Exchange | None:
        """The request is complete; returns its exchange if that is only now
        to start (a declined upgrade)."""
        stream = self.current
        if stream is None:
            return None
        stream.body_ended = True
        self._discard = None
        if self._upgrading is not None:
            if not self.draining:
                self._switch_to_h2()
                return None
            return self._decline_upgrade("the server is shutting down")
        stream.wake()
        self._maybe_complete()
        return None

    def _decline_upgrade(self, why: str) -> Exchange:
        """Serve the upgrade request over HTTP/1.1 after all (RFC 7540
        section 3.2 allows ignoring Upgrade); its body so far waits for it."""
        stream = self.current
        assert stream is not None
        log.debug("%s: Upgrade: h2c ignored: %s", self.peer, why)
        self._upgrading = None
        self.guard.body_wanted(stream.stream_id, False)
        return self._begin(stream)

    def _switch_to_h2(self) -> None:
        """``101 Switching Protocols``, and the connection goes to the HTTP/2
        core (RFC 7540 section 3.2): the 101 and what it follows go out
        first, the request is stream 1, the bytes after it are HTTP/2's."""
        stream, settings, upgrade = self.current, self._upgrading, self._upgrade
        assert stream is not None and settings is not None and upgrade is not None
        self._upgrading = None
        self.current = None
        self.guard.body_wanted(stream.stream_id, False)
        self._out.append(self._h11.send(h11.InformationalResponse(
            status_code=101, headers=[(b"connection", b"Upgrade"), (b"upgrade", b"h2c")],
            reason=b"Switching Protocols")))
        received, _ = self._h11.trailing_data
        head = without_hop_fields(stream.head)
        log.debug("%s: upgraded to HTTP/2 (h2c)", self.peer)
        self.terminated = True
        self.successor = upgrade(Handover(
            protocol="h2c", head=head, body=self.take_body(stream), settings=settings,
            output=self._out.take(), received=received, guard=self.guard))

    def _switch_to_websocket(self, stream: Exchange, fields: Headers) -> None:
        """The application accepted the WebSocket: ``101 Switching
        Protocols`` with ``Sec-WebSocket-Accept`` and the fields it chose,
        and the connection goes to a tunnel that carries ``stream``'s bytes
        both ways (RFC 6455 section 4.2.2)."""
        self._out.append(self._h11.send(h11.InformationalResponse(
            status_code=101, reason=b"Switching Protocols", headers=[
                (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
                (b"sec-websocket-accept", accept_key(stream.head.headers)), *fields])))
        received, _ = self._h11.trailing_data
        self.current = None
        self.terminated = True
        log.debug("%s: switched to WebSocket", self.peer)
        self.successor = TunnelCore(self.config, Handover(
            protocol="websocket", head=stream.head, body=b"", settings=b"",
            output=self._out.take(), received=received, guard=self.guard, exchange=stream),
            peer=self.peer)

    # ------------------------------------------------------ handler requests

    def take_body(self, stream: Exchange) -> bytes:
        """Everything buffered for ``stream``; the reader may read again."""
        self._unread = 0
        return drain_body(stream)

    def body_wanted(self, stream: Exchange, wanted: bool) -> None:
        """The application (or an upgrade) waits for body: ``body_timeout``
        runs, and a client that waits for ``100 Continue`` gets it."""
        if wanted and stream is self.current and self._h11.they_are_waiting_for_100_continue:
            self._out.append(self._h11.send(h11.InformationalResponse(status_code=100, headers=[],
                                                                reason=b"Continue")))
        self.guard.body_wanted(stream.stream_id, wanted and not stream.closed)

    def informs(self, stream: Exchange) -> bool:
        """RFC 9110 section 15.2: no 1xx to an HTTP/1.0 client."""
        return stream.http_version == "1.1"

    def send_informational(self, stream: Exchange, headers: Headers) -> None:
        """Queue a 1xx head (h11 ``InformationalResponse``)."""
        assert stream is self.current and not stream.headers_sent and self.informs(stream)
        status = int(headers[0][1])
        if status != 100 and self._h11.they_are_waiting_for_100_continue:
            # h11 counts any 1xx as the 100 the client waits for; a 103 is
            # not one (RFC 9110 section 10.1.1), so what send_headers decides
            # for an unanswered expectation holds (close after the response).
            self._closing = True
        self._out.append(self._h11.send(h11.InformationalResponse(
            status_code=status, headers=headers[1:], reason=reason_phrase(status))))

    def pushes(self, stream: Exchange) -> bool:
        """HTTP/1.1 has no server push."""
        return False

    def push(self, stream: Exchange, head: RequestHead) -> Exchange | None:
        return None

    def send_headers(self, stream: Exchange, headers: Headers, *, end_stream: bool) -> None:
        """Queue the response head (``:status`` first, as ``_core.headers`` makes it)."""
        assert stream is self.current and not stream.headers_sent and not stream.disconnected
        stream.headers_sent = True
        status = int(headers[0][1])
        fields = headers[1:]
        if status == 200 and stream.head.protocol == b"websocket":
            self._switch_to_websocket(stream, fields)
            return
        if self._h11.they_are_waiting_for_100_continue:
            # Answered without reading: the client may send its body after
            # all (curl does after 1 s) or not at all, so its next bytes are
            # not known to be a request. Close after this response (RFC 9110
            # section 10.1.1 allows it; Go's server does the same).
            self._closing = True
        if self.draining or self._closing:
            fields.append((b"connection", b"close"))
        reason = reason_phrase(status)
        try:
            response = h11.Response(status_code=status, headers=fields, reason=reason)
            head = self._h11.send(response)
        except h11.LocalProtocolError as exc:
            # The fields passed _headers; h11 still refuses (a content-length
            # that is not a number, say): the response cannot be framed.
            self._abandon(f"h11 refused the response head: {exc}")
            raise LocalProtocolError(f"invalid response head: {exc}") from exc
        # h11 took the head, so every content-length field agrees ("5" or "5, 5").
        length = next((value.split(b",", 1)[0] for name, value in fields
                       if name == b"content-length"), None)
        no_body = stream.head.method == b"HEAD" or status in _NO_BODY_STATUSES
        self._remaining = 0 if no_body else None if length is None else int(length)
        self._chunked = length is None and not no_body and stream.http_version != "1.0"
        # An HTTP/1.0 client that asked for keep-alive keeps it if it can
        # tell where the body ends. h11 has no keep-alive for HTTP/1.0 and
        # adds "connection: close"; this head says keep-alive instead.
        self._renew = self._renew and not self.draining and (no_body or length is not None)
        if self._renew:
            head = response_head(status, reason, [*fields, (b"connection", b"keep-alive")])
        self._out.append(head)
        if end_stream:
            self._end_response(stream, None)

    def offer(self, stream: Exchange, data: bytes, *, end_stream: bool,
              trailers: Headers | None = None) -> None:
        """Hand one chunk of response body to the sender. Raises
        :exc:`LocalProtocolError` if it goes past the response's
        ``content-length`` (or, when it ends the body, falls short of it)."""
        assert stream.headers_sent and not stream.in_flight and not stream.response_ended
        remaining = self._remaining
        if remaining is not None:
            if len(data) > remaining or (end_stream and len(data) < remaining):
                what = "HEAD, 204 or 304" if remaining == 0 else "content-length"
                raise LocalProtocolError(
                    f"response body of {len(data)} more bytes where its {what} "
                    f"leaves {remaining}")
            self._remaining = remaining - len(data)
        stream.outbox = memoryview(data)
        stream.outbox_end = end_stream
        stream.trailers = trailers
        stream.in_flight = True
        if self.guard.writing_since is None and len(self._out) <= TAKE_AT_ONCE:
            # No write is under way: frame the chunk now, into the write the
            # sender makes next (with the head queued before it), as it
            # would once woken; the handler need not wait for it: one task
            # switch less per response, and no more held than by the sender.
            stream.in_flight = not self.pull(TAKE_AT_ONCE)

    def reset(self, stream: Exchange, code: ErrorCodes) -> None:
        """An HTTP/1.1 exchange cannot be reset alone: the connection closes."""
        if stream.closed or self.terminated:
            return
        self._abandon(f"exchange {stream.stream_id} abandoned ({code.name})")

    def handler_finished(self, stream: Exchange) -> bool:
        """The handler has exited. Returns whether the sender has work."""
        stream.body.clear()
        self.running -= 1
        self.guard.streams_running(self.running)
        if stream is self.current:
            self._unread = 0
            if not stream.response_ended:
                self._abandon(f"exchange {stream.stream_id} ended without a complete response")
            elif not stream.body_ended:
                # Nobody reads the rest of the upload: drop it (bounded) so
                # that the connection can serve the next request.
                self._discard = DISCARD_LIMIT
        return self.sender_has_work

    # ---------------------------------------------------------------- output

    def pull(self, budget: int) -> list[Exchange]:
        """Take the whole of the current offer into the output, whatever
        ``budget``: the budget lets HTTP/2's scheduler choose again between
        streams, and here there is one exchange at a time. The offer goes
        as a view of the application's bytes, so taking it whole copies
        nothing, and the sender writes it with one ``writev``: a 1 MiB
        response in 128 KiB pieces took 8 writes and as many turns of the
        loop (bench/cpu_cost.py --only h1-echo: 2,818 to 1,873 us per MiB)."""
        stream = self.current
        if stream is None or stream.outbox is None or self.terminated:
            return []
        piece = take_offered(stream, len(stream.outbox))
        if piece:
            # h11 takes any bytes-like object (its docs); typed as bytes.
            self._send(h11.Data(data=cast(bytes, piece)))
        if stream.outbox is not None:
            return []
        if stream.outbox_end:
            self._end_response(stream, stream.trailers)
        return [stream]

    def taken(self, streams: list[Exchange]) -> None:
        release(streams)

    def data_to_send(self) -> bytes:
        return self._out.take()

    def pieces_to_send(self) -> list[Piece]:
        return self._out.take_pieces()

    def _send(self, event: h11.Data | h11.EndOfMessage) -> None:
        pieces = self._h11.send_with_data_passthrough(event)
        for piece in pieces or ():
            self._out.append(piece)

    def _end_response(self, stream: Exchange, trailers: Headers | None) -> None:
        # Trailers need chunked framing: HTTP/1.0 and content-length
        # responses go without them.
        self._send(h11.EndOfMessage(headers=trailers if trailers and self._chunked else []))
        stream.trailers = None
        stream.response_ended = True
        self._maybe_complete()

    def _maybe_complete(self) -> None:
        """Once request and response are both complete: the exchange is over;
        the connection goes on to the next request (keep-alive) or closes."""
        stream = self.current
        if stream is None or not (stream.response_ended and stream.body_ended):
            return
        stream.closed = True
        stream.wake()
        self.current = None
        self.guard.body_wanted(stream.stream_id, False)
        conn = self._h11
        if self.draining and (self._renew or conn.our_state is not h11.DONE):
            self._closing = True  # the response said Connection: close (or HTTP/1.0)
        elif self._renew:
            held, _ = conn.trailing_data
            self._h11 = self._new_h11()
            self._held = bool(held)
            if held:  # (b"" would mean EOF to h11)
                self._h11.receive_data(held)
        elif conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            if self.draining:
                # The response's head left before the drain began, saying
                # keep-alive: the client may be sending its next request
                # already. Wait for it as on an idle connection (start_drain).
                self.guard.drain_started()
        else:
            self._closing = True  # Connection: close, or HTTP/1.0
        # Held bytes, if any, are parsed by the reader (receive_buffered):
        # only it starts handlers.

    @property
    def sender_has_work(self) -> bool:
        return bool(self._out) or self.ready_to_send or self.finished

    @property
    def ready_to_send(self) -> bool:
        stream = self.current
        return stream is not None and stream.outbox is not None

    @property
    def output_backlog(self) -> int:
        return len(self._out)

    @property
    def finished(self) -> bool:
        """Closing (no keep-alive, draining, or an error) and every handler
        has returned: an application that answered and is still finishing
        (a background task after its response) is not cut off."""
        if self.terminated:
            return True
        idle = self.current is None and not self._head_started
        waited = self.guard.drain_deadline is None  # (see start_drain)
        return (self._closing or (self.draining and idle and waited)) and not self.running

    @property
    def linger(self) -> bool:
        """The client may still be sending: after an error, with bytes held,
        or with a request body not read to its end."""
        return self.error is not None or self._held or self._h11.their_state not in (
            h11.IDLE, h11.DONE, h11.MUST_CLOSE)

    # ------------------------------------------------------------- lifetime

    def start_drain(self) -> None:
        """Finish the current exchange (its response says ``Connection:
        close`` if its head is not out yet), then close. A connection with
        no exchange is kept open for ``DRAIN_RTT`` first, as HTTP/2's drain
        waits a round trip before its last GOAWAY: HTTP/1.1 has no way to
        tell a client to stop sending on a kept-alive connection, and a
        request already on its way when we close would be lost (a proxy in
        front reuses its idle connections within microseconds; nginx then
        logs "upstream prematurely closed connection" and must resend, or
        fail a POST). A request that arrives meanwhile is answered with
        ``Connection: close``. The current exchange's handler is told
        (:attr:`Exchange.going_away`)."""
        if self.draining or self.terminated:
            return
        self.draining = True
        if self.current is None:
            self.guard.drain_started()
        else:
            going_away([self.current])

    def check_timeouts(self) -> float:
        """Act on the timers that have run out; return the next deadline."""
        guard = self.guard
        reason, _, starved = guard.expired()
        stream = self.current
        for stream_id in starved:
            guard.body_wanted(stream_id, False)
            if stream is not None and stream.stream_id == stream_id:
                self._timed_out(f"no request body for {self.config.body_timeout}s")
        if guard.drain_due():
            guard.drain_deadline = None  # no request came: close (finished)
        if reason == "idle":
            log.debug("%s: idle for %ss; closing", self.peer, self.config.idle_timeout)
            guard.idle_since = None
            self.draining = True  # at once: the client has had idle_timeout to send
        elif reason is not None and guard.header_since is not None:
            self._timed_out(f"request head not completed within {self.config.header_timeout}s")
        elif reason is not None:
            log.info("%s: closing connection: %s", self.peer, reason)
            self._terminate()
        return guard.next_deadline()

    def _timed_out(self, reason: str) -> None:
        """408 (RFC 9110 section 15.5.9) if no response has started, then close."""
        if self.terminated:
            return
        log.info("%s: %s; closing", self.peer, reason)
        self._error_response(408, reason)
        self._terminate()

    def close(self) -> None:
        """An orderly close has nothing more to say in HTTP/1.1."""
        self._terminate()

    def abort(self, code: ErrorCodes, reason: str) -> None:
        """End the connection now: 500 if the current response has not
        started (HTTP/2 would send GOAWAY ``code``)."""
        if self.terminated:
            return
        if code != ErrorCodes.NO_ERROR:
            self._error_response(500, reason)
        self._terminate()

    def connection_lost(self) -> None:
        self._out.clear()
        self._terminate()

    def _abandon(self, why: str) -> None:
        """The current response cannot be completed: close the connection,
        so that the client does not take a partial body for a whole one."""
        log.debug("%s: %s; closing the connection", self.peer, why)
        self._terminate()

    def _bad_request(self, status: int, reason: str,
                     extra: Sequence[tuple[bytes, bytes]] = (), *,
                     level: int = logging.INFO) -> None:
        """The client broke HTTP/1.1 (or a limit): ``status``, one log line
        (at ``level``), then close."""
        if self.terminated:
            return
        log.log(level, "%s: bad request, answered %d: %s", self.peer, status, reason)
        self.error = RemoteProtocolError(reason, error_code=ErrorCodes.PROTOCOL_ERROR,
                                         status=status)
        self._error_response(status, reason, extra)
        self._terminate()

    def _error_response(self, status: int, reason: str,
                        extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        """A small plain-text response saying what was wrong, if the current
        exchange (if any) has not started its own response."""
        stream = self.current
        if stream is not None and stream.headers_sent:
            return
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        fields, body = error_page(status, reason)
        fields += extra
        fields.append((b"connection", b"close"))
        try:
            self._out.append(self._h11.send(h11.Response(status_code=status, headers=fields,
                                                         reason=reason_phrase(status))))
            if stream is None or stream.head.method != b"HEAD":
                self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:  # h11's state allows no response
            log.debug("%s: no %d response: %s", self.peer, status, exc)

    def _terminate(self) -> None:
        self.terminated = True
        self.head.hold(0)
        stream = self.current
        if stream is not None and not stream.closed:
            stream.closed = stream.disconnected = stream.response_ended = True
            stream.outbox = None
            stream.body.clear()
            self.guard.body_wanted(stream.stream_id, False)
            stream.wake()

    def stats(self) -> dict[str, Any]:
        """Counters for tests and debugging."""
        return {"exchanges": self._count, "buffered_body_bytes": self._unread,
                "held": self._held, "output": len(self._out)}

