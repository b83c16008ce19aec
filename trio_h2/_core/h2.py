"""The sans-IO core of one server connection. Imports no trio.

``H2Core`` makes every decision of one HTTP/2 connection: it feeds h2 the
client's bytes and acts on its events, serves the handlers' calls, and ends
the connection. The trio layer (``_io.connection``) feeds it bytes, asks it
for bytes, and wakes tasks when it says so; it never keeps a table of its
own.

Its jobs are handed to parts it owns, by composition:

* ``_core.h2streams``: the stream table, the single owner of stream
  lifetime. A stream is in it exactly while it is open on the wire; every
  change of a stream's state is made by a method here or there, and the
  table's ``close`` is the one place a stream ends.
* ``_core.h2output``: what the connection writes, in wire order, and the
  framing of responses (one scheduling decision per DATA frame).
* ``_core.h2opening``: requests (and promises) that become streams, or are
  refused on the wire.
* ``_core.h2bodies``: request bodies and trailers as they arrive, and the
  window credit returned as the application reads.
* ``_core.h2ending``: how the connection ends (the graceful drain, GOAWAY
  for errors, the socket's loss) and the client's budgets.
* ``_core.h2admission``: whether a request becomes a stream (decisions that
  ``h2opening`` acts on).
* ``_core.h2priority``: the client's priority signals, kept in the
  scheduler as streams open and close.

Flow control, both ways:

* Inbound: a stream's request body is buffered (``h2bodies``), never more than the
  stream window we advertised (h2 enforces the window). Stream-level credit
  goes back only as the application consumes the body. The connection window
  is ``max_concurrent_streams x initial_window_size``, so streams that are not
  read can never use it up and stall the others.
* Outbound: a handler offers one chunk at a time (:meth:`offer`); the chunk
  stays in the core, unframed, until the scheduler picks the stream and h2's window
  allows. :meth:`pull` frames DATA one scheduling decision per frame.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from typing import Any, final

import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import ExtensionFrame

from .._config import Config
from .errors import ClientDisconnected, RemoteProtocolError
from .exchange import Exchange, going_away, release
from .guard import ConnectionGuard, FrameSlicer
from .h2bodies import RequestBodies, body_length_mismatch
from .h2ending import DRAIN_PING, MAX_STREAM_ID, ConnectionEnd
from .h2extras import MAX_SETTINGS, code_name, server_connection
from .h2internals import BodyLengthReset, change_local_settings, limit_encoder_table
from .h2opening import StreamOpening
from .h2output import H2Output
from .h2priority import PrioritySignals
from .h2streams import StreamTable
from .headers import Headers, RequestHead, expects_continue
from .memory import Holding, ServerMemory
from .output import Piece
from .priority_field import PRIORITY_UPDATE, BadPriorityUpdate
from .protocol import READ_SIZE, Handover, ProtocolCore
from .scheduler import Scheduler, SchedulerError
from .sendlog import SchedulerControl

log = logging.getLogger("trio_h2")

# The most our HPACK encoder table holds, whatever SETTINGS_HEADER_TABLE_SIZE
# the client announces (up to 2^32-1): every distinct response field is
# indexed into it, and hpack searches it linearly for each field it encodes.
# nghttp2's max_deflate_dynamic_table_size and Go's maxEncoderHeaderTableSize
# are 4096, the RFC 7541 default.
MAX_ENCODER_TABLE_SIZE = 4096

# The reader stops reading while this much output it caused (acknowledgements,
# RST_STREAM, WINDOW_UPDATE) waits unsent: one read's worth. Go's server
# stops at 10000 queued control frames; bytes are the honest measure here.
READ_PAUSE = 64 * 1024


@final
class H2Core:
    """h2, the stream table and the scheduler for one connection.

    Methods never block and never raise for the client's mistakes: those are
    answered on the wire (RST_STREAM or GOAWAY queued in :meth:`data_to_send`)
    and recorded in :attr:`error`. Exceptions that escape are bugs, and the
    trio layer ends the connection on them.
    """

    def __init__(self, config: Config, *, peer: str = "?",
                 clock: Callable[[], float] = time.monotonic,
                 memory: ServerMemory | None = None,
                 handover: Handover | None = None) -> None:
        """``handover``: the connection comes from HTTP/1.1 with ``Upgrade:
        h2c`` (RFC 7540 section 3.2); its request becomes stream 1."""
        self.config = config
        self.peer = peer
        memory = memory or ServerMemory(config)
        """The server's accounts (shared by its connections; this
        connection's own without a server)."""
        self.head = Holding(memory.heads)
        """What the header block still arriving holds of it."""
        self.guard = ConnectionGuard(config, clock) if handover is None else handover.guard
        # nghttp2 keeps max(SETTINGS_MAX_CONCURRENT_STREAMS, 16) idle streams
        # in its priority tree (NGHTTP2_MIN_IDLE_STREAMS); so do we.
        self.scheduler = Scheduler(max_streams=config.max_concurrent_streams,
                                   max_idle=max(config.max_concurrent_streams, 16))
        self.priorities = PrioritySignals(self.scheduler, config)
        """The client's priority signals, kept in the scheduler (``_core.h2priority``)."""
        self.clock = self.guard.clock
        self._control: SchedulerControl | None = None
        self.h2 = server_connection(config)
        self.table = StreamTable(config, memory, scheduler=self.scheduler, guard=self.guard,
                                 acknowledge=self._acknowledge, peer=peer)
        """The open streams and the handlers running (``_core.h2streams``)."""
        self.output = H2Output(self.h2, scheduler=self.scheduler, table=self.table,
                               guard=self.guard, clock=self.clock)
        """What this connection writes, in wire order (``_core.h2output``)."""
        self.ending = ConnectionEnd(self.h2, output=self.output, table=self.table,
                                    guard=self.guard, head=self.head, peer=peer)
        """Draining, errors and budgets: how the connection ends (``_core.h2ending``)."""
        self.opening = StreamOpening(config, self.h2, table=self.table, output=self.output,
                                     priorities=self.priorities, ending=self.ending,
                                     guard=self.guard, peer=peer)
        """Requests and promises that become streams, or not (``_core.h2opening``)."""
        self.bodies = RequestBodies(config, self.h2, table=self.table, output=self.output,
                                    ending=self.ending, guard=self.guard, reset=self.reset,
                                    peer=peer)
        """Request bodies and trailers, and their flow control (``_core.h2bodies``)."""
        self._slicer = FrameSlicer()
        self.successor: ProtocolCore | None = None
        """Always None: HTTP/2 hands its connection to no other protocol."""
        self._handover = handover
        """The upgrade whose request (stream 1) waits for the client's preface."""
        self._early = b""
        """Bytes that followed the upgrade request, until :meth:`receive_buffered`."""
        if handover is not None:
            self.output.queue(handover.output)  # the 101 goes before our SETTINGS
            self._early = handover.received

    # ------------------------------------------------------------------ input

    def initiate(self) -> None:
        """Queue our connection preface: SETTINGS and the connection window.
        After an upgrade, h2 takes the client's ``HTTP2-Settings`` and opens
        stream 1, which starts once the client's preface arrives."""
        handover = self._handover
        if handover is None:
            self.h2.initiate_connection()
        else:
            # h2 applies the settings as a received SETTINGS frame (no ACK:
            # RFC 7540 section 3.2.1) and opens stream 1 half-closed (remote).
            self.h2.initiate_upgrade_connection(base64.urlsafe_b64encode(handover.settings))
            self.guard.preface_expected()  # the client's preface follows the 101
        # RFC 9113 section 6.9.2: the connection window starts at 65535 and
        # only WINDOW_UPDATE can raise it.
        increment = self.config.connection_window_size - 65535
        if increment > 0:
            self.h2.increment_flow_control_window(increment)
        # h2 answers a stream past SETTINGS_MAX_CONCURRENT_STREAMS with a
        # connection error; RFC 9113 section 5.1.2 asks to refuse that stream
        # alone. The SETTINGS frame above advertised the limit; h2 now gets
        # none, and _request_received refuses with REFUSED_STREAM.
        change_local_settings(
            self.h2, {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAM_ID})
        self.output.queue()

    def receive_data(self, data: bytes | bytearray) -> list[Exchange]:
        """Process bytes from the client. Returns the streams whose handlers to
        start. h2 gets them a few frames at a time (``_core.guard.FrameSlicer``),
        and nothing more once the connection is terminated."""
        if self.terminated:
            return []
        started: list[Exchange] = []
        try:
            for piece in self._slicer.slices(data):
                if self.terminated:
                    break
                started += self._receive(piece)
        finally:
            self.output.queue()  # what reading made h2 queue
        return started

    def _receive(self, data: bytes) -> list[Exchange]:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.ending.connection_error(ErrorCodes(exc.error_code), str(exc))
            return []
        doomed = self.guard.input_parsed(self.h2)
        if doomed is not None:
            self.ending.connection_error(*doomed)
            return []
        if not self.head.hold(self.guard.head_size):
            # Newest first: the connection whose head pushed the account over.
            self.ending.connection_error(
                ErrorCodes.ENHANCE_YOUR_CALM,
                f"a request head of {self.guard.head_size} bytes still arriving while "
                f"heads arriving hold {self.head.account.held} bytes (a quarter of "
                f"max_header_memory: {self.head.account.limit})",
                quiet=not self.head.account.warn)
            return []
        started: list[Exchange] = []
        for event in events:
            stream = self._handle_event(event)
            if stream is not None:
                started.append(stream)
            if self.terminated:
                break
        return started

    @property
    def sender_has_work(self) -> bool:
        """Whether the sender, woken now, would do anything: frame DATA,
        write output, or end the connection (its loop's own conditions)."""
        return bool(self.output.backlog) or self.scheduler.ready_count > 0 or self.finished

    @property
    def output_backlog(self) -> int:
        """Bytes of output waiting for the sender that it has not taken yet:
        what reading produced, and WINDOW_UPDATE frames."""
        return self.output.backlog

    read_size = READ_SIZE
    whole_reads = False  # thousands of frames fit in one read (issue 11)

    @property
    def reading_paused(self) -> bool:
        """What we owe the client (PING and SETTINGS acknowledgements,
        RST_STREAM...) is not being read: the reader waits until it is, so a
        flood costs the flooder, not our memory (CVE-2019-9512, 9514, 9515).
        A client that never reads meets send_timeout. Request bodies need no
        brake here: flow control bounds them."""
        return self.output.backlog >= READ_PAUSE

    def receive_buffered(self) -> list[Exchange]:
        """After an upgrade: the bytes that followed the upgrade request.
        Otherwise nothing is held back: every read is processed at once."""
        data, self._early = self._early, b""
        return self.receive_data(data) if data else []

    def _open_upgraded(self) -> Exchange | None:
        """Stream 1 of an upgraded connection, once the client's preface has
        arrived: it confirms the switch, and a response sent before it could
        reach the client in the read that carries the 101, which curl (7.88)
        cannot take past 32 KiB ("connection buffer size is too small")."""
        handover, self._handover = self._handover, None
        assert handover is not None
        stream = self.opening.open(1, handover.head, None, ended=True)
        if stream is not None and handover.body:
            stream.body.append((handover.body, 0))  # read under HTTP/1.1: no window to return
        return stream

    @property
    def ready_to_send(self) -> bool:
        """Some stream has response data that :meth:`pull` would frame now."""
        return self.scheduler.ready_count > 0

    @property
    def linger(self) -> bool:
        """Whether to read and discard before closing: after a connection
        error, so that the client's frames in flight do not make the kernel
        reset the connection before the GOAWAY is read."""
        return self.error is not None

    def _handle_event(self, event: h2.events.Event) -> Exchange | None:
        if isinstance(event, h2.events.RequestReceived):
            return self.opening.request_received(event)
        if isinstance(event, h2.events.DataReceived):
            self.bodies.data_received(event)
        elif isinstance(event, h2.events.StreamEnded):
            self.bodies.ended(event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.bodies.trailers_received(event)
        elif isinstance(event, h2.events.StreamReset):
            # By the client, or by h2 for the client's error (a stream window
            # overflow, a body that disagrees with its content-length):
            # either way a reset the client caused.
            self.ending.spend(self.guard.resets, "stream resets")
            stream = self.streams.get(event.stream_id)
            if isinstance(event, BodyLengthReset):
                self.ending.bad_request(event.stream_id,
                                        body_length_mismatch(event.expected, event.actual))
            elif stream is not None:
                log.debug("%s: stream %d reset (%s, by %s)", self.peer, event.stream_id,
                          code_name(event.error_code),
                          "client" if event.remote_reset else "us")
            if stream is not None:
                self.table.close(stream, disconnected=True)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id == 0:
                self.output.refresh_all()
            elif event.stream_id in self.streams:
                self.output.refresh(self.streams[event.stream_id])
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.guard.preface_done()
            self.ending.spend(self.guard.control, "SETTINGS frames")
            # nghttp2 allows 32 entries per SETTINGS frame; h2 remembers every
            # setting id a client ever names, so bound those too.
            if len(event.changed_settings) > MAX_SETTINGS or \
                    len(self.h2.remote_settings) > 2 * MAX_SETTINGS:
                self.ending.connection_error(ErrorCodes.ENHANCE_YOUR_CALM,
                                             f"SETTINGS with more than {MAX_SETTINGS} entries")
            if h2.settings.SettingCodes.HEADER_TABLE_SIZE in event.changed_settings:
                limit_encoder_table(self.h2, MAX_ENCODER_TABLE_SIZE)
            if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                self.output.refresh_all()
            if self._handover is not None and not self.terminated:
                return self._open_upgraded()
        elif isinstance(event, h2.events.PriorityUpdated):
            if self.priorities.in_headers(event):
                return None  # already applied with its request
            self.ending.spend(self.guard.control, "PRIORITY frames")
            try:
                self.priorities.reprioritize(event)
            except SchedulerError as exc:
                self.ending.connection_error(ErrorCodes.ENHANCE_YOUR_CALM, str(exc))
        elif isinstance(event, h2.events.PingReceived):
            self.ending.spend(self.guard.control, "PING frames")
        elif isinstance(event, h2.events.PingAckReceived):
            if event.ping_data == DRAIN_PING:
                self.ending.drain_second_step()
        elif isinstance(event, h2.events.UnknownFrameReceived):
            self.ending.spend(self.guard.control, "PRIORITY_UPDATE and unknown frames")
            frame = event.frame
            if isinstance(frame, ExtensionFrame) and frame.type == PRIORITY_UPDATE:
                self._priority_update(frame.stream_id, frame.body)
        elif isinstance(event, h2.events.ConnectionTerminated):
            # h2 closes its side on GOAWAY and drops unsent output, so no
            # stream can be completed after this.
            if event.error_code != ErrorCodes.NO_ERROR:
                log.info("%s: client sent GOAWAY %s: %r", self.peer,
                         code_name(event.error_code), event.additional_data)
            self.ending.terminate()
        # h2 acknowledges PING and SETTINGS itself.
        return None

    def _priority_update(self, frame_stream_id: int, payload: bytes) -> None:
        try:
            self.priorities.update_received(frame_stream_id, payload, self.streams,
                                            self.h2.highest_inbound_stream_id)
        except BadPriorityUpdate as exc:
            code = (ErrorCodes.FRAME_SIZE_ERROR if exc.frame_size_error
                    else ErrorCodes.PROTOCOL_ERROR)
            self.ending.connection_error(code, str(exc))

    # ------------------------------------------------------ handler requests

    def take_body(self, stream: Exchange) -> bytes:
        """Everything buffered for ``stream``; its window reopens by as much."""
        return self.bodies.take(stream)

    def send_headers(self, stream: Exchange, headers: Headers, *, end_stream: bool) -> None:
        """Queue the response header block (validated by ``_core.headers``)."""
        assert not stream.headers_sent and not stream.disconnected
        if stream.stream_id % 2 == 0 and not self._may_open_pushed():
            # RFC 9113 section 5.1.2: a promised stream counts against the
            # client's SETTINGS_MAX_CONCURRENT_STREAMS once its HEADERS go,
            # and the client may have lowered it since the promise. nghttp2
            # refuses such a stream the same way (REFUSED_STREAM).
            log.info("%s: stream %d: pushed response refused: the client's "
                     "MAX_CONCURRENT_STREAMS is %d", self.peer, stream.stream_id,
                     self.h2.remote_settings.max_concurrent_streams)
            self.reset(stream, ErrorCodes.REFUSED_STREAM)
            raise ClientDisconnected(f"stream {stream.stream_id}: refused by the client's "
                                     "MAX_CONCURRENT_STREAMS")
        stream.headers_sent = True
        for name, value in headers:
            if name == b"priority":
                self.priorities.response_priority(stream.stream_id, value)
        try:
            self.output.headers(stream.stream_id, headers, end_stream=end_stream)
        except Exception as exc:
            # The headers were validated; if h2 still fails, it may have
            # changed its HPACK state half-way, and the client's decoder would
            # no longer match ours: the connection cannot go on.
            log.error("%s: stream %d: h2 failed to send headers; closing the connection: "
                      "%r", self.peer, stream.stream_id, exc)
            self.abort(ErrorCodes.INTERNAL_ERROR, "internal error")
            raise ClientDisconnected(f"stream {stream.stream_id}: connection closed") from exc
        if end_stream:
            self.table.response_ended(stream)

    def informs(self, stream: Exchange) -> bool:
        """A client's requests take 1xx responses (RFC 9113 section 8.1); a
        pushed one does not: no client waits on it, and h2 refuses HEADERS
        without a final status in the promised stream's reserved state (it
        closes the stream, and the response's HEADERS then end the connection)."""
        return stream.stream_id % 2 == 1

    def _may_open_pushed(self) -> bool:
        """Whether one more pushed stream may leave its reserved state now."""
        opened = sum(1 for stream_id, other in self.streams.items()
                     if stream_id % 2 == 0 and other.headers_sent and not other.response_ended)
        return opened < self.h2.remote_settings.max_concurrent_streams

    def send_informational(self, stream: Exchange, headers: Headers) -> None:
        """Queue a 1xx HEADERS frame, without END_STREAM (RFC 9113 section 8.1)."""
        assert not stream.headers_sent
        if stream.closed or self.terminated:
            return
        self.h2.send_headers(stream.stream_id, headers)
        self.output.queue()

    def pushes(self, stream: Exchange) -> bool:
        """Whether :meth:`push` may promise on ``stream`` (``_core.h2opening``)."""
        return self.opening.pushes(stream)

    def push(self, stream: Exchange, head: RequestHead) -> Exchange | None:
        """PUSH_PROMISE ``head`` on ``stream``, and open the promised stream."""
        return self.opening.push(stream, head)

    def offer(self, stream: Exchange, data: bytes, *, end_stream: bool,
              trailers: Headers | None = None) -> None:
        """Hand one chunk of response body to the sender. The handler then waits
        until :attr:`Exchange.in_flight` clears (or the stream disconnects)."""
        assert stream.headers_sent and not stream.in_flight and not stream.response_ended
        stream.outbox = memoryview(data)
        stream.outbox_end = end_stream
        stream.trailers = trailers
        stream.in_flight = True
        self.output.refresh(stream)

    def handler_finished(self, stream: Exchange) -> bool:
        """The handler task has exited, normally or not. Returns whether the
        sender has something to do because of it (a RST_STREAM or WINDOW_UPDATE
        queued, or a graceful close that may now finish)."""
        queued = not stream.closed or bool(stream.body) or self.draining
        # Nobody will read what is left of the body: its connection credit
        # goes back whatever closed the stream, or ignored uploads (a 413
        # or 404 to a POST) would shrink the connection window for good.
        self.table.discard_body(stream)
        if not stream.closed:
            # Request still open: no longer wanted (RFC 9113 section 8.1). Or
            # the handler is gone mid-response: the response cannot complete.
            self.reset(stream, ErrorCodes.NO_ERROR if stream.response_ended
                       else ErrorCodes.INTERNAL_ERROR)
        self.table.finished(stream)
        return queued

    def reset(self, stream: Exchange, code: ErrorCodes) -> None:
        """Reset ``stream`` with ``code`` (RST_STREAM); the handler sees a disconnect."""
        if stream.closed or self.terminated:
            return
        self.output.reset(stream.stream_id, code)
        self.table.close(stream, disconnected=code != ErrorCodes.NO_ERROR)

    # ---------------------------------------------------------------- output

    def pull(self, budget: int) -> list[Exchange]:
        """Frame up to about ``budget`` bytes of DATA, asking the scheduler
        before each frame. Returns the streams whose offered chunk is now
        entirely framed: the sender hands them back with :meth:`taken`."""
        if self.terminated:
            return []
        return self.output.pull(budget)

    def taken(self, streams: list[Exchange]) -> None:
        """The sender has framed every byte offered for ``streams``:
        their handlers may offer the next chunk (while this one is written)."""
        release(streams)

    def data_to_send(self) -> bytes:
        """Bytes to write to the socket, in order."""
        return self.output.take()

    def pieces_to_send(self) -> list[Piece]:
        """:meth:`data_to_send`, as the pieces it is made of."""
        return self.output.take_pieces()

    @property
    def finished(self) -> bool:
        """Nothing more will happen on this connection once output is flushed."""
        return self.terminated or (
            self.draining and self.ending.last_stream_id != MAX_STREAM_ID and not self.streams
            and self._handover is None)

    # ------------------------------------------------------------- lifetime

    @property
    def terminated(self) -> bool:
        """No more frames will be exchanged after what is queued now."""
        return self.ending.terminated

    @property
    def draining(self) -> bool:
        return self.ending.draining

    @property
    def error(self) -> RemoteProtocolError | None:
        """Set when the connection ended because of the client; GOAWAY is queued."""
        return self.ending.error

    def start_drain(self) -> None:
        """Begin a graceful close: two GOAWAYs (:meth:`ConnectionEnd.start_drain`);
        the handlers of the streams in flight are told (:attr:`Exchange.going_away`)."""
        if self.draining or self.terminated:
            return
        self.ending.start_drain()
        going_away(self.streams.values())

    def check_timeouts(self) -> float:
        """Act on the timers that have run out; return the next deadline."""
        reason, stalled, starved = self.guard.expired()
        for stream_id in stalled:
            self.guard.stream_stalled(stream_id, False)
            self._give_up(stream_id, f"response made no progress for "
                                     f"{self.config.send_timeout}s at a zero window")
        for stream_id in starved:
            self.guard.body_wanted(stream_id, False)
            self._give_up(stream_id, f"no request body for {self.config.body_timeout}s")
        if reason == "idle":
            log.debug("%s: idle for %ss; closing", self.peer, self.config.idle_timeout)
            self.guard.idle_since = None
            self.start_drain()
        elif reason is not None:
            self.ending.connection_error(ErrorCodes.ENHANCE_YOUR_CALM, reason)
        if self.guard.drain_due():
            self.ending.drain_second_step()
        return self.guard.next_deadline()

    def _give_up(self, stream_id: int, why: str) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            log.info("%s: stream %d: %s; resetting it", self.peer, stream_id, why)
            self.reset(stream, ErrorCodes.CANCEL)

    def close(self) -> None:
        """Queue the final GOAWAY (NO_ERROR) of an orderly close."""
        self.ending.close()

    def abort(self, code: ErrorCodes, reason: str) -> None:
        """End the connection now with GOAWAY ``code``."""
        self.ending.abort(code, reason)

    def connection_lost(self) -> None:
        """The socket is gone: every stream is disconnected."""
        self.ending.connection_lost()

    def body_wanted(self, stream: Exchange, wanted: bool) -> None:
        """The handler of ``stream`` waits in ``receive()`` for body (or not).
        The first wait answers ``expect: 100-continue`` with ``100``."""
        if wanted and not stream.continued:
            self._continue(stream)
        self.guard.body_wanted(stream.stream_id, wanted and not stream.closed)

    def _continue(self, stream: Exchange) -> None:
        """``100 Continue`` (RFC 9110 section 10.1.1) if the request expects it
        and nothing has answered it yet: the application waits for a body
        the client holds back until it sees one. Decided once per stream."""
        stream.continued = True
        if (stream.headers_sent or stream.body or stream.body_ended or stream.closed
                or not expects_continue(stream.head)):
            return
        self.send_informational(stream, [(b":status", b"100")])

    # --------------------------------------------------------------- helpers

    @property
    def streams(self) -> dict[int, Exchange]:
        """The open streams: the stream table's (``_core.h2streams``)."""
        return self.table.streams

    def _acknowledge(self, size: int, stream_id: int) -> None:
        """Return credit for request body nobody will read, unless the
        connection has ended."""
        if not self.terminated:
            self.h2.acknowledge_received_data(size, stream_id)

    @property
    def scheduler_control(self) -> SchedulerControl:
        """The ``trio_h2.scheduler`` scope extension of this connection."""
        if self._control is None:
            self._control = SchedulerControl(self.output)
        return self._control

    def stats(self) -> dict[str, Any]:
        """Counters for tests and debugging."""
        return {**self.table.stats(), "ready_streams": self.scheduler.ready_count}
