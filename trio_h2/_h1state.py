"""The sans-IO core of one HTTP/1.1 connection, on h11. Imports no trio.

It offers what ``_protocol.ProtocolCore`` describes, as ``_state`` does for
HTTP/2, so the same runner (``_connection``) and the same ASGI handler
(``_asgi``) serve it. An exchange is a ``StreamState``; this module is the
single owner of its state, and of the connection's (h11's) state.

One exchange at a time, in order (RFC 9112 section 9.3.2): the next request
is not parsed until the response to the current one has gone out. Bounds:

* Request head: at most ``Config.max_header_list_size`` bytes (counted as
  HTTP/2 counts them: name + value + 32 per field; an unfinished head as the
  bytes h11 holds) and ``Config.max_header_fields`` fields (431), a
  request-target of at most :data:`MAX_TARGET` bytes (414).
* Request body: the body is read from the socket only as the application
  takes it. The reader pauses once ``Config.initial_window_size`` bytes wait
  unread (the bound an HTTP/2 stream has), so at most that plus one read
  (64 KiB) is held.
* Pipelining: once a request is complete, bytes after it are held, not
  parsed, and the reader pauses at the first such read, so at most one read
  is held. Holding more would buy nothing (they are answered in order) and
  cost memory per connection.
* A response that ends before its request body (an upload the app did not
  read): up to :data:`DISCARD_LIMIT` bytes of it are read and dropped to
  keep the connection; past that the connection is closed.

Errors in the request are answered with their status and a small plain-text
body saying what was wrong, one log line, and the connection is closed.

``Upgrade`` is not acted on: h11 holds the bytes after an upgrade request
(MIGHT_SWITCH_PROTOCOL) and the request is answered over HTTP/1.1. A hand-over
to HTTP/2 (``Upgrade: h2c``) would answer 101, take those bytes from
``h11.Connection.trailing_data`` and give them to an HTTP/2 core started with
h2's ``initiate_upgrade_connection``, as HTTP/1.0 keep-alive already starts a
fresh h11 connection on them (:meth:`H1State._maybe_complete`).
"""

from __future__ import annotations

import http
import logging
import time
from collections.abc import Callable
from typing import Any, cast, final

import h11
from h2.errors import ErrorCodes

from ._config import Config
from ._errors import LocalProtocolError, RemoteProtocolError
from ._guard import ConnectionGuard
from ._headers import Headers, RequestHead, http_date
from ._output import Output
from ._stream import StreamState

log = logging.getLogger("trio_h2")

# The longest request-target accepted; longer is answered 414. nginx answers
# 414 past one large_client_header_buffers buffer (8 KiB), Apache past
# LimitRequestLine (8190 bytes for the whole line).
MAX_TARGET = 8 * 1024

# Request body a response left unread that is read and dropped to keep the
# connection alive; past it the connection is closed. Go's server reads up
# to 256 KiB (maxPostHandlerReadBytes) for the same purpose.
DISCARD_LIMIT = 256 * 1024

_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
# h11 parses any HTTP/d.d; RFC 9112 section 2.3: a higher minor version of
# HTTP/1 is served as the highest one we implement.
_NO_BODY_STATUSES = (204, 304)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


@final
class H1State:
    """h11 and the current exchange of one HTTP/1.1 connection.

    Methods never block and never raise for the client's mistakes: those are
    answered with an error response and recorded in :attr:`error`.
    """

    def __init__(self, config: Config, *, peer: str = "?",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.peer = peer
        self.guard = ConnectionGuard(config, clock)
        self.error: RemoteProtocolError | None = None
        self.terminated = False
        """No more exchanges; what is queued now is the last output."""
        self.draining = False
        self.current: StreamState | None = None
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
        self._unread = 0
        """Bytes of the current request body waiting for the application."""
        self._discard: int | None = None
        """Bytes of an abandoned request body still to be dropped, or None."""
        self._remaining: int | None = None
        """Response body bytes still due by its framing (None: not counted)."""
        self._chunked = False
        """The response is chunked: trailers can go out."""
        self._renew = False
        """HTTP/1.0 keep-alive: h11 serves 1.0 without it, so the exchange
        ends with a fresh h11 connection instead of its next cycle."""

    def _new_h11(self) -> h11.Connection:
        # h11's bound on bytes held for an unfinished event: the request
        # head, a chunk header, the trailers.
        return h11.Connection(h11.SERVER,
                              max_incomplete_event_size=self.config.max_header_list_size)

    # ------------------------------------------------------------------ input

    def initiate(self) -> None:
        """Nothing to say first; the client's first bytes chose HTTP/1.1 already."""
        self.guard.preface_done()

    def receive_data(self, data: bytes | bytearray) -> list[StreamState]:
        """Process bytes from the client. Returns the exchange to start, if
        a request head completed."""
        if self.terminated or self._closing:
            return []  # closing after this response; nothing more is read
        state = self._h11.their_state
        if state is h11.IDLE:
            self._head_started = True
        elif state is not h11.SEND_BODY:
            self._held = True  # a request is complete: the next one waits
        self._h11.receive_data(cast(bytes, data))  # h11 takes any bytes-like object
        return self._parse()

    def receive_buffered(self) -> list[StreamState]:
        """Parse the requests held while the last exchange ran, once it is done."""
        if not self._held or self.current is not None or self.finished:
            return []
        self._held = False
        self._head_started = True
        return self._parse()

    @property
    def reading_paused(self) -> bool:
        return self._held or (self._unread >= self.config.initial_window_size
                              and self._discard is None)

    def _parse(self) -> list[StreamState]:
        started: list[StreamState] = []
        conn = self._h11
        while not self.terminated:
            if conn.their_state is h11.MUST_CLOSE:
                break  # Connection: close or HTTP/1.0: h11 reads nothing more
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc.error_status_hint, str(exc))
                break
            kind = type(event)
            if kind is h11.Data:
                self._body(cast(h11.Data, event).data)
            elif kind is h11.Request:
                stream = self._request(cast(h11.Request, event))
                if stream is not None:
                    started.append(stream)
            elif kind is h11.EndOfMessage:
                self._request_ended()
            else:  # NEED_DATA or PAUSED (ConnectionClosed needs an EOF we never pass)
                # h11 pauses after a complete request only with bytes
                # waiting, and after an upgrade request (MIGHT_SWITCH_PROTOCOL)
                # whatever waits: look (one read at most, once per request).
                if event is h11.PAUSED and (conn.their_state is h11.DONE
                                            or conn.trailing_data[0]):
                    self._held = True
                break
        self.guard.header_pending(self._head_started and not self.terminated
                                  and conn.their_state is h11.IDLE)
        return started

    def _request(self, event: h11.Request) -> StreamState | None:
        self._head_started = False
        version = _VERSIONS.get(event.http_version)
        if version is None:
            if event.http_version[:2] != b"1.":
                self._bad_request(505, f"HTTP/{event.http_version.decode()} is not "
                                       "supported (HTTP/1.0, HTTP/1.1 and HTTP/2 are)")
                return None
            version = "1.1"
        if len(event.target) > MAX_TARGET:
            self._bad_request(414, f"request-target of {len(event.target)} bytes, "
                                   f"over {MAX_TARGET}")
            return None
        fields = list(event.headers)
        if len(fields) > self.config.max_header_fields:
            self._bad_request(431, f"{len(fields)} header fields, over max_header_fields "
                                   f"{self.config.max_header_fields}")
            return None
        size = sum(len(name) + len(value) + 32 for name, value in fields)
        if size > self.config.max_header_list_size:
            self._bad_request(431, f"header fields of {size} bytes, over "
                                   f"max_header_list_size {self.config.max_header_list_size}")
            return None
        names = {name for name, _ in fields}
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 section 6.3: a smuggling attempt, or a broken proxy.
            self._bad_request(400, "both Content-Length and Transfer-Encoding")
            return None
        if event.method == b"CONNECT":
            self._bad_request(501, "CONNECT is not supported")
            return None
        head = _request_head(event.method, event.target, fields)
        if head is None:
            self._bad_request(400, f"invalid request-target {event.target[:64]!r}")
            return None
        if self.draining:
            self._closing = True  # the drain began while this head arrived
            return None
        self._count += 1
        stream = StreamState(self._count, head, http_version=version)
        self._renew = version == "1.0" and b"keep-alive" in _tokens(fields, b"connection")
        self.current = stream
        self._unread = 0
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
        stream.body.append((data, len(data)))
        self._unread += len(data)
        self.guard.body_arrived(stream.stream_id)
        stream.wake()

    def _request_ended(self) -> None:
        stream = self.current
        if stream is None:
            return
        stream.body_ended = True
        self._discard = None
        stream.wake()
        self._maybe_complete()

    # ------------------------------------------------------ handler requests

    def take_body(self, stream: StreamState) -> bytes:
        """Everything buffered for ``stream``; the reader may read again."""
        data = b"".join(chunk for chunk, _ in stream.body)
        stream.body.clear()
        self._unread = 0
        return data

    def body_wanted(self, stream: StreamState, wanted: bool) -> None:
        self.guard.body_wanted(stream.stream_id, wanted and not stream.closed)

    def send_headers(self, stream: StreamState, headers: Headers, *, end_stream: bool) -> None:
        """Queue the response head (``:status`` first, as ``_headers`` makes it)."""
        assert stream is self.current and not stream.headers_sent and not stream.disconnected
        stream.headers_sent = True
        status = int(headers[0][1])
        fields = headers[1:]
        if self.draining:
            fields.append((b"connection", b"close"))
        reason = _reason(status)
        try:
            response = h11.Response(status_code=status, headers=fields, reason=reason)
            head = self._h11.send(response)
        except h11.LocalProtocolError as exc:
            # The fields passed _headers; h11 still refuses (a content-length
            # that is not a number, say): the response cannot be framed.
            self._abandon(f"h11 refused the response head: {exc}")
            raise LocalProtocolError(f"invalid response head: {exc}") from exc
        length = next((value for name, value in response.headers
                       if name == b"content-length"), None)  # as h11 normalized it
        no_body = stream.head.method == b"HEAD" or status in _NO_BODY_STATUSES
        self._remaining = 0 if no_body else None if length is None else int(length)
        self._chunked = length is None and not no_body and stream.http_version != "1.0"
        # An HTTP/1.0 client that asked for keep-alive keeps it if it can
        # tell where the body ends. h11 has no keep-alive for HTTP/1.0 and
        # adds "connection: close"; this head says keep-alive instead.
        self._renew = self._renew and not self.draining and (no_body or length is not None)
        if self._renew:
            head = _head(status, reason, [*fields, (b"connection", b"keep-alive")])
        self._out.append(head)
        if end_stream:
            self._end_response(stream, None)

    def offer(self, stream: StreamState, size: int, *, end_stream: bool) -> None:
        """The handler waits to hand over a chunk of ``size`` bytes of
        response body; :meth:`pull` takes it with ``stream.take``. Raises
        :exc:`LocalProtocolError` if it goes past the response's
        ``content-length`` (or, when it ends the body, falls short of it)."""
        assert stream.headers_sent and stream.offered is None and not stream.response_ended
        remaining = self._remaining
        if remaining is not None:
            if size > remaining or (end_stream and size < remaining):
                what = "HEAD, 204 or 304" if remaining == 0 else "content-length"
                raise LocalProtocolError(
                    f"response body of {size} more bytes where its {what} "
                    f"leaves {remaining}")
            self._remaining = remaining - size
        stream.offered = size

    def reset(self, stream: StreamState, code: ErrorCodes) -> None:
        """An HTTP/1.1 exchange cannot be reset alone: the connection closes."""
        if stream.closed or self.terminated:
            return
        self._abandon(f"exchange {stream.stream_id} abandoned ({code.name})")

    def handler_finished(self, stream: StreamState) -> bool:
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

    def pull(self, budget: int) -> bool:
        """Frame the current response body until the output holds about
        ``budget`` bytes, taking each chunk from the handler as the last one
        is framed. Returns whether it stopped with room left because the
        handler is making its next chunk (see ``_state.ConnectionState.pull``)."""
        stream = self.current
        if stream is None:
            return False
        out = self._out
        took = False
        while not self.terminated and len(out) < budget:
            outbox = stream.outbox
            if outbox is None:
                if stream.offered is None:
                    return took and not stream.response_ended
                took = True
                chunk = stream.take()
                stream.offered = None
                if chunk is None:  # its send() was cancelled: the exchange ends
                    return False
                outbox = memoryview(chunk.data)
                stream.outbox_end = chunk.end_stream
                stream.trailers = chunk.trailers
            size = min(len(outbox), budget - len(out))
            if size:
                # h11 takes any bytes-like object (its docs); typed as bytes.
                self._send(h11.Data(data=cast(bytes, outbox[:size])))
            if size < len(outbox):
                stream.outbox = outbox[size:]
                return False
            stream.outbox = None
            if stream.outbox_end:
                self._end_response(stream, stream.trailers)
                return False
        return False

    def data_to_send(self) -> bytes:
        return self._out.take()

    def _send(self, event: h11.Data | h11.EndOfMessage) -> None:
        pieces = self._h11.send_with_data_passthrough(event)
        for piece in pieces or ():
            self._out.append(piece)

    def _end_response(self, stream: StreamState, trailers: Headers | None) -> None:
        # Trailers need chunked framing: HTTP/1.0 and content-length
        # responses go without them.
        self._send(h11.EndOfMessage(headers=trailers if trailers and self._chunked else []))
        stream.trailers = None
        stream.response_ended = True
        self._maybe_complete()
        stream.wake()  # a handler that returned waits for its last chunk to be framed

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
        if self.draining:
            self._closing = True
        elif self._renew:
            held, _ = conn.trailing_data
            self._h11 = self._new_h11()
            self._held = bool(held)
            if held:  # (b"" would mean EOF to h11)
                self._h11.receive_data(held)
        elif conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
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
        return stream is not None and (stream.outbox is not None or stream.offered is not None)

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
        return (self._closing or (self.draining and self.current is None)) and not self.running

    @property
    def linger(self) -> bool:
        """The client may still be sending: after an error, with bytes held,
        or with a request body not read to its end."""
        return self.error is not None or self._held or self._h11.their_state not in (
            h11.IDLE, h11.DONE, h11.MUST_CLOSE)

    # ------------------------------------------------------------- lifetime

    def start_drain(self) -> None:
        """Finish the current exchange (its response says ``Connection:
        close`` if its head is not out yet), then close."""
        self.draining = True

    def check_timeouts(self) -> float:
        """Act on the timers that have run out; return the next deadline."""
        guard = self.guard
        reason, _, starved = guard.expired()
        stream = self.current
        for stream_id in starved:
            guard.body_wanted(stream_id, False)
            if stream is not None and stream.stream_id == stream_id:
                self._timed_out(f"no request body for {self.config.body_timeout}s")
        if reason == "idle":
            log.debug("%s: idle for %ss; closing", self.peer, self.config.idle_timeout)
            guard.idle_since = None
            self.start_drain()
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

    def _bad_request(self, status: int, reason: str) -> None:
        """The client broke HTTP/1.1: ``status``, one log line, then close."""
        if self.terminated:
            return
        log.info("%s: bad request, answered %d: %s", self.peer, status, reason)
        self.error = RemoteProtocolError(reason, error_code=ErrorCodes.PROTOCOL_ERROR,
                                         status=status)
        self._error_response(status, reason)
        self._terminate()

    def _error_response(self, status: int, reason: str) -> None:
        """A small plain-text response saying what was wrong, if the current
        exchange (if any) has not started its own response."""
        stream = self.current
        if stream is not None and stream.headers_sent:
            return
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        phrase = _reason(status)
        body = f"{status} {phrase.decode()}: {reason}\n".encode()
        fields = [(b"content-type", b"text/plain; charset=utf-8"),
                  (b"content-length", str(len(body)).encode()),
                  (b"connection", b"close"), (b"date", http_date())]
        try:
            self._out.append(self._h11.send(h11.Response(status_code=status, headers=fields,
                                                         reason=phrase)))
            if stream is None or stream.head.method != b"HEAD":
                self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:  # h11's state allows no response
            log.debug("%s: no %d response: %s", self.peer, status, exc)

    def _terminate(self) -> None:
        self.terminated = True
        stream = self.current
        if stream is not None and not stream.closed:
            stream.closed = stream.disconnected = stream.response_ended = True
            stream.outbox = None
            stream.offered = None
            stream.body.clear()
            self.guard.body_wanted(stream.stream_id, False)
            stream.hang_up()
            stream.wake()

    def stats(self) -> dict[str, Any]:
        """Counters for tests and debugging."""
        return {"exchanges": self._count, "buffered_body_bytes": self._unread,
                "held": self._held, "output": len(self._out)}


def _tokens(fields: Headers, name: bytes) -> set[bytes]:
    """The comma-separated, case-insensitive tokens of the fields ``name``."""
    return {token.strip().lower() for field, value in fields if field == name
            for token in value.split(b",")}


def _request_head(method: bytes, target: bytes, fields: Headers) -> RequestHead | None:
    """The request head for ``target`` in origin, asterisk or absolute form
    (RFC 9112 section 3.2); None for anything else."""
    if target[:1] == b"/":
        return RequestHead(method, b"", None, target, fields)
    if target == b"*":
        return RequestHead(method, b"", None, target, fields) if method == b"OPTIONS" else None
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None
    # RFC 9112 section 3.2.2: the authority in the target overrides Host.
    end = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    authority, path = rest[:end], rest[end:]
    if not authority:
        return None
    if path[:1] != b"/":
        path = b"/" + path
    return RequestHead(method, b"", authority, path, fields)


def _head(status: int, reason: bytes, fields: Headers) -> bytes:
    """A response head as h11 writes one (h11 has no keep-alive for HTTP/1.0)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines += [name + b": " + value + b"\r\n" for name, value in fields]
    lines.append(b"\r\n")
    return b"".join(lines)

