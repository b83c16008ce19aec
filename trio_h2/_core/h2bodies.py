"""Request bodies as they arrive, and the flow control that bounds them. Pure.

A stream's DATA is buffered here, never more than the stream window we
advertised (h2 enforces the window), and its credit goes back to the client
only as the application takes the body (:meth:`RequestBodies.take`): RFC
9113 section 6.9, and the memory bound of ``_core.memory``'s ``bodies``
account. DATA nobody will read is acknowledged at once. END_STREAM, or
trailers once they are judged (malformed, short of the content-length, or
over ``max_header_fields``: the stream is reset), end the body. A body that
ends short of its content-length at END_STREAM, or goes past it, is
h2's to find (``_core.h2internals.reset_on_body_length`` makes that a
stream reset). ``H2Core`` (``_core.h2``) hands h2's events here; the stream
table (``_core.h2streams``) closes the stream once both sides have ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import final

import h2.connection
import h2.events
from h2.errors import ErrorCodes
from hyperframe.frame import RstStreamFrame

from .._config import Config
from .exchange import Exchange, add_body
from .guard import ConnectionGuard
from .h2ending import ConnectionEnd
from .h2internals import fields_dropped, stream_live
from .h2output import H2Output
from .h2streams import StreamTable
from .headers import Headers, MalformedRequest, declared_length, validate_trailers
from .limits import data_frame_overhead

log = logging.getLogger("trio_h2")


def body_length_mismatch(declared: int, received: int) -> str:
    """What is wrong with a request body of ``received`` bytes, so far or
    in all, whose content-length says ``declared``: malformed, RFC 9113
    section 8.1.1. For the log line after ``"stream N: "``."""
    if received > declared:
        return (f"malformed request: {received} bytes of body arrived, past its "
                f"content-length {declared}")
    return (f"malformed request: the body ended after {received} bytes, short of its "
            f"content-length {declared}")


def judge_trailers(stream: Exchange, fields: Headers) -> str | None:
    """Why trailers (``fields``, those over ``max_header_fields`` dropped)
    make ``stream``'s request malformed, or None: fields a trailer may not
    carry, or a body they end short of its content-length (RFC 9113 section
    8.1.1; h2 counts DATA against it, not trailers). For the log line."""
    try:
        validate_trailers(fields)
    except MalformedRequest as exc:
        return f"malformed trailers: {exc}"
    declared = declared_length(stream.head)
    if declared is not None and declared != stream.body_received:
        return body_length_mismatch(declared, stream.body_received)
    return None


@final
class RequestBodies:
    """The request bodies of one connection's streams."""

    def __init__(self, config: Config, conn: h2.connection.H2Connection, *,
                 table: StreamTable, output: H2Output, ending: ConnectionEnd,
                 guard: ConnectionGuard, reset: Callable[[Exchange, ErrorCodes], None],
                 peer: str) -> None:
        """``reset(stream, code)``: reset a stream whose trailers are refused."""
        self.config = config
        self.h2 = conn
        self.table = table
        self.output = output
        self.ending = ending
        self.guard = guard
        self._reset = reset
        self.peer = peer

    def ended(self, stream_id: int) -> None:
        """END_STREAM without trailers: the body is complete."""
        stream = self.table.streams.get(stream_id)
        if stream is not None:  # None: we already reset it, h2 let the frame through
            stream.body_ended = True
            stream.wake()
            self.table.maybe_close(stream)

    def data_received(self, event: h2.events.DataReceived) -> None:
        stream = self.table.streams.get(event.stream_id)
        flow = event.flow_controlled_length or 0
        data = event.data or b""
        if not data and event.stream_ended is None:
            self.ending.spend(self.guard.empty, "empty DATA frames")
        overhead = data_frame_overhead(len(data), flow - len(data))
        if event.stream_ended is None or overhead < 0:
            # A stream's last frame draws nothing: one per stream, and the
            # stream's HEADERS cost more (hyper's h2 exempts it too).
            self.ending.spend(self.guard.small_data, "small DATA frames", overhead)
        if stream is None or not data:
            # Nobody will read it (stream we reset, or only padding):
            # return the credit at once. Padding counts (h2 docs).
            self.h2.acknowledge_received_data(flow, event.stream_id)
        else:
            add_body(stream, data, flow)
            self.guard.body_arrived(event.stream_id)
        if stream is not None:
            stream.body_received += len(data)
            if event.stream_ended is not None:
                stream.body_ended = True
            stream.wake()

    def trailers_received(self, event: h2.events.TrailersReceived) -> None:
        stream = self.table.streams.get(event.stream_id)
        if stream is None:
            return
        fields = list(event.headers or [])
        total = fields_dropped(fields)
        problem = judge_trailers(stream, fields[1:] if total else fields)
        if problem is not None:
            self.ending.bad_request(event.stream_id, problem)
            if not stream_live(self.h2, event.stream_id):
                # Our response had ended, so the trailers' END_STREAM closed
                # the stream in h2 before we could judge them, and h2
                # refuses to reset a closed stream. RFC 9113 section 8.1.1
                # still asks for a stream error (nghttp2 judges the fields
                # before the state change): the RST_STREAM, written by hand.
                self.output.queue(RstStreamFrame(event.stream_id,
                                                 error_code=ErrorCodes.PROTOCOL_ERROR).serialize())
            self._reset(stream, ErrorCodes.PROTOCOL_ERROR)
            self.ending.spend(self.guard.resets, "malformed requests")
            return
        if total:
            # Too late for a 431 (the response may have started); Node's
            # server resets with ENHANCE_YOUR_CALM too.
            log.info("%s: stream %d: %d trailer fields, over max_header_fields (%d); "
                     "resetting", self.peer, event.stream_id, total,
                     self.config.max_header_fields)
            self._reset(stream, ErrorCodes.ENHANCE_YOUR_CALM)
            self.ending.spend(self.guard.resets, "trailers with too many fields")
            return
        stream.body_ended = True
        stream.wake()
        self.table.maybe_close(stream)

    def take(self, stream: Exchange) -> bytes:
        """Everything buffered for ``stream``, acknowledged: its stream window
        reopens by as much (RFC 9113 section 6.9). h2 sends WINDOW_UPDATE
        once half a window is consumed; :attr:`output_backlog` then says so."""
        chunks = stream.body
        if len(chunks) == 1:
            piece, flow = chunks.popleft()
            data = bytes(piece)  # (a lone frame's bytes: the same object)
        else:
            data = b"".join(chunk for chunk, _ in chunks)
            flow = sum(n for _, n in chunks)
            chunks.clear()
        stream.continued = True  # the body has begun: no 100 Continue is due
        if stream.body_ended and stream.body_charge:
            self.table.release_body_memory(stream)
        if not self.ending.terminated:
            self.h2.acknowledge_received_data(flow, stream.stream_id)
            self.output.queue()
        return data
