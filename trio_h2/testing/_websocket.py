"""A small WebSocket client for trio, over HTTP/1.1 (RFC 6455) or HTTP/2
(RFC 8441 extended CONNECT), for testing websocket routes::

    async with open_websocket(server.url + "/ws", http2=True) as ws:
        await ws.send("hello")
        assert await ws.receive() == "hello"

The client does its I/O in the calling task, no task of its own: data is
read from the server only while :meth:`WebSocket.receive` (or a send that
waits for flow-control credit) runs, so a test that stops calling
``receive`` is a client that stops reading, and the server sees TCP (and,
over HTTP/2, the stream window) close. Use one task at a time per
WebSocket. PINGs from the server are answered as they are read.

Errors: a handshake the server refuses raises :exc:`WebSocketRejected`
(with its status, headers and body); a WebSocket that ends raises
:exc:`WebSocketClosed` from ``receive`` and ``send`` (its close code, 1006 if
the transport ended without a close frame).
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import final
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11
import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate

from .._core.h2internals import GoawayTolerantConnection

__all__ = ["WebSocket", "WebSocketClosed", "WebSocketRejected", "open_websocket"]

_READ_SIZE = 65536
_STREAM_ID = 1

Headers = list[tuple[bytes, bytes]]


@final
class WebSocketRejected(Exception):
    """The server answered the handshake with an HTTP response."""

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        super().__init__(f"handshake refused with {status}: {body[:200]!r}")
        self.status = status
        self.headers = headers
        self.body = body


@final
class WebSocketClosed(Exception):
    """The WebSocket ended: ``code`` from the server's close frame, or 1006."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed: {code} {reason!r}")
        self.code = code
        self.reason = reason


@final
class WebSocket:
    """One WebSocket, client side. Made by :func:`open_websocket`."""

    def __init__(self, stream: trio.abc.Stream, h2conn: h2.connection.H2Connection | None,
                 headers: Headers, deflate: PerMessageDeflate | None) -> None:
        self._stream = stream
        self._h2 = h2conn
        self.headers = headers
        """The response head's fields (101 or 200)."""
        self.subprotocol = next((v.decode() for n, v in headers
                                 if n == b"sec-websocket-protocol"), None)
        self.http_version = "2" if h2conn is not None else "1.1"
        self._ws = Connection(ConnectionType.CLIENT,
                              extensions=[deflate] if deflate is not None else [])
        self._pieces: list[str | bytes] = []
        self._closed: WebSocketClosed | None = None
        self.pongs = 0
        """PONG frames received."""
        self.pings = 0
        """PING frames received (each is answered)."""

    async def send(self, message: str | bytes) -> None:
        """Send one message, whole; over HTTP/2, waits for window as needed."""
        self._check()
        event = TextMessage(data=message) if isinstance(message, str) else \
            BytesMessage(data=message)
        await self._write(self._ws.send(event))

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (frames built by a test)."""
        await self._write(data)

    async def ping(self, payload: bytes = b"") -> None:
        await self._write(self._ws.send(Ping(payload=payload)))

    async def receive(self) -> str | bytes:
        """The next whole message. Raises :exc:`WebSocketClosed` once the
        server has closed (after answering its close frame)."""
        while True:
            self._check()
            for event in self._ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    self._pieces.append(event.data if isinstance(event.data, str)
                                        else bytes(event.data))
                    if event.message_finished:
                        pieces, self._pieces = self._pieces, []
                        if isinstance(event, TextMessage):
                            return "".join(p for p in pieces if isinstance(p, str))
                        return b"".join(bytes(p) for p in pieces if not isinstance(p, str))
                elif isinstance(event, Ping):
                    self.pings += 1
                    if self._ws.state is ConnectionState.OPEN:
                        await self._write(self._ws.send(event.response()))
                elif isinstance(event, Pong):
                    self.pongs += 1
                elif isinstance(event, CloseConnection):
                    with suppress(Exception):
                        await self._write(self._ws.send(event.response()), end=True)
                    self._closed = WebSocketClosed(int(event.code), event.reason or "")
                    raise self._closed
            data = await self._read()
            if data is None:
                self._closed = WebSocketClosed(1006, "")
                raise self._closed
            self._ws.receive_data(data)

    async def close(self, code: int = 1000, reason: str = "") -> int:
        """Send a close frame and wait for the server's; returns its code."""
        if self._closed is None:
            await self._write(self._ws.send(CloseConnection(code=code, reason=reason or None)))
            try:
                while True:
                    await self.receive()
            except WebSocketClosed as exc:
                return exc.code
        return self._closed.code

    async def abort(self) -> None:
        """Close the connection at once, with no close frame: a client that
        vanished (the server sees 1006)."""
        self._closed = WebSocketClosed(1006, "")
        await trio.aclose_forcefully(self._stream)

    @property
    def close_code(self) -> int | None:
        return None if self._closed is None else self._closed.code

    def _check(self) -> None:
        if self._closed is not None:
            raise self._closed

    # -------------------------------------------------------------- transport

    async def _write(self, data: bytes, *, end: bool = False) -> None:
        conn = self._h2
        if conn is None:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._closed = WebSocketClosed(1006, "")
                raise self._closed from None
            return
        view = memoryview(data)
        while view or end:
            window = min(conn.local_flow_control_window(_STREAM_ID),
                         conn.max_outbound_frame_size)
            if view and window <= 0:
                received = await self._read(pending=True)
                if received is None:
                    self._closed = WebSocketClosed(1006, "")
                    raise self._closed
                if received and self._ws.state is not ConnectionState.CLOSED:
                    self._ws.receive_data(received)  # for receive (PINGs answered there)
                continue
            chunk, view = view[:window], view[window:]
            conn.send_data(_STREAM_ID, bytes(chunk), end_stream=end and not view)
            end = end and bool(view)
            await self._flush()

    async def _flush(self) -> None:
        assert self._h2 is not None
        data = self._h2.data_to_send()
        if data:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._closed = WebSocketClosed(1006, "")
                raise self._closed from None

    async def _read(self, *, pending: bool = False) -> bytes | None:
        """The next bytes of the WebSocket (None at its end). ``pending``:
        return b"" after one read, for a writer waiting for window."""
        while True:
            try:
                raw = await self._stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raw = b""
            if self._h2 is None:
                return bytes(raw) or None
            if not raw:
                return None
            received = b""
            ended = False
            for event in self._h2.receive_data(raw):
                if isinstance(event, h2.events.DataReceived) and \
                        event.stream_id == _STREAM_ID:
                    received += event.data or b""
                    self._h2.acknowledge_received_data(event.flow_controlled_length or 0,
                                                       _STREAM_ID)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    ended = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    # A GOAWAY that names our stream lets it finish (RFC 9113
                    # section 6.8: a graceful shutdown); the connection's end
                    # follows the stream's.
                    ended = ended or (event.last_stream_id or 0) < _STREAM_ID
            await self._flush()
            if received or pending:
                return received
            if ended:
                return None


async def _h1_handshake(stream: trio.abc.Stream, authority: str, path: str,
                        headers: Headers) -> tuple[Headers, bytes]:
    key = base64.b64encode(os.urandom(16))
    client = h11.Connection(h11.CLIENT)
    await stream.send_all(client.send(h11.Request(method="GET", target=path, headers=[
        (b"host", authority.encode()), (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"), (b"sec-websocket-key", key),
        (b"sec-websocket-version", b"13"), *headers])))
    status, fields, body = 0, [], b""
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_READ_SIZE)
            client.receive_data(bytes(data))
            continue
        if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
            fields = list(event.headers)
            trailing, _ = client.trailing_data
            return fields, trailing
        if isinstance(event, h11.Response):
            status, fields = event.status_code, list(event.headers)
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            raise WebSocketRejected(status, fields, body)


async def _h2_handshake(stream: trio.abc.Stream, scheme: str, authority: str, path: str,
                        headers: Headers
                        ) -> tuple[h2.connection.H2Connection, Headers, bytes]:
    # Still open after the server's GOAWAY: a graceful shutdown lets the
    # WebSocket's stream finish (its 1001 close).
    conn = GoawayTolerantConnection(h2.config.H2Configuration(
        client_side=True, header_encoding=None))
    conn.initiate_connection()
    await stream.send_all(conn.data_to_send())
    status, fields, body = 0, [], b""
    sent = False
    while True:
        data = await stream.receive_some(_READ_SIZE)
        if not data:
            raise WebSocketRejected(0, [], b"connection closed during the handshake")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged) and not sent:
                if conn.remote_settings.enable_connect_protocol != 1:
                    raise WebSocketRejected(0, [], b"no SETTINGS_ENABLE_CONNECT_PROTOCOL")
                conn.send_headers(_STREAM_ID, [
                    (b":method", b"CONNECT"), (b":protocol", b"websocket"),
                    (b":scheme", scheme.encode()), (b":path", path.encode()),
                    (b":authority", authority.encode()),
                    (b"sec-websocket-version", b"13"), *headers])
                sent = True
            elif isinstance(event, h2.events.ResponseReceived):
                fields = list(event.headers)
                status = int(dict(fields)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data or b""
                conn.acknowledge_received_data(event.flow_controlled_length or 0, _STREAM_ID)
            elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset) and \
                    status != 200:
                raise WebSocketRejected(status, fields, body)
        await stream.send_all(conn.data_to_send())
        if status == 200:
            return conn, fields, body  # (body: the WebSocket's first bytes)


@asynccontextmanager
async def open_websocket(
    url: str,
    *,
    http2: bool = False,
    subprotocols: Sequence[str] = (),
    headers: Sequence[tuple[bytes, bytes]] = (),
    deflate: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    stream: trio.abc.Stream | None = None,
) -> AsyncIterator[WebSocket]:
    """A WebSocket to ``url`` (``http://``, ``https://``, ``ws://`` or
    ``wss://``): over HTTP/2 with ``http2`` (h2c with prior knowledge on
    plain TCP, ALPN ``h2`` over TLS), else over HTTP/1.1. ``deflate``
    offers permessage-deflate. ``stream``: an established byte stream to
    use instead of connecting (an in-memory one, say; ``url`` then gives
    the path and authority). The connection is closed on exit (after a
    close handshake if the WebSocket is still open)."""
    parts = urlsplit(url)
    tls = parts.scheme in ("https", "wss")
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80)
    authority = f"{host}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    fields: Headers = [(n.lower(), v) for n, v in headers]
    if subprotocols:
        fields.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
    extension = PerMessageDeflate() if deflate else None
    if extension is not None:
        offer = extension.offer()
        fields.append((b"sec-websocket-extensions",
                       f"{extension.name}; {offer}".encode() if isinstance(offer, str)
                       else extension.name.encode()))
    if stream is None:
        stream = await trio.open_tcp_stream(host, port)
    try:
        if tls:
            context = ssl_context or ssl.create_default_context()
            context.set_alpn_protocols(["h2"] if http2 else ["http/1.1"])
            stream = trio.SSLStream(stream, context, server_hostname=host,
                                    https_compatible=True)
            await stream.do_handshake()
        conn: h2.connection.H2Connection | None = None
        early = b""
        if http2:
            conn, response, early = await _h2_handshake(stream, "https" if tls else "http",
                                                 authority, path, fields)
        else:
            response, early = await _h1_handshake(stream, authority, path, fields)
        accepted = next((v for n, v in response if n == b"sec-websocket-extensions"), None)
        if extension is not None and accepted is not None:
            extension.finalize(accepted.decode())
        ws = WebSocket(stream, conn, response, extension if accepted is not None else None)
        if early:
            ws._ws.receive_data(early)
        yield ws
        if ws.close_code is None:
            with trio.move_on_after(5), suppress(WebSocketClosed):
                await ws.close()
    finally:
        await trio.aclose_forcefully(stream)
