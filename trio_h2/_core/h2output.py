"""What one HTTP/2 connection writes, in wire order. Pure.

One output queue (:class:`Output`) takes h2's frames and the ones written
here, in the order things happened: a stream's HEADERS before its DATA,
HPACK blocks in the order they were encoded. Response DATA is framed here,
one scheduling decision per frame (:meth:`H2Output.pull`), from the chunk
each handler offered; so are response header blocks, RST_STREAM, and the
statuses of our own that answer refused requests.

``H2Core`` (``_core.h2``) decides what to write and when; the end of a
response is reported to the stream table (``_core.h2streams``), the owner of
stream lifetime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

import h2.connection
from h2.errors import ErrorCodes

from .exchange import Exchange
from .guard import ConnectionGuard
from .h2admission import Refusal, own_response
from .h2internals import connection_closed, data_frame_header, response_headers_frame, stream_live
from .h2streams import StreamTable
from .headers import Headers
from .output import Output, Piece
from .scheduler import Scheduler
from .sendlog import SendLog


@final
class H2Output:
    """The output queue of one connection, and the framing of responses."""

    def __init__(self, conn: h2.connection.H2Connection, *, scheduler: Scheduler,
                 table: StreamTable, guard: ConnectionGuard,
                 clock: Callable[[], float]) -> None:
        self.h2 = conn
        self.scheduler = scheduler
        self.table = table
        self.guard = guard
        self.clock = clock
        self.send_log: SendLog | None = None
        """What the sender sent, while the application records it (``_core.sendlog``)."""
        self._out = Output()
        """Output not yet taken by the sender, in wire order (see
        :meth:`queue`): h2's frames and the ones written here (DATA,
        response HEADERS, GOAWAY). Between the sender's turns it holds what
        reading and the handlers caused (acknowledgements, WINDOW_UPDATE,
        RST_STREAM, header blocks); its size is the reader's brake."""

    @property
    def backlog(self) -> int:
        """Bytes queued and not taken yet."""
        return len(self._out)

    def queue(self, *frames: bytes | memoryview) -> None:
        """Queue ``frames`` for the sender after everything h2 has queued so
        far: the one way into the output, so the wire order is the order
        things happened (a stream's HEADERS before its DATA, HPACK blocks in
        the order they were encoded)."""
        self._out.append(self.h2.data_to_send())
        for frame in frames:
            self._out.append(frame)

    def take(self) -> bytes:
        """Bytes to write to the socket, in order."""
        self.queue()
        return self._out.take()

    def take_pieces(self) -> list[Piece]:
        """:meth:`take`, as the pieces it is made of."""
        self.queue()
        return self._out.take_pieces()

    def discard(self) -> None:
        """The socket is gone: nothing queued will be written."""
        self.h2.clear_outbound_data_buffer()
        self._out.clear()

    # ------------------------------------------------------------ readiness

    def refresh(self, stream: Exchange) -> bool:
        """Tell the scheduler whether ``stream`` can send now; return that."""
        if stream.closed:
            return False
        outbox = stream.outbox
        ready = outbox is not None and (
            len(outbox) == 0 or self.h2.local_flow_control_window(stream.stream_id) > 0
        )
        self.scheduler.set_ready(stream.stream_id, ready)
        self.guard.stream_stalled(stream.stream_id, outbox is not None and not ready)
        return ready

    def refresh_all(self) -> None:
        for stream in self.table.streams.values():
            if stream.outbox is not None:
                self.refresh(stream)

    # ------------------------------------------------------------ responses

    def pull(self, budget: int) -> list[Exchange]:
        """Frame up to about ``budget`` bytes of DATA, asking the scheduler
        before each frame. Returns the streams whose offered chunk is now
        entirely framed."""
        done: list[Exchange] = []
        refilling: list[int] = []
        scheduler = self.scheduler
        while budget > 0:
            if any(map(scheduler.would_choose, refilling)):
                # A producer that refills while this batch is written would
                # be chosen now: end the batch, so that it is back for the
                # next decision instead of looking idle to the scheduler.
                break
            stream_id = scheduler.next()
            if stream_id is None:
                break
            stream = self.table.streams[stream_id]
            sent = self._send_frame(stream, min(budget, scheduler.credit(stream_id)))
            budget -= sent + 9  # and the frame header
            if not stream.closed:  # (closed: END_STREAM went out, it left the scheduler)
                scheduler.charge(stream_id, sent, drained=not self.refresh(stream))
            if stream.outbox is None:
                done.append(stream)
                if not stream.response_ended:
                    refilling.append(stream_id)
        return done

    def _send_frame(self, stream: Exchange, limit: int) -> int:
        """Frame up to ``limit`` bytes of ``stream``'s offer; return how many."""
        outbox = stream.outbox
        assert outbox is not None
        window = self.h2.local_flow_control_window(stream.stream_id)
        size = min(len(outbox), window, self.h2.max_outbound_frame_size, limit)
        last = size == len(outbox)
        end = last and stream.outbox_end and stream.trailers is None
        if size or not (last and stream.trailers is not None):
            self._send_data(stream.stream_id, outbox[:size], end_stream=end)
            if self.send_log is not None and size:
                self.send_log.sent(stream.stream_id, size, self.scheduler.signal(stream.stream_id))
        if last:
            stream.outbox = None
            if stream.trailers is not None:
                self.h2.send_headers(stream.stream_id, stream.trailers, end_stream=True)
                stream.trailers = None
                end = True
            if end:
                self.table.response_ended(stream)
        else:
            stream.outbox = outbox[size:]
        return size

    def _send_data(self, stream_id: int, payload: memoryview, *, end_stream: bool) -> None:
        header = data_frame_header(self.h2, stream_id, len(payload), end_stream=end_stream)
        if header is None:
            self.h2.send_data(stream_id, payload, end_stream=end_stream)
            return
        self.queue(header, payload)

    def headers(self, stream_id: int, headers: Headers, *, end_stream: bool) -> None:
        """Queue a response header block (without h2's copies where it can).
        If h2 raises, it may have changed its HPACK state half-way."""
        frame = response_headers_frame(self.h2, stream_id, headers, end_stream=end_stream)
        if frame is None:
            self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        else:
            self.queue(frame)

    def reset(self, stream_id: int, code: ErrorCodes) -> None:
        """RST_STREAM, unless h2 has closed the stream already: a RST_STREAM
        from the client, or one h2 sent itself, later in the same read (or
        the client's GOAWAY closed the connection)."""
        if stream_live(self.h2, stream_id) and not connection_closed(self.h2):
            self.h2.reset_stream(stream_id, code)

    def own_response(self, stream_id: int, refusal: Refusal, *, request_ended: bool) -> None:
        """A status of our own (:func:`own_response`), where RST_STREAM would
        look like a network error to a browser: RFC 9113 section 10.5.1's
        ``431 Request Header Fields Too Large`` (RFC 6585), a WebSocket
        handshake refused (RFC 6455 section 4.4's 426, RFC 8441). The HPACK
        table is in step (the Decoder decoded every field), so only the
        stream ends. A request still sending is then reset with NO_ERROR
        (RFC 9113 section 8.1)."""
        if not stream_live(self.h2, stream_id) or connection_closed(self.h2):
            return  # reset by the client, or its GOAWAY, later in the same read
        fields, body = own_response(refusal, min(self.h2.local_flow_control_window(stream_id),
                                                 self.h2.max_outbound_frame_size))
        self.h2.send_headers(stream_id, [(b":status", str(refusal.status).encode()), *fields],
                             end_stream=not body)
        if body:
            self.h2.send_data(stream_id, body, end_stream=True)
        if not request_ended:
            self.reset(stream_id, ErrorCodes.NO_ERROR)
