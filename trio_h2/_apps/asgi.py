"""ASGI 3 ``http`` for one exchange: the handler task's ``receive`` and ``send``.

It drives the connection's protocol core through ``_core.protocol.ProtocolCore``
alone, so it serves HTTP/2 streams and HTTP/1.1 exchanges alike; the scope's
``http_version`` says which.

When ``send`` returns: for ``http.response.body``, once the connection's
sender has taken every byte of that body (HTTP/2: framed it as DATA within
the client's flow-control windows; HTTP/1.1: framed it for h11) into the
write it is about to make (at most 128 KiB per connection). Until then the
chunk is the only response data of the exchange that trio_h2 holds, by
reference, never copied into a queue. So an app that streams to a slow
client waits, and one exchange's bytes are never reordered: its next chunk
cannot be offered before the last is taken.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import suppress
from typing import Any, final

import trio
from h2.errors import ErrorCodes

from .._config import Config
from .._core.errors import ClientDisconnected, LocalProtocolError
from .._core.exchange import Address, Exchange
from .._core.forwarded import TrustedProxies, forwarded_client
from .._core.headers import Headers, http_date, response_headers, trailer_headers
from .._io.connection import Connection, StreamHandler
from .scope import build_scope
from .websocket import serve_websocket, websocket_scope

log = logging.getLogger("trio_h2")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DISCONNECT: Message = {"type": "http.disconnect"}
_ERROR_BODY = b"Internal Server Error\n"


def asgi_handler(
    app: ASGIApp,
    config: Config,
    *,
    scheme: str,
    server: Address | None,
    client: Address | None,
    state: dict[str, Any] | None,
) -> StreamHandler:
    """The stream handler that runs ``app`` for each request of one connection.

    With ``config.proxy_headers``, each request from a trusted ``client``
    (``config.forwarded_allow_ips``) gets its scope's ``client`` and
    ``scheme`` from its ``X-Forwarded-For`` and ``X-Forwarded-Proto``
    (``_core.forwarded``); WebSocket and WSGI scopes derive from it."""
    trusted = (TrustedProxies.parse(config.forwarded_allow_ips) if config.proxy_headers
               else None)

    async def handle(conn: Connection, stream: Exchange) -> None:
        extensions: dict[str, Any]
        control = conn.state.scheduler_control
        if control is not None:  # HTTP/2
            extensions = {"http.response.trailers": {}, "trio_h2.priority": stream.priority,
                          "trio_h2.scheduler": control}
        elif stream.http_version == "1.1":  # trailers need chunked framing
            extensions = {"http.response.trailers": {}}
        else:
            extensions = {}
        scope = build_scope(
            stream.head, http_version=stream.http_version, scheme=scheme, server=server,
            client=client, root_path=config.root_path, state=state, extensions=extensions,
        )
        if trusted is not None:  # X-Forwarded-Proto wins over HTTP/2's :scheme too
            scope["client"], scope["scheme"] = forwarded_client(
                stream.head.headers, client, scope["scheme"], trusted)
        if stream.head.protocol is not None:  # a WebSocket handshake (HTTP/1.1 or 2)
            await serve_websocket(conn, stream, websocket_scope(scope, stream), app, config)
            return
        await _Exchange(conn, stream, scope).run(app)

    return handle


@final
class _Exchange:
    """One request and its response, as the application sees them."""

    def __init__(self, conn: Connection, stream: Exchange, scope: Scope) -> None:
        self._conn = conn
        self._state = conn.state
        self._stream = stream
        self._scope = scope
        # A ParkingLot, not a Waker: an application may wait in receive()
        # in one task (for http.disconnect) while it sends in another.
        self._lot = trio.lowlevel.ParkingLot()
        stream.wake = self._lot.unpark_all
        self._is_head = stream.head.method == b"HEAD"
        self._request_done = False
        self._start: Headers | None = None
        self._trailers_expected = False
        self._body_done = False
        self._complete = False

    async def run(self, app: ASGIApp) -> None:
        stream = self._stream
        try:
            await app(self._scope, self.receive, self.send)
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

    async def _fail(self) -> None:
        """500 if nothing was sent yet, else RST_STREAM INTERNAL_ERROR."""
        stream = self._stream
        if stream.disconnected:
            return
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

    async def receive(self) -> Message:
        stream = self._stream
        while True:
            if stream.body:
                data = self._state.take_body(stream)
                self._conn.body_taken()
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
        else:
            raise LocalProtocolError(f"unexpected ASGI message {kind!r} on an http scope")

    async def _send_body(self, message: Message) -> None:
        stream = self._stream
        if self._start is None:
            raise LocalProtocolError("http.response.body before http.response.start")
        if self._body_done:
            raise LocalProtocolError("http.response.body after the response body ended")
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise LocalProtocolError(f"http.response.body body must be bytes, not {type(body)}")
        more = bool(message.get("more_body", False))
        if stream.in_flight:
            raise LocalProtocolError("http.response.body sent while another send() of this "
                                     "stream is still waiting")
        self._check_connected()
        end = not more and not self._trailers_expected
        # The whole body in one message: its length is known. For HEAD, only
        # if the app sent the body a GET would get (RFC 9110 section 9.3.2:
        # the same fields as GET, no content).
        length = len(body) if end and (body or not self._is_head) else None
        if self._is_head:
            body = b""
        self._body_done = not more
        self._complete = end
        if not stream.headers_sent:
            headers = _completed(self._start, length)
            self._send_headers(headers, end_stream=end and not body)
            if not body:
                self._conn.wake_sender()
                return
        elif not body and not end:
            return
        self._state.offer(stream, bytes(body), end_stream=end)
        await self._taken()

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

    def _send_headers(self, headers: Headers, *, end_stream: bool) -> None:
        try:
            self._state.send_headers(self._stream, headers, end_stream=end_stream)
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

