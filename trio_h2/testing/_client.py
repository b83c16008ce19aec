"""A small HTTP/2 client for trio, for testing HTTP/2 servers.

Open a connection with :func:`open_h2_client`, an async context manager::

    async with open_h2_client("127.0.0.1", port) as client:
        response = await client.get("/")
        async with client.stream("GET", "/big") as streaming:
            async for chunk in streaming:
                ...

The client owns one connection: a background reader task feeds received bytes
to h2 and dispatches events to per-stream state, and a single writer task is
the only code that writes to the socket. Any number of tasks may call
:meth:`H2Client.request` concurrently; their streams share the connection.

Errors: a stream the server resets raises :exc:`StreamReset`; a connection that
ends (GOAWAY, EOF, I/O failure, HTTP/2 violation by the server, or
:meth:`H2Client.aclose`) makes every unfinished request raise
:exc:`ConnectionClosed`. Both subclass :exc:`H2ClientError`. Headers that h2
refuses to send raise h2's own ``h2.exceptions.ProtocolError`` subclasses.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .._core.h2internals import GoawayTolerantConnection, change_local_settings, stream_live
from ._responses import (
    ClientStream,
    ConnectionClosed,
    H2ClientError,
    HeaderList,
    Priority,
    RequestHeaders,
    Response,
    StreamingResponse,
    StreamReset,
    as_bytes,
)

_PRIORITY_UPDATE = 0x10  # RFC 9218 section 7.1 frame type
_READ_SIZE = 65536
_STREAM_EVENTS = (
    h2.events.ResponseReceived,
    h2.events.DataReceived,
    h2.events.TrailersReceived,
    h2.events.StreamEnded,
    h2.events.StreamReset,
)


@final
class H2Client:
    """One HTTP/2 connection to a server. Create it with :func:`open_h2_client`,
    which runs its background tasks; all methods must be called from inside
    that ``async with`` block."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        scheme: str,
        authority: str,
        initial_window_size: int = 65535,
        auto_window: bool = True,
    ) -> None:
        if not 0 <= initial_window_size < 2**31:
            raise ValueError(f"initial_window_size out of range: {initial_window_size}")
        self._stream = stream
        self._scheme = scheme.encode()
        self._authority = authority
        self._auto_window = auto_window
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._conn = GoawayTolerantConnection(config=config)
        change_local_settings(self._conn, {
            SettingCodes.ENABLE_PUSH: 0,
            SettingCodes.INITIAL_WINDOW_SIZE: initial_window_size,
        })
        self._streams: dict[int, ClientStream] = {}
        self._pings: dict[bytes, trio.Event] = {}
        self._ping_counter = 0
        self._conn_changed = trio.Event()  # windows, settings, stream closures
        self._settings_received = trio.Event()
        self._outbuf = bytearray()
        self._queued_total = 0
        self._sent_total = 0
        self._writer_wakeup = trio.Event()
        self._sent = trio.Event()
        self._io_scope = trio.CancelScope()
        self._io_done = trio.Event()
        self._closing = False
        self._writer_stopped = False
        self._error: ConnectionClosed | None = None
        self._goaway: h2.events.ConnectionTerminated | None = None

    # -- public API ---------------------------------------------------------

    @property
    def remote_settings(self) -> dict[int, int]:
        """A snapshot of the server's SETTINGS in effect."""
        return {int(code): value for code, value in self._conn.remote_settings.items()}

    @property
    def goaway_error_code(self) -> ErrorCodes | int | None:
        """The error code of the server's GOAWAY, or ``None`` if none arrived."""
        return None if self._goaway is None else self._goaway.error_code

    @property
    def goaway_last_stream_id(self) -> int | None:
        """The last stream id of the server's GOAWAY, or ``None`` if none arrived."""
        return None if self._goaway is None else self._goaway.last_stream_id

    @property
    def closed(self) -> bool:
        """Whether the connection has ended (or :meth:`aclose` was called)."""
        return self._closing or self._error is not None

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: RequestHeaders = (),
        body: bytes | AsyncIterable[bytes] = b"",
        priority: Priority | None = None,
        authority: str | None = None,
    ) -> Response:
        """Send a request and return the complete response.

        The body is sent in DATA frames within the server's flow control
        windows; an async iterable is consumed chunk by chunk as the windows
        allow. Waits for a free stream slot if the server's
        SETTINGS_MAX_CONCURRENT_STREAMS is reached. With ``auto_window`` the
        response body is acknowledged as it arrives; without it only
        :meth:`open_window` reopens the windows. If the server answers and then
        resets with NO_ERROR before the body is sent, sending stops and the
        response is returned. If cancelled, the stream is reset with CANCEL.

        Raises :exc:`StreamReset` or :exc:`ConnectionClosed`.
        """
        stream = await self._open_stream(
            method, path, headers, body, priority, authority, ack_on_receive=self._auto_window
        )
        try:
            await self._send_body(stream, body)
            await self._wait(stream, lambda: stream.ended)
            if stream.status is None:  # pragma: no cover - h2 rejects this first
                raise H2ClientError(f"stream {stream.stream_id} ended without a response")
            return Response(
                status=stream.status,
                headers=stream.headers,
                body=b"".join(chunk for chunk, _ in stream.chunks),
                trailers=stream.trailers,
                stream_id=stream.stream_id,
            )
        finally:
            self._release(stream)

    async def get(
        self, path: str, *, headers: RequestHeaders = (), priority: Priority | None = None
    ) -> Response:
        """``request("GET", path, ...)``."""
        return await self.request("GET", path, headers=headers, priority=priority)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        headers: RequestHeaders = (),
        body: bytes | AsyncIterable[bytes] = b"",
        priority: Priority | None = None,
        authority: str | None = None,
    ) -> AsyncIterator[StreamingResponse]:
        """Send a request (as :meth:`request` does, body first) and, once the
        response headers arrive, yield a :class:`StreamingResponse` to read the
        body incrementally. On exit a stream not yet complete is reset with
        CANCEL, and unread data is returned to the connection window."""
        stream = await self._open_stream(
            method, path, headers, body, priority, authority, ack_on_receive=False
        )
        try:
            await self._send_body(stream, body)
            await self._wait(stream, lambda: stream.status is not None)
            yield StreamingResponse(self, stream)
        finally:
            self._release(stream)

    async def open_window(self, increment: int, stream_id: int | None = None) -> None:
        """Send WINDOW_UPDATE: for the connection (``stream_id=None``) or for
        one stream (a no-op if that stream is already closed). Returns once it
        is written."""
        self._check_open()
        if stream_id is None or stream_live(self._conn, stream_id):
            self._conn.increment_flow_control_window(increment, stream_id=stream_id)
        await self._flush()

    async def send_priority(
        self, stream_id: int, *, depends_on: int = 0, weight: int = 16, exclusive: bool = False
    ) -> None:
        """Send an RFC 7540 PRIORITY frame for ``stream_id`` (which may be idle,
        open or closed). Returns once it is written."""
        self._check_open()
        self._conn.prioritize(stream_id, weight=weight, depends_on=depends_on, exclusive=exclusive)
        await self._flush()

    async def send_priority_update(self, stream_id: int, field_value: str | Priority) -> None:
        """Send an RFC 9218 PRIORITY_UPDATE frame (type 0x10, on stream 0) that
        reprioritises ``stream_id`` with ``field_value`` (e.g. ``"u=1, i"``).
        Returns once it is written."""
        if isinstance(field_value, Priority):
            field_value = field_value.field_value or ""
        payload = (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + field_value.encode("ascii")
        await self.send_raw_frame(_PRIORITY_UPDATE, 0, 0, payload)

    async def send_raw_frame(
        self, frame_type: int, flags: int, stream_id: int, payload: bytes
    ) -> None:
        """Write a frame h2 has no API for, serialised as given and queued after
        everything h2 has queued so far. h2's state is not updated, so only use
        this for frames that do not affect it (extension frames, or frames
        meant to break the protocol). Returns once it is written."""
        self._check_open()
        header = len(payload).to_bytes(3, "big") + bytes([frame_type, flags])
        self._queue(header + (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + payload)
        await self._flush()

    async def ping(self) -> float:
        """Send a PING and return the seconds until its ACK arrived.
        Raises :exc:`ConnectionClosed` if the connection ends first."""
        self._check_open()
        self._ping_counter += 1
        opaque = self._ping_counter.to_bytes(8, "big")
        acked = self._pings[opaque] = trio.Event()
        start = trio.current_time()
        try:
            self._conn.ping(opaque)
            await self._flush()
            await acked.wait()
            if opaque in self._pings:  # woken by the connection ending
                raise self._closed_error()
            return trio.current_time() - start
        finally:
            self._pings.pop(opaque, None)

    async def aclose(self) -> None:
        """Send GOAWAY(NO_ERROR), stop the background tasks and close the
        socket. Unfinished requests raise :exc:`ConnectionClosed`. Idempotent;
        never raises for a connection that already failed. If cancelled, the
        socket is still closed, without the graceful steps."""
        if self._closing:
            return
        self._closing = True  # from now on the reader ignores what arrives
        try:
            if self._error is None:
                with suppress(h2.exceptions.ProtocolError):
                    self._conn.close_connection()
            with trio.move_on_after(5), suppress(H2ClientError):
                await self._flush()  # the GOAWAY, or one h2 queued on a protocol error
        finally:
            self._io_scope.cancel()
            with trio.CancelScope(shield=True):
                await self._io_done.wait()
                with trio.move_on_after(5):
                    await self._stream.aclose()
            self._fail(ConnectionClosed("the client closed the connection"))

    # -- requests -------------------------------------------------------------

    async def _open_stream(
        self,
        method: str,
        path: str,
        headers: RequestHeaders,
        body: bytes | AsyncIterable[bytes],
        priority: Priority | None,
        authority: str | None,
        *,
        ack_on_receive: bool,
    ) -> ClientStream:
        request_headers: HeaderList = [
            (b":method", method.encode()),
            (b":scheme", self._scheme),
            (b":authority", (authority or self._authority).encode()),
            (b":path", path.encode()),
        ]
        request_headers += [(as_bytes(n).lower(), as_bytes(v)) for n, v in headers]
        field_value = None if priority is None else priority.field_value
        if field_value is not None:
            request_headers.append((b"priority", field_value.encode()))
        while True:
            self._check_can_open_stream()
            limit = self._conn.remote_settings.max_concurrent_streams
            if self._conn.open_outbound_streams < limit:
                break
            await self._conn_changed.wait()
        stream_id = self._conn.get_next_available_stream_id()
        dependency = priority is not None and priority.has_stream_dependency
        self._conn.send_headers(
            stream_id,
            request_headers,
            end_stream=isinstance(body, bytes) and not body,
            priority_weight=(priority.weight or 16) if priority and dependency else None,
            priority_depends_on=priority.depends_on if priority and dependency else None,
            priority_exclusive=priority.exclusive if priority and dependency else None,
        )
        stream = self._streams[stream_id] = ClientStream(stream_id, ack_on_receive=ack_on_receive)
        self._kick()
        return stream

    async def _send_body(self, stream: ClientStream, body: bytes | AsyncIterable[bytes]) -> None:
        if isinstance(body, bytes):
            if not body or not await self._send_data(stream, body):
                return
        else:
            async for chunk in body:
                if chunk and not await self._send_data(stream, chunk):
                    return
        if self._may_send(stream):
            self._conn.end_stream(stream.stream_id)
            self._kick()

    async def _send_data(self, stream: ClientStream, data: bytes) -> bool:
        """Send ``data`` within the flow control windows. Returns False if the
        server completed the response and closed the stream with NO_ERROR."""
        view = memoryview(data)
        while view:
            while True:
                if not self._may_send(stream):
                    return False
                try:
                    window = self._conn.local_flow_control_window(stream.stream_id)
                except h2.exceptions.StreamClosedError:
                    raise StreamReset(stream.stream_id, ErrorCodes.STREAM_CLOSED) from None
                if window > 0:
                    break
                await self._conn_changed.wait()
            size = min(window, self._conn.max_outbound_frame_size, len(view))
            self._conn.send_data(stream.stream_id, bytes(view[:size]))
            view = view[size:]
            await self._flush()
        return True

    def _may_send(self, stream: ClientStream) -> bool:
        if stream.reset_code == ErrorCodes.NO_ERROR and stream.ended:
            return False
        self._raise_for(stream)
        return True

    async def _wait(self, stream: ClientStream, ready: Callable[[], bool]) -> None:
        while not ready():
            self._raise_for(stream)
            await stream.changed.wait()

    def _raise_for(self, stream: ClientStream) -> None:
        if stream.reset_code is not None:
            raise StreamReset(stream.stream_id, stream.reset_code)
        if stream.refused:
            raise ConnectionClosed(
                f"stream {stream.stream_id} was not processed: the server sent GOAWAY",
                error_code=self.goaway_error_code,
                last_stream_id=self.goaway_last_stream_id,
            )
        if self._error is not None:
            raise self._closed_error()

    async def _next_chunk(self, stream: ClientStream) -> bytes | None:
        while True:
            if stream.chunks:
                data, flow_controlled = stream.chunks.popleft()
                if self._auto_window and not stream.ack_on_receive:
                    self._acknowledge(flow_controlled, stream.stream_id)
                return data
            if stream.ended:
                return None
            self._raise_for(stream)
            await stream.changed.wait()

    def _acknowledge(self, size: int, stream_id: int) -> None:
        if size and self._error is None:
            with suppress(h2.exceptions.ProtocolError):
                self._conn.acknowledge_received_data(size, stream_id)
            self._kick()

    def _release(self, stream: ClientStream) -> None:
        """Forget a finished request; reset its stream if still open."""
        self._streams.pop(stream.stream_id, None)
        if self._error is not None or self._closing:
            return
        if self._auto_window and not stream.ack_on_receive:
            self._acknowledge(sum(size for _, size in stream.chunks), stream.stream_id)
        if stream_live(self._conn, stream.stream_id):
            with suppress(h2.exceptions.ProtocolError):
                self._conn.reset_stream(stream.stream_id, ErrorCodes.CANCEL)
            self._kick()

    # -- connection -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._closed_error()
        if self._closing:
            raise ConnectionClosed("the client closed the connection")

    def _check_can_open_stream(self) -> None:
        self._check_open()
        if self._goaway is not None:
            raise ConnectionClosed(
                "the server sent GOAWAY; no new streams may be opened",
                error_code=self._goaway.error_code,
                last_stream_id=self._goaway.last_stream_id,
            )

    def _closed_error(self) -> ConnectionClosed:
        """A fresh copy of the connection's failure, to raise in one task."""
        if self._error is None:
            return ConnectionClosed("the connection is closed")
        error = ConnectionClosed(
            str(self._error),
            error_code=self._error.error_code,
            last_stream_id=self._error.last_stream_id,
        )
        error.__cause__ = self._error.__cause__
        return error

    def _fail(self, error: ConnectionClosed, cause: BaseException | None = None) -> None:
        """Record that the connection has ended and wake everyone waiting."""
        if self._error is not None:
            return
        if self._goaway is not None and error.error_code is None:
            error.error_code = self._goaway.error_code
            error.last_stream_id = self._goaway.last_stream_id
        error.__cause__ = cause
        self._error = error
        for stream in self._streams.values():
            stream.notify()
        for event in self._pings.values():
            event.set()
        self._settings_received.set()
        self._notify_conn()
        self._sent.set()

    def _notify_conn(self) -> None:
        self._conn_changed.set()
        self._conn_changed = trio.Event()

    def _kick(self) -> None:
        self._writer_wakeup.set()

    def _queue(self, raw: bytes = b"") -> None:
        data = self._conn.data_to_send() + raw
        self._outbuf += data
        self._queued_total += len(data)

    async def _flush(self) -> None:
        """Wait until everything queued so far has been written."""
        self._queue()
        target = self._queued_total
        self._kick()
        while self._sent_total < target:
            if self._writer_stopped:
                raise self._closed_error()
            await self._sent.wait()

    async def _start(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            with self._io_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_loop)
                    nursery.start_soon(self._write_loop)
                    task_status.started()
        finally:
            self._writer_stopped = True
            self._sent.set()
            self._io_done.set()

    async def _handshake(self) -> None:
        self._conn.initiate_connection()
        await self._flush()
        await self._settings_received.wait()
        if self._error is not None:
            raise self._closed_error()

    async def _write_loop(self) -> None:
        try:
            while True:
                self._queue()
                if not self._outbuf:
                    self._writer_wakeup = trio.Event()
                    await self._writer_wakeup.wait()
                    continue
                data = bytes(self._outbuf)
                self._outbuf.clear()
                await self._stream.send_all(data)
                self._sent_total += len(data)
                self._sent.set()
                self._sent = trio.Event()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._writer_stopped = True
            self._fail(ConnectionClosed(f"writing to the server failed: {exc!r}"), exc)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._stream.receive_some(_READ_SIZE)
                if self._closing:
                    return
                if not data:
                    self._fail(ConnectionClosed("the server closed the connection"))
                    return
                for event in self._conn.receive_data(data):
                    self._dispatch(event)
                self._kick()
        except h2.exceptions.ProtocolError as exc:
            self._kick()  # h2 has queued a GOAWAY
            self._fail(ConnectionClosed(f"the server broke HTTP/2: {exc}"), exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._fail(ConnectionClosed(f"reading from the server failed: {exc!r}"), exc)

    def _dispatch(self, event: h2.events.Event) -> None:
        ev = h2.events
        if isinstance(event, ev.RemoteSettingsChanged):
            self._settings_received.set()
            self._notify_conn()
        elif isinstance(event, ev.WindowUpdated):
            self._notify_conn()
        elif isinstance(event, ev.PingAckReceived):
            waiter = self._pings.pop(event.ping_data, None)
            if waiter is not None:
                waiter.set()
        elif isinstance(event, ev.ConnectionTerminated):
            self._on_goaway(event)
        elif isinstance(event, _STREAM_EVENTS):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                self._on_stream_event(stream, event)
            if isinstance(event, (ev.StreamEnded, ev.StreamReset)):
                self._notify_conn()  # a stream slot may have been freed

    def _on_stream_event(self, stream: ClientStream, event: h2.events.Event) -> None:
        ev = h2.events
        if isinstance(event, ev.ResponseReceived):
            for name, value in event.headers:
                if name == b":status":
                    stream.status = int(value)
                else:
                    stream.headers.append((as_bytes(name), as_bytes(value)))
        elif isinstance(event, ev.DataReceived):
            if event.data:
                stream.chunks.append((event.data, event.flow_controlled_length))
            if stream.ack_on_receive or not event.data:
                self._acknowledge(event.flow_controlled_length, stream.stream_id)
        elif isinstance(event, ev.TrailersReceived):
            stream.trailers.extend((as_bytes(n), as_bytes(v)) for n, v in event.headers)
        elif isinstance(event, ev.StreamEnded):
            stream.ended = True
        elif isinstance(event, ev.StreamReset):
            stream.reset_code = event.error_code
        stream.notify()

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self._goaway = event
        last = event.last_stream_id or 0
        if event.error_code != ErrorCodes.NO_ERROR:
            self._fail(ConnectionClosed(f"the server sent GOAWAY with {event.error_code!r}"))
            return
        for stream_id, stream in self._streams.items():
            if stream_id > last:
                stream.refused = True
                stream.notify()
        self._notify_conn()
