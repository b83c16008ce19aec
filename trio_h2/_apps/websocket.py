"""ASGI ``websocket`` for one exchange: the handler task's ``receive`` and
``send`` over a WebSocket (``_core.websocket``) carried by an exchange.

It drives the exchange through ``_core.protocol.ProtocolCore`` alone, so it does
not know what carries the WebSocket: an HTTP/2 extended CONNECT stream (RFC
8441) or an HTTP/1.1 connection after ``101`` (``_core.tunnel``). It answers the
handshake with a ``200`` head when the application accepts; the HTTP/1.1
core turns that into its ``101 Switching Protocols``.

Two tasks besides the application, in the handler's own nursery, once the
WebSocket is accepted:

* The **pump** reads the exchange's request body (the client's bytes) into
  the core and hands each whole message to ``receive``. It holds one
  message: until the application has taken it, the pump takes no more body,
  so the client is stopped by flow control (HTTP/2: no WINDOW_UPDATE) or by
  TCP (HTTP/1.1: the reader's brake). It answers PINGs (one PONG waiting at
  most) and sees the close and the client going away. When the server
  shuts down (:attr:`Exchange.going_away`), it closes the WebSocket with
  1001 "going away" (RFC 6455 section 7.4.1).
* The **keepalive** PINGs every ``Config.websocket_ping_interval`` and ends
  the WebSocket (1011) when no PONG comes within ``websocket_ping_timeout``
  of time in which the pump was reading.

``send`` returns once the connection's sender has taken the frame
(:meth:`WebSocketSession._transmit`, the one place that hands bytes to the
exchange), so an application sending to a client that reads nothing waits,
and the server holds one frame of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, final

import trio
from h2.errors import ErrorCodes

from .._config import Config
from .._core.errors import ClientDisconnected, LocalProtocolError
from .._core.exchange import Exchange
from .._core.headers import Headers, response_headers
from .._core.websocket import (
    ABNORMAL,
    GOING_AWAY,
    INTERNAL_ERROR,
    NORMAL,
    Closed,
    Message,
    WebSocketCore,
    negotiate,
    subprotocols,
)

if TYPE_CHECKING:
    from .._io.connection import Connection
    from .asgi import ASGIApp

log = logging.getLogger("trio_h2")

Event = MutableMapping[str, Any]

_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def websocket_scope(http_scope: dict[str, Any], stream: Exchange) -> dict[str, Any]:
    """The ASGI ``websocket`` scope (ASGI spec 2.4) made from the ``http``
    scope of the handshake request."""
    scope = dict(http_scope)
    scope["type"] = "websocket"
    scope["scheme"] = _SCHEMES.get(scope["scheme"], scope["scheme"])
    del scope["method"]
    scope["subprotocols"] = subprotocols(stream.head.headers)
    scope["extensions"] = {"websocket.http.response": {}}
    return scope


@final
class WebSocketSession:
    """One WebSocket as the application sees it; :meth:`run` runs the
    application for the handshake on ``stream`` to its end."""

    def __init__(self, conn: Connection, stream: Exchange, scope: dict[str, Any],
                 config: Config) -> None:
        self._conn = conn
        self._stream = stream
        self.scope = scope
        self._config = config
        # What the access log says of the WebSocket once run() is over.
        self.status: int | None = None
        """101 (HTTP/1.1) or 200 (HTTP/2) once accepted; a refusal's status."""
        self.response: Headers = []
        self.sent = 0
        """Bytes of WebSocket frames (or of a refusal's body) offered to the connection."""
        self.received = 0
        """Bytes of WebSocket frames taken from the client."""
        self._failed = False  # the application raised
        self._responded = False  # a refusal's response is all taken
        self._lot = trio.lowlevel.ParkingLot()
        stream.wake = self._lot.unpark_all
        self._ws: WebSocketCore | None = None
        self._phase = "connecting"
        """connecting -> accepted -> closed, or -> denying -> denied."""
        self._closed_by_app = False
        """Closed by ``websocket.close``, not by the client, the keepalive
        or the shutdown."""
        self._connect_sent = False
        self._inbox: Event | None = None
        """The one message the pump holds for ``receive``."""
        self._ended: Event | None = None
        """``websocket.disconnect``, once the WebSocket is over."""
        self._reading = False
        """The pump waits for the client (not for the application)."""
        self._quiet = 0.0
        """Seconds of the current ping's wait spent with the pump not reading."""
        self._nursery: trio.Nursery | None = None
        self._denial: Headers = []

    async def run(self, app: ASGIApp) -> None:
        stream = self._stream
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await app(self.scope, self.receive, self.send)
            except Exception as exc:
                if not (isinstance(exc, ClientDisconnected) and self._ended is not None):
                    log.error("%s: stream %d: websocket application raised %s",
                              self._conn.peer, stream.stream_id, type(exc).__name__, exc_info=exc)
                    self._failed = True
                    await self._finish(INTERNAL_ERROR, failed=True)
            else:
                await self._finish(NORMAL, failed=False)
            nursery.cancel_scope.cancel()

    @property
    def outcome(self) -> str:
        """``ok``, ``error`` or ``reset`` (see ``_core.accesslog.OUTCOMES``),
        from what has happened so far: the connection may end (and cancel
        this handler) as soon as the client has seen the end."""
        if self._failed:
            return "error"
        ended = self._ended
        if ended is not None:  # 1006: no close handshake; 1011: no PONG (the keepalive)
            return "reset" if ended["code"] in (ABNORMAL, INTERNAL_ERROR) else "ok"
        return "ok" if self._responded else "reset"

    async def _finish(self, code: int, *, failed: bool) -> None:
        """The application is done: close what it left open."""
        if self._stream.disconnected:
            return
        if self._phase == "connecting":
            # Closed (or failed) before accepting: RFC 6455 section 4.2.2's
            # refusal, 403 as uvicorn and Hypercorn answer (500 if it raised).
            await self._respond(500 if failed else 403, [], b"")
        elif self._phase == "accepted":
            with trio.move_on_after(self._config.send_timeout):
                await self._close(code, "")
        elif self._phase == "denying":
            self._conn.state.reset(self._stream, ErrorCodes.INTERNAL_ERROR)
            self._conn.wake_sender()

    # ------------------------------------------------------------ receive

    async def receive(self) -> Event:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        while True:
            if self._inbox is not None:
                event, self._inbox = self._inbox, None
                self._lot.unpark_all()  # the pump may read again
                return event
            if self._ended is not None:
                return self._ended
            if self._phase not in ("connecting", "accepted") or self._stream.disconnected:
                # Seen here, not only by the pump: when the connection is
                # lost its tasks are cancelled, and this wake-up may be the
                # application's last chance to hear of it.
                return self._disconnected(ABNORMAL, "")
            await self._lot.park()

    def _disconnected(self, code: int, reason: str) -> Event:
        if self._ended is None:
            self._ended = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._lot.unpark_all()
        return self._ended

    # --------------------------------------------------------------- send

    async def send(self, message: Event) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            await self._accept(message)
        elif kind == "websocket.send":
            await self._send_message(message)
        elif kind == "websocket.close":
            code = message.get("code") or NORMAL
            if self._phase == "connecting":
                await self._respond(403, [], b"")
            elif self._phase == "accepted":
                self._closed_by_app = True
                await self._close(int(code), str(message.get("reason") or ""))
            else:
                self._check_ended()
                raise LocalProtocolError(f"websocket.close after the WebSocket {self._phase}")
        elif kind == "websocket.http.response.start":
            if self._phase != "connecting":
                raise LocalProtocolError(f"{kind} after the handshake was answered")
            self._phase = "denying"
            self._denial = response_headers(message["status"], message.get("headers", ()))
        elif kind == "websocket.http.response.body":
            if self._phase != "denying":
                raise LocalProtocolError(f"{kind} without websocket.http.response.start")
            body = bytes(message.get("body", b""))
            if message.get("more_body", False):
                raise LocalProtocolError("more_body is not supported in a websocket denial")
            await self._respond(0, self._denial, body)
        else:
            raise LocalProtocolError(f"unexpected ASGI message {kind!r} on a websocket scope")

    async def _accept(self, message: Event) -> None:
        if self._phase != "connecting":
            raise LocalProtocolError(f"websocket.accept after the WebSocket {self._phase}")
        self._check_connected()
        head = self._stream.head
        extensions, accepted = negotiate(head.headers)
        headers = response_headers(200, message.get("headers", ()))
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            if subprotocol not in self.scope["subprotocols"]:
                raise LocalProtocolError(f"subprotocol {subprotocol!r} was not offered")
            headers.append((b"sec-websocket-protocol", subprotocol.encode()))
        if accepted is not None:
            headers.append((b"sec-websocket-extensions", accepted))
        self._ws = WebSocketCore(max_message_size=self._config.websocket_max_message_size,
                                 extensions=extensions)
        self._phase = "denying"  # if the head fails: the exchange is reset
        self._conn.state.send_headers(self._stream, headers, end_stream=False)
        self._phase = "accepted"
        self.status = 200 if self._stream.http_version == "2" else 101  # (the tunnel's 101)
        self.response = headers
        self._conn.wake_sender()  # (and HTTP/1.1 hands over to the tunnel)
        assert self._nursery is not None
        self._nursery.start_soon(self._pump)
        self._nursery.start_soon(self._keepalive)

    async def _send_message(self, message: Event) -> None:
        self._check_ended()
        if self._phase != "accepted" or self._ws is None:
            raise LocalProtocolError(f"websocket.send with the WebSocket {self._phase}")
        self._check_connected()
        text, data = message.get("text"), message.get("bytes")
        if (text is None) == (data is None):
            raise LocalProtocolError("websocket.send needs exactly one of bytes and text")
        if self._ws.closed is not None:
            raise ClientDisconnected(f"stream {self._stream.stream_id}: WebSocket closed")
        self._ws.send_message(str(text) if text is not None else bytes(data or b""))
        await self._transmit()

    async def _close(self, code: int, reason: str) -> None:
        ws = self._ws
        assert ws is not None
        self._phase = "closed"
        ws.close(code, reason)
        self._disconnected(code, reason)
        await self._transmit(end=True)

    async def _respond(self, status: int, headers: Headers, body: bytes) -> None:
        """A real HTTP response instead of the WebSocket (the
        ``websocket.http.response`` extension, or 403)."""
        self._phase = "denied"
        stream = self._stream
        if stream.disconnected:
            return
        if status:
            headers = response_headers(status, ())
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        self._conn.state.send_headers(stream, headers, end_stream=not body)
        self.status, self.response = int(headers[0][1]), headers
        self._conn.wake_sender()
        if body:
            self._conn.state.offer(stream, body, end_stream=True)
            await self._taken()
            self.sent += len(body)
        self._responded = not stream.disconnected

    def _check_ended(self) -> None:
        """The WebSocket was ended by the client, the keepalive or the
        shutdown: the application hears of it as of a socket's end, by its
        next ``receive`` (``websocket.disconnect``) or here, not as a
        mistake of its own."""
        if self._phase == "closed" and not self._closed_by_app:
            raise ClientDisconnected(f"stream {self._stream.stream_id}: WebSocket closed")

    def _check_connected(self) -> None:
        if self._stream.disconnected or self._ended is not None:
            raise ClientDisconnected(f"stream {self._stream.stream_id}: client disconnected")

    # ---------------------------------------------------- the exchange's bytes

    async def _transmit(self, *, end: bool = False) -> None:
        """Hand what the WebSocket core queued to the exchange, one offer at
        a time, and return once the sender has taken it all (and, with
        ``end``, the end of the response: HTTP/2 END_STREAM, or the
        tunnel's end)."""
        ws, stream = self._ws, self._stream
        assert ws is not None
        while True:
            if stream.disconnected:
                raise ClientDisconnected(f"stream {stream.stream_id}: client disconnected")
            if not stream.in_flight:
                if ws.has_output:
                    data = ws.data_to_send()
                    self.sent += len(data)
                    self._conn.state.offer(stream, data, end_stream=end)
                    self._conn.wake_sender()
                elif end and not stream.response_ended:
                    self._conn.state.offer(stream, b"", end_stream=True)
                    self._conn.wake_sender()
                else:
                    return
            await self._lot.park()

    async def _taken(self) -> None:
        stream = self._stream
        while stream.in_flight and not stream.disconnected:
            await self._lot.park()

    async def _pump(self) -> None:
        """Client bytes to messages for ``receive``, one message held."""
        ws, stream, conn = self._ws, self._stream, self._conn
        assert ws is not None
        while True:
            if stream.going_away and self._phase == "accepted":
                await self._go_away()
                return
            pongs = ws.pongs
            event = ws.next_event()
            if ws.pongs != pongs:
                self._lot.unpark_all()  # the keepalive waits for it
            if event is None:
                if ws.has_output:
                    with suppress(ClientDisconnected):
                        await self._transmit()  # the PONG
                if stream.body:
                    data = conn.state.take_body(stream)
                    self.received += len(data)
                    ws.receive_data(data)
                    conn.body_taken()
                    continue
                if stream.disconnected or stream.body_ended:
                    if self._phase == "accepted":
                        self._phase = "closed"
                        self._disconnected(ABNORMAL, "")
                        if not stream.disconnected:
                            conn.state.reset(stream, ErrorCodes.NO_ERROR)
                            conn.wake_sender()
                    return
                self._reading = True
                try:
                    await self._lot.park()
                finally:
                    self._reading = False
            elif isinstance(event, Message):
                key = "text" if isinstance(event.data, str) else "bytes"
                self._inbox = {"type": "websocket.receive", key: event.data}
                self._lot.unpark_all()
                while (self._inbox is not None and not stream.disconnected
                       and not stream.going_away):
                    await self._lot.park()
            elif isinstance(event, Closed):
                self._phase = "closed"
                if event.by_client:
                    log.debug("%s: stream %d: WebSocket closed by the client (%d)",
                              conn.peer, stream.stream_id, event.code)
                else:
                    log.info("%s: stream %d: WebSocket closed with %d: %s", conn.peer,
                             stream.stream_id, event.code, event.reason)
                self._disconnected(event.code, event.reason)
                with trio.move_on_after(self._config.send_timeout), \
                        suppress(ClientDisconnected):
                    await self._transmit(end=True)
                return

    async def _go_away(self) -> None:
        """The server shuts down: close with 1001, which the application's
        next ``receive`` reports (after the message the pump holds, if
        any), and end the exchange. Bounded by ``send_timeout``, and the
        whole shutdown by ``shutdown_timeout``."""
        log.debug("%s: stream %d: the server shuts down; closing the WebSocket with %d",
                  self._conn.peer, self._stream.stream_id, GOING_AWAY)
        with trio.move_on_after(self._config.send_timeout), suppress(ClientDisconnected):
            await self._close(GOING_AWAY, "server shutting down")

    async def _keepalive(self) -> None:
        """PING every ``websocket_ping_interval``; no PONG within
        ``websocket_ping_timeout`` of reading time: close 1011, end the exchange."""
        ws, config = self._ws, self._config
        assert ws is not None
        while True:
            await trio.sleep(config.websocket_ping_interval)
            if ws.closed is not None:
                return
            pongs = ws.pongs
            ws.ping(os.urandom(4))
            try:
                await self._transmit()
            except ClientDisconnected:
                return
            waited = 0.0
            while ws.pongs == pongs and waited < config.websocket_ping_timeout:
                awaited = self._reading or self._inbox is None
                start = trio.current_time()
                with trio.move_on_after(config.websocket_ping_timeout - waited):
                    await self._lot.park()  # (the pump wakes it for each PONG)
                if awaited:  # only time in which the client was the one awaited
                    waited += trio.current_time() - start
            if ws.pongs == pongs:
                log.info("%s: stream %d: no PONG within %ss; closing the WebSocket",
                         self._conn.peer, self._stream.stream_id,
                         config.websocket_ping_timeout)
                self._phase = "closed"
                ws.close(INTERNAL_ERROR, "keepalive ping timeout")
                self._disconnected(INTERNAL_ERROR, "keepalive ping timeout")
                # A client that does not answer may not read either.
                with trio.move_on_after(1.0), suppress(ClientDisconnected):
                    await self._transmit(end=True)
                self._conn.state.reset(self._stream, ErrorCodes.CANCEL)
                self._conn.wake_sender()
                return
