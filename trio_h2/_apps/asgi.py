"""ASGI 3 ``http`` for one exchange: the handler task's ``receive`` and ``send``.

It drives the connection's protocol core through ``_core.protocol.ProtocolCore``
alone, so it serves HTTP/2 streams and HTTP/1.1 exchanges alike; the scope's
``http_version`` says which.

When ``send`` returns: for ``http.response.body``, once the connection's
sender has taken every byte of that body (HTTP/2: framed it as DATA within
the client's flow-control windows; HTTP/1.1: framed it for h11, at once
when no write is under way) into the write it is about to make (at most
128 KiB per connection). Until then the
chunk is the only response data of the exchange that trio_h2 holds, by
reference, never copied into a queue. So an app that streams to a slow
client waits, and one exchange's bytes are never reordered: its next chunk
cannot be offered before the last is taken.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import suppress
from typing import Any, final
from urllib.parse import quote

import trio
from h2.errors import ErrorCodes

from .._config import Config
from .._core.accesslog import AccessAtoms
from .._core.errors import ClientDisconnected, LocalProtocolError
from .._core.exchange import (
    DISCARD_BYTES,
    DISCARD_PAUSE,
    DISCARD_SECONDS,
    Address,
    Exchange,
    awaits_unread_body,
)
from .._core.forwarded import TrustedProxies, forwarded_client
from .._core.headers import (
    Headers,
    MalformedRequest,
    early_hints_headers,
    http_date,
    response_headers,
    trailer_headers,
    validate_request,
)
from .._io.connection import Connection, StreamHandler
from .scope import build_scope
from .websocket import WebSocketSession, websocket_scope

log = logging.getLogger("trio_h2")
ACCESS_LOG = logging.getLogger("trio_h2.access")
"""One line per exchange, at INFO, once it has ended (:attr:`Config.access_log_format`)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DISCONNECT: Message = {"type": "http.disconnect"}

# A file is sent in chunks of this many bytes (pathsend, zerocopysend), each
# read in a worker thread once the last is framed, so a stream holds at most
# two (one offered, one being read), and one while the client's window is
# shut: max_concurrent_streams x 128 KiB per connection that stops reading,
# until send_timeout. One piece is one sender turn (SEND_BATCH). Measured by
# bench/pathsend.py (64 MiB, CPU per MiB, h2c / HTTP/1.1): 64 KiB pieces
# 4.4 / 2.7 ms, 128 KiB 2.3 / 1.1 ms, 256 KiB 1.3 / 0.8 ms; the thread hop
# per piece dominates below 128 KiB.
FILE_PIECE = 128 * 1024

# Characters left as they are when a push's decoded path becomes its :path
# (RFC 3986 section 3.3's pchar, and "/"); the rest are percent-encoded.
PATH_SAFE = "/:@!$&'()*+,;=-._~"
_ERROR_BODY = b"Internal Server Error\n"


def asgi_handler(
    app: ASGIApp,
    config: Config,
    *,
    scheme: str,
    server: Address | None,
    client: Address | None,
    state: dict[str, Any] | None,
    tls: dict[str, Any] | None = None,
) -> StreamHandler:
    """The stream handler that runs ``app`` for each request of one connection.

    With ``config.proxy_headers``, each request from a trusted ``client``
    (``config.forwarded_allow_ips``) gets its scope's ``client`` and
    ``scheme`` from its ``X-Forwarded-For`` and ``X-Forwarded-Proto``
    (``_core.forwarded``); WebSocket and WSGI scopes derive from it.

    ``tls`` is the connection's ``tls`` extension (``_apps.scope.tls_extension``),
    None on plain TCP. Each extension is in a scope only where it works for
    that exchange (docs/asgi.rst): ``http.response.early_hint`` where the
    protocol core sends 1xx responses, ``http.response.push`` where it may
    push now, ``http.response.pathsend`` and ``http.response.zerocopysend``
    everywhere.

    When :data:`ACCESS_LOG` is enabled for INFO, each exchange is logged to
    it once its handler is done (its response ended, or it was reset): one
    check per exchange when it is not."""
    trusted = (TrustedProxies.parse(config.forwarded_allow_ips) if config.proxy_headers
               else None)

    async def handle(conn: Connection, stream: Exchange) -> None:
        extensions: dict[str, Any] = {"http.response.pathsend": {},
                                      "http.response.zerocopysend": {}}
        control = conn.state.scheduler_control
        if control is not None:  # HTTP/2
            extensions["http.response.trailers"] = {}
            extensions["trio_h2.priority"] = stream.priority
            extensions["trio_h2.scheduler"] = control
        elif stream.http_version == "1.1":  # trailers need chunked framing
            extensions["http.response.trailers"] = {}
        if conn.state.informs(stream):
            extensions["http.response.early_hint"] = {}
        if conn.state.pushes(stream):
            extensions["http.response.push"] = {}
        if tls is not None:
            extensions["tls"] = tls
        scope = build_scope(
            stream.head, http_version=stream.http_version, scheme=scheme, server=server,
            client=client, root_path=config.root_path, state=state, extensions=extensions,
        )
        if trusted is not None:  # X-Forwarded-Proto wins over HTTP/2's :scheme too
            scope["client"], scope["scheme"] = forwarded_client(
                stream.head.headers, client, scope["scheme"], trusted)
        exchange: _Exchange | WebSocketSession
        if stream.head.protocol is not None:  # a WebSocket handshake (HTTP/1.1 or 2)
            exchange = WebSocketSession(conn, stream, websocket_scope(scope, stream), config)
        else:
            exchange = _Exchange(conn, stream, scope)
        if not ACCESS_LOG.isEnabledFor(logging.INFO):  # the access log's one gate
            await exchange.run(app)
            return
        started, clock = time.time(), time.perf_counter()
        try:
            await exchange.run(app)
        finally:
            # Formatted by logging, lazily: AccessAtoms computes the atoms the format names.
            ACCESS_LOG.info(config.access_log_format, AccessAtoms(
                head=stream.head, stream_id=stream.stream_id, http_version=stream.http_version,
                scheme=exchange.scope["scheme"], client=exchange.scope["client"], peer=client,
                status=exchange.status, response=exchange.response, sent=exchange.sent,
                received=exchange.received, outcome=exchange.outcome, started=started,
                duration=time.perf_counter() - clock))

    return handle


@final
class _Exchange:
    """One request and its response, as the application sees them."""

    def __init__(self, conn: Connection, stream: Exchange, scope: Scope) -> None:
        self._conn = conn
        self._state = conn.state
        self._stream = stream
        self.scope = scope
        # What the access log says of the exchange once run() is over.
        self.response: Headers = []
        """The response header block, once it went to the connection."""
        self.sent = 0
        """Response body bytes the connection's sender has taken."""
        self.received = 0
        """Request body bytes the application has received."""
        self._failed = False  # _fail() answered for the application
        self._delivered = False  # the sender has taken the response's end
        # A ParkingLot, not a Waker: an application may wait in receive()
        # in one task (for http.disconnect) while it sends in another.
        self._lot = trio.lowlevel.ParkingLot()
        stream.wake = self._lot.unpark_all
        self._is_head = stream.head.method == b"HEAD"
        self._request_done = False
        self._body_read = False
        """The application has taken some of the request body."""
        self._start: Headers | None = None
        self._trailers_expected = False
        self._body_done = False
        self._complete = False

    async def run(self, app: ASGIApp) -> None:
        stream = self._stream
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if _propagates(exc):
                raise
            if isinstance(exc, ClientDisconnected) and stream.disconnected:
                return  # the app noticed the client left; nothing to answer
            log.error("%s: stream %d: application raised %s", self._conn.peer,
                      stream.stream_id, type(exc).__name__, exc_info=exc)
            await self._fail()
        else:
            if not self._complete and not stream.disconnected:
                log.error("%s: stream %d: application returned without completing the response",
                          self._conn.peer, stream.stream_id)
                await self._fail()

    @property
    def outcome(self) -> str:
        """``ok``, ``error`` or ``reset`` (see ``_core.accesslog.OUTCOMES``),
        from what has happened so far: the connection may end (and cancel
        this handler) as soon as the client has the whole response."""
        if self._failed:
            return "error"
        return "ok" if self._delivered else "reset"

    @property
    def status(self) -> int | None:
        """The response status, once its head went to the connection."""
        return int(self.response[0][1]) if self.response else None

    async def _fail(self) -> None:
        """500 if nothing was sent yet, else RST_STREAM INTERNAL_ERROR."""
        stream = self._stream
        if stream.disconnected:
            return
        self._failed = True
        if stream.headers_sent:
            self._state.reset(stream, ErrorCodes.INTERNAL_ERROR)
            self._conn.wake_sender()
            return
        headers = [(b":status", b"500"), (b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", str(len(_ERROR_BODY)).encode()), (b"date", http_date())]
        try:
            self._send_headers(headers, end_stream=self._is_head)
        except ClientDisconnected:
            return  # h2 failed and the connection is closing
        if not self._is_head:
            self._state.offer(stream, _ERROR_BODY, end_stream=True)
        self._complete = True
        with suppress(ClientDisconnected):
            await self._taken()
            if not self._is_head:
                self.sent += len(_ERROR_BODY)

    async def receive(self) -> Message:
        stream = self._stream
        while True:
            if stream.body:
                data = self._state.take_body(stream)
                self._body_read = True
                self._conn.body_taken()
                self.received += len(data)
                more = not stream.body_ended or bool(stream.body)
                self._request_done = not more
                return {"type": "http.request", "body": data, "more_body": more}
            if stream.disconnected:
                return _DISCONNECT
            if not self._request_done:
                if stream.body_ended:
                    self._request_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            elif self._complete or stream.closed:
                return _DISCONNECT
            if self._request_done:
                await self._lot.park()  # only for the end of the exchange
                continue
            # body_timeout runs; a client that expects 100-continue gets it now
            self._state.body_wanted(stream, True)
            if self._state.output_backlog:
                self._conn.wake_sender()  # the 100 Continue
            else:
                self._conn.check_deadlines()
            try:
                await self._lot.park()
            finally:
                self._state.body_wanted(stream, False)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._start is not None:
                raise LocalProtocolError("http.response.start sent twice")
            self._start = response_headers(message["status"], message.get("headers", ()))
            self._trailers_expected = bool(message.get("trailers", False))
            self._check_connected()
        elif kind == "http.response.body":
            await self._send_body(message)
        elif kind == "http.response.trailers":
            await self._send_trailers(message)
        elif kind == "http.response.pathsend":
            await self._send_path(message)
        elif kind == "http.response.zerocopysend":
            await self._send_zerocopy(message)
        elif kind == "http.response.early_hint":
            self._early_hint(message)
        elif kind == "http.response.push":
            self._push(message)
        else:
            raise LocalProtocolError(f"unexpected ASGI message {kind!r} on an http scope")

    async def _send_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise LocalProtocolError(f"http.response.body body must be bytes, not {type(body)}")
        self._check_body("http.response.body")
        await self._body(body, more=bool(message.get("more_body", False)))

    def _check_body(self, kind: str) -> None:
        """Raise if a body message of ``kind`` cannot be sent now."""
        if self._start is None:
            raise LocalProtocolError(f"{kind} before http.response.start")
        if self._body_done:
            raise LocalProtocolError(f"{kind} after the response body ended")
        if self._stream.in_flight:
            raise LocalProtocolError(f"{kind} sent while another send() of this "
                                     "stream is still waiting")
        self._check_connected()

    async def _body(self, body: bytes | bytearray | memoryview, *, more: bool,
                    length: int | None = None) -> None:
        """Offer one chunk of the body; ``length``: the whole body's, known
        before its last chunk (a file's size)."""
        stream = self._stream
        assert self._start is not None
        end = not more and not self._trailers_expected
        # The whole body in one message: its length is known. For HEAD, only
        # if the app sent the body a GET would get (RFC 9110 section 9.3.2:
        # the same fields as GET, no content).
        if length is None and end and (body or not self._is_head):
            length = len(body)
        if self._is_head:
            body = b""
        self._body_done = not more
        self._complete = end
        if end and not stream.headers_sent:
            await self._discard_unread_body()
            self._check_connected()
        if not stream.headers_sent:
            headers = _completed(self._start, length)
            self._send_headers(headers, end_stream=end and not body)
            if not body:
                self._conn.wake_sender()
                self._delivered = end  # (queued in the core's output already)
                return
        elif not body and not end:
            return
        self._state.offer(stream, bytes(body), end_stream=end)
        await self._taken()
        self.sent += len(body)
        self._delivered = end

    async def _send_path(self, message: Message) -> None:
        """``http.response.pathsend``: the file at ``path``, as the last body."""
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise LocalProtocolError(
                f"http.response.pathsend path must be an absolute path, not {path!r}")
        self._check_body("http.response.pathsend")
        # O_NONBLOCK: opening a FIFO waits for a writer, in a thread nothing
        # can cancel (nor the connection, nor the server's shutdown, then);
        # this way it opens at once and _send_file refuses it. Reads of a
        # regular file ignore the flag.
        fd = await trio.to_thread.run_sync(
            os.open, path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            await self._send_file(fd, None, None, more=False, kind="http.response.pathsend")
        finally:
            os.close(fd)

    async def _send_zerocopy(self, message: Message) -> None:
        """``http.response.zerocopysend``: ``count`` bytes (else to its end)
        of the file from ``offset`` (else its current position, which
        moves); the application closes the file."""
        file = message.get("file")
        fileno = getattr(file, "fileno", None)
        fd = fileno() if callable(fileno) else file
        offset, count = message.get("offset"), message.get("count")
        if not isinstance(fd, int) or not all(v is None or (isinstance(v, int) and v >= 0)
                                               for v in (offset, count)):
            raise LocalProtocolError("http.response.zerocopysend needs a file with a "
                                     "descriptor, and offset and count >= 0 if given")
        self._check_body("http.response.zerocopysend")
        await self._send_file(fd, offset, count, more=bool(message.get("more_body", False)),
                              kind="http.response.zerocopysend")

    async def _send_file(self, fd: int, offset: int | None, count: int | None, *, more: bool,
                         kind: str) -> None:
        """Send ``count`` bytes of the regular file ``fd`` (to its end if
        None) from ``offset`` (its position if None) as body chunks of at
        most :data:`FILE_PIECE` bytes, each read in a worker thread once
        the last is taken: the file is read no faster than the client takes
        it, and priority chooses between its chunks and other streams' as
        for any body."""
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LocalProtocolError(f"{kind}: not a regular file")
        start = os.lseek(fd, 0, os.SEEK_CUR) if offset is None else offset
        left = max(info.st_size - start, 0) if count is None else count
        length = left if not more and not self._stream.headers_sent else None
        if self._is_head:
            await self._body(b"", more=more, length=length)
            return
        while True:
            size = min(left, FILE_PIECE)
            piece = b"" if not size else await trio.to_thread.run_sync(
                _read_piece, fd, size, offset)
            if len(piece) < size:
                raise LocalProtocolError(f"{kind}: the file ended {left - len(piece)} bytes "
                                         "short of what was to be sent")
            left -= size
            if offset is not None:
                offset += size
            await self._body(piece, more=more or left > 0, length=length)
            if not left:
                return
            self._check_connected()

    async def _discard_unread_body(self) -> None:
        """Before a response that is whole in one message, when
        ``_core.exchange.awaits_unread_body`` says so (the application has
        not read the body, which is still arriving): read and drop it,
        within :data:`DISCARD_BYTES`, :data:`DISCARD_SECONDS` and pauses of
        :data:`DISCARD_PAUSE`, so that the client has sent it all when the
        answer comes. Past a bound the answer goes as it is (and HTTP/2
        resets the request with NO_ERROR once the handler returns). WSGI
        responses come here too (``_apps.wsgi`` sends through this adapter)."""
        stream, state = self._stream, self._state
        if not awaits_unread_body(stream, body_read=self._body_read):
            return
        dropped = 0
        with trio.move_on_after(DISCARD_SECONDS):
            while not stream.disconnected:
                if stream.body:
                    dropped += len(state.take_body(stream))
                    self._conn.body_taken()  # (the credit goes back to the client)
                    if dropped > DISCARD_BYTES:
                        return
                elif stream.body_ended:
                    self._request_done = True
                    return
                else:
                    with trio.move_on_after(DISCARD_PAUSE) as pause:
                        await self._lot.park()
                    if pause.cancelled_caught:
                        return

    async def _send_trailers(self, message: Message) -> None:
        if not self._trailers_expected or not self._body_done or self._complete:
            raise LocalProtocolError(
                "http.response.trailers needs trailers=True in http.response.start and "
                "must follow the last http.response.body")
        if message.get("more_trailers", False):
            raise LocalProtocolError("more_trailers is not supported")
        headers = trailer_headers(message.get("headers", ()))
        self._check_connected()
        self._complete = True
        self._state.offer(self._stream, b"", end_stream=True, trailers=headers)
        await self._taken()
        self._delivered = True

    def _early_hint(self, message: Message) -> None:
        """``http.response.early_hint``: a ``103 Early Hints`` (RFC 8297)
        with a ``link`` field per item of ``links``, before the response
        head. Once the head has gone out (the first body), or where 1xx
        cannot go (HTTP/1.0), it is dropped: the spec lets a server ignore it."""
        headers = early_hints_headers(message.get("links", ()))
        stream = self._stream
        if stream.headers_sent or stream.disconnected or not self._state.informs(stream):
            log.debug("%s: stream %d: early hint dropped (the response head has gone out, "
                      "or no 1xx here)", self._conn.peer, stream.stream_id)
            return
        self._state.send_informational(stream, headers)
        self._conn.wake_sender()

    def _push(self, message: Message) -> None:
        """``http.response.push``: promise a GET of ``path`` with ``headers``
        (and this request's scheme and authority) and run the app for it as
        for a request; ignored where push is off (the client disabled it)."""
        if self._start is None or self._body_done:
            raise LocalProtocolError("http.response.push must come after http.response.start "
                                     "and before the last http.response.body")
        stream = self._stream
        path = message.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise LocalProtocolError(f"http.response.push path must start with /, not {path!r}")
        if stream.disconnected or not self._state.pushes(stream):
            return
        parent = stream.head
        if not parent.host:
            # RFC 9113 section 8.4.1: a promise's :authority must name one the
            # server is authoritative for, and a client resets one that does
            # not; a request without :authority or Host gives none to copy.
            log.debug("%s: stream %d: push of %r dropped: the request has no authority",
                      self._conn.peer, stream.stream_id, path)
            return
        fields = [(b":method", b"GET"), (b":scheme", parent.scheme),
                  (b":authority", parent.host),
                  (b":path", quote(path, safe=PATH_SAFE).encode()),
                  *((bytes(n), bytes(v)) for n, v in message.get("headers", ()))]
        try:
            head = validate_request(fields)
        except MalformedRequest as exc:
            raise LocalProtocolError(f"http.response.push: {exc}") from exc
        pushed = self._state.push(stream, head)
        if pushed is not None:
            self._conn.start_exchange(pushed)
        self._conn.wake_sender()

    def _send_headers(self, headers: Headers, *, end_stream: bool) -> None:
        try:
            self._state.send_headers(self._stream, headers, end_stream=end_stream)
            self.response = headers
        except ClientDisconnected:
            self._conn.wake_sender()  # h2 failed: the connection's GOAWAY must go now
            raise

    def _check_connected(self) -> None:
        if self._stream.disconnected:
            raise ClientDisconnected(f"stream {self._stream.stream_id}: client disconnected")

    async def _taken(self) -> None:
        """Wait until the sender has taken (framed) our offer; raise if it never will."""
        stream = self._stream
        self._conn.wake_sender()
        while stream.in_flight:
            self._check_connected()
            await self._lot.park()


def _read_piece(fd: int, size: int, offset: int | None) -> bytes:
    """Up to ``size`` bytes of ``fd`` at ``offset`` (at its position, which
    moves, if None): in a worker thread, where a slow disk stalls no task."""
    return os.read(fd, size) if offset is None else os.pread(fd, size, offset)


def _propagates(exc: BaseException) -> bool:
    """Cancellation (the connection is ending) and Ctrl-C are not the app's
    failure: they go on up. Whatever else an app raises, asyncio's
    CancelledError, SystemExit or a library's own BaseException included,
    fails its exchange alone; past ``except Exception`` it would end the
    whole server (uvicorn catches BaseException here too)."""
    children = getattr(exc, "exceptions", None)  # a group (not a builtin on 3.10)
    if isinstance(children, tuple):
        return any(_propagates(child) for child in children)
    return isinstance(exc, trio.Cancelled | KeyboardInterrupt)


def _completed(headers: Headers, length: int | None) -> Headers:
    """``headers`` with ``content-length: length`` (when the whole body is
    known) and ``date`` added, unless the application set them."""
    has_length = length is None
    has_date = False
    for name, _ in headers:
        if name == b"content-length":
            has_length = True
        elif name == b"date":
            has_date = True
    if has_length and has_date:
        return headers
    headers = headers.copy()
    if not has_length:
        headers.append((b"content-length", str(length).encode()))
    if not has_date:
        # RFC 9110 section 6.6.1: an origin server with a clock sends Date.
        headers.append((b"date", http_date()))
    return headers

