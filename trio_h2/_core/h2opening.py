"""Requests that become streams, or not; and the streams we promise. Pure.

A request header block (h2's ``RequestReceived``) is judged
(``_core.h2admission``), refused on the wire with the answer its fault
calls for, or opened: charged to the memory accounts and put in the stream
table (``_core.h2streams``) and the scheduler. A PUSH_PROMISE opens a
stream the same way. ``H2Core`` (``_core.h2``) hands the events here and
starts the handlers of the streams opened.
"""

from __future__ import annotations

import logging
from typing import final

import h2.connection
import h2.events
from h2.errors import ErrorCodes

from .._config import Config
from .exchange import Exchange
from .guard import ConnectionGuard
from .h2admission import Refusal, judge_request
from .h2ending import ConnectionEnd
from .h2internals import fields_dropped
from .h2output import H2Output
from .h2priority import PrioritySignals, priority_field
from .h2streams import StreamTable
from .headers import RequestHead
from .scheduler import DEFAULT_WEIGHT, SchedulerError, TreePlace

log = logging.getLogger("trio_h2")


@final
class StreamOpening:
    """Opens the streams of one connection: the client's and the promised."""

    def __init__(self, config: Config, conn: h2.connection.H2Connection, *,
                 table: StreamTable, output: H2Output, priorities: PrioritySignals,
                 ending: ConnectionEnd, guard: ConnectionGuard, peer: str) -> None:
        self.config = config
        self.h2 = conn
        self.table = table
        self.output = output
        self.priorities = priorities
        self.ending = ending
        self.guard = guard
        self.peer = peer

    def request_received(self, event: h2.events.RequestReceived) -> Exchange | None:
        """The stream a request header block opens, or None: refused (after
        the graceful GOAWAY, over the concurrency limit, malformed, or
        answered with a status of our own) or the connection ends."""
        stream_id = event.stream_id
        self.priorities.headers_received(event)
        if stream_id > self.ending.last_stream_id:
            # RFC 9113 section 6.8: after GOAWAY, newer streams are not processed.
            self.output.reset(stream_id, ErrorCodes.REFUSED_STREAM)
            return None
        if self.table.full:
            # RFC 9113 section 5.1.2: over the limit we advertised; the client
            # may retry. Handlers of reset streams count until they return.
            log.debug("%s: stream %d refused: %d open, %d reset still running", self.peer,
                      stream_id, len(self.table.streams), self.table.orphans)
            self.output.reset(stream_id, ErrorCodes.REFUSED_STREAM)
            if len(self.table.streams) >= self.config.max_concurrent_streams:
                # Past the limit it was told: the client's doing.
                self.ending.spend(self.guard.resets, "streams over the limit")
            return None
        fields = list(event.headers or [])
        total = fields_dropped(fields)
        ended = event.stream_ended is not None
        head = judge_request(
            fields[1:] if total else fields, total, ended=ended,
            extended_connect=bool(self.h2.local_settings.enable_connect_protocol),
            max_header_fields=self.config.max_header_fields)
        if isinstance(head, Refusal):
            self._refuse(stream_id, head, request_ended=ended)
            return None
        return self.open(stream_id, head, event.priority_updated, ended=ended)

    def open(self, stream_id: int, head: RequestHead, prio: h2.events.PriorityUpdated | None,
             *, ended: bool) -> Exchange | None:
        """Put a valid request in the table and the scheduler; None if it is
        refused (``max_header_memory``, ``max_body_memory``: REFUSED_STREAM)
        or the connection ends."""
        stream = self.table.admit(stream_id, head, ended=ended)
        if stream is None:
            self.output.reset(stream_id, ErrorCodes.REFUSED_STREAM)
            return None
        try:
            stream.priority = self.priorities.add(stream_id, head, prio)
        except SchedulerError as exc:
            self.table.release(stream)
            self.ending.connection_error(ErrorCodes.ENHANCE_YOUR_CALM, str(exc))
            return None
        self.table.add(stream)
        send_log = self.output.send_log
        if send_log is not None:
            send_log.opened(
                stream_id, head.path, priority_field(head),
                None if prio is None else TreePlace(prio.weight or DEFAULT_WEIGHT,
                                                     prio.depends_on or 0),
                bool(prio is not None and prio.exclusive))
        stream.body_ended = ended
        # Opened before the client saw our first GOAWAY: served, and told at
        # once that the server is going away.
        stream.going_away = self.ending.draining
        return stream

    def _refuse(self, stream_id: int, refusal: Refusal, *, request_ended: bool) -> None:
        """Answer a request that does not become a stream (``_core.h2admission``
        decided why): RST_STREAM PROTOCOL_ERROR, or a status of our own."""
        if refusal.bad:
            self.ending.bad_request(stream_id, refusal.what)
        else:
            log.info("%s: stream %d: %s", self.peer, stream_id, refusal.what)
        if refusal.status:
            self.output.own_response(stream_id, refusal, request_ended=request_ended)
        else:
            self.output.reset(stream_id, ErrorCodes.PROTOCOL_ERROR)
        self.ending.spend(self.guard.resets, refusal.budget)

    def pushes(self, stream: Exchange) -> bool:
        """Push is for a client's own stream (RFC 9113 section 8.4: not a
        pushed one), while the client's SETTINGS_ENABLE_PUSH is 1 and the
        connection is not closing."""
        ending = self.ending
        return (stream.stream_id % 2 == 1 and not ending.draining and not ending.terminated
                and bool(self.h2.remote_settings.enable_push))

    def push(self, stream: Exchange, head: RequestHead) -> Exchange | None:
        """PUSH_PROMISE ``head`` on ``stream`` (RFC 9113 section 8.4), and open
        the promised stream as a request that has ended: its response goes
        through the scheduler like any other (RFC 9218's default urgency,
        unless ``head`` has a ``priority`` field)."""
        if stream.closed or stream.response_ended or not self.pushes(stream):
            return None
        # The client's SETTINGS_MAX_CONCURRENT_STREAMS bounds the streams we
        # open (RFC 9113 section 5.1.2). A promised stream counts from its
        # promise (h2 counts it only once its HEADERS go), so that it can
        # always open. Ours bounds the handlers, pushed ones with the rest.
        pushed = sum(1 for stream_id in self.table.streams if stream_id % 2 == 0)
        if pushed >= self.h2.remote_settings.max_concurrent_streams or self.table.full:
            log.debug("%s: stream %d: push of %r refused: %d pushed streams open (client's "
                      "limit %d), %d streams", self.peer, stream.stream_id, head.path, pushed,
                      self.h2.remote_settings.max_concurrent_streams, len(self.table.streams))
            return None
        promised = self.h2.get_next_available_stream_id()
        fields = [(b":method", head.method), (b":scheme", head.scheme),
                  (b":authority", head.authority or b""), (b":path", head.path), *head.headers]
        self.h2.push_stream(stream.stream_id, promised, fields)
        # None: max_header_memory is held, the promised stream is reset.
        opened = self.open(promised, head, None, ended=True)
        self.output.queue()
        return opened
