"""The sans-IO core of an HTTP/1.1 connection after ``101 Switching
Protocols`` to a WebSocket: a byte tunnel. Imports no trio.

``_core.h1.H1Core`` hands the connection over (``_core.protocol.Handover``,
``protocol="websocket"``) when the application accepts the handshake; this
core then serves the one exchange that asked, the same ``Exchange``
whose handler is running: the connection's bytes are its request body, and
its response body is written as it is, unframed. So the ASGI websocket
adapter reads and writes the same way whether an HTTP/2 stream's DATA or
this connection carries it, and it is the single owner of that exchange
from the hand-over on.

Bounds, as for an HTTP/1.1 request body: the reader pauses once
``Config.initial_window_size`` bytes wait for the application, so at most
that plus one read (64 KiB) is held; a client that sends faster than the
application reads is stopped by TCP. Output is one offer at a time, as
everywhere. The connection ends when the exchange does (its response
ends, its handler returns, or the client goes away).
"""

from __future__ import annotations

import logging
from typing import Any, final

from h2.errors import ErrorCodes

from .._config import Config
from .errors import LocalProtocolError, RemoteProtocolError
from .exchange import Exchange, add_body, drain_body, going_away, release, take_offered
from .guard import ConnectionGuard
from .headers import Headers, RequestHead
from .output import Output, Piece
from .protocol import READ_SIZE, Handover, ProtocolCore

log = logging.getLogger("trio_h2")


@final
class TunnelCore:
    """One exchange's bytes, both ways, as the whole connection."""

    def __init__(self, config: Config, handover: Handover, *, peer: str = "?") -> None:
        assert handover.exchange is not None
        self.config = config
        self.peer = peer
        self.stream: Exchange = handover.exchange
        # The handshake request ended; the connection's bytes are its body now.
        self.stream.body_ended = False
        self.guard: ConnectionGuard = handover.guard
        self.error: RemoteProtocolError | None = None
        self.terminated = False
        self.successor: ProtocolCore | None = None
        """Always None: nothing follows a tunnel."""
        self.scheduler_control = None  # one exchange at a time: nothing to schedule
        self._out = Output()
        self._out.append(handover.output)  # the 101 goes first
        self._early = handover.received
        self._unread = 0
        self._running = True
        """The exchange's handler has not returned."""

    def initiate(self) -> None:
        """Nothing to say first: the 101 is already queued."""

    def receive_data(self, data: bytes | bytearray) -> list[Exchange]:
        stream = self.stream
        if not self.terminated and not stream.disconnected and not stream.body_ended:
            add_body(stream, bytes(data), len(data))
            self._unread += len(data)
            stream.wake()
        return []

    def receive_buffered(self) -> list[Exchange]:
        """The bytes that followed the handshake request, once."""
        data, self._early = self._early, b""
        return self.receive_data(data) if data else []

    read_size = READ_SIZE
    whole_reads = False  # as HTTP/2: the WebSocket frames in it are parsed by the handler

    @property
    def reading_paused(self) -> bool:
        return self._unread >= self.config.initial_window_size

    def take_body(self, stream: Exchange) -> bytes:
        self._unread = 0
        return drain_body(stream)

    def body_wanted(self, stream: Exchange, wanted: bool) -> None:
        self.guard.body_wanted(stream.stream_id, wanted and not stream.closed)

    def send_headers(self, stream: Exchange, headers: Headers, *, end_stream: bool) -> None:
        raise LocalProtocolError("the response head of a tunnel has gone out already")

    def informs(self, stream: Exchange) -> bool:
        return False  # the response head has gone out

    def send_informational(self, stream: Exchange, headers: Headers) -> None:
        raise LocalProtocolError("the response head of a tunnel has gone out already")

    def pushes(self, stream: Exchange) -> bool:
        return False

    def push(self, stream: Exchange, head: RequestHead) -> Exchange | None:
        return None

    def offer(self, stream: Exchange, data: bytes, *, end_stream: bool,
              trailers: Headers | None = None) -> None:
        assert not stream.in_flight and not stream.response_ended
        stream.outbox = memoryview(data)
        stream.outbox_end = end_stream
        stream.in_flight = True

    def reset(self, stream: Exchange, code: ErrorCodes) -> None:
        if not self.terminated:
            log.debug("%s: tunnel abandoned (%s)", self.peer, code.name)
            self._terminate()

    def handler_finished(self, stream: Exchange) -> bool:
        self._running = False
        stream.body.clear()
        self._unread = 0
        self.guard.streams_running(0)
        if not stream.response_ended:
            self._terminate()
        return True

    def pull(self, budget: int) -> list[Exchange]:
        stream = self.stream
        if stream.outbox is None or self.terminated:
            return []
        self._out.append(take_offered(stream, budget))
        if stream.outbox is not None:
            return []
        if stream.outbox_end:
            stream.response_ended = True
        return [stream]

    def taken(self, streams: list[Exchange]) -> None:
        release(streams)

    def data_to_send(self) -> bytes:
        return self._out.take()

    def pieces_to_send(self) -> list[Piece]:
        return self._out.take_pieces()

    @property
    def sender_has_work(self) -> bool:
        return bool(self._out) or self.ready_to_send or self.finished

    @property
    def ready_to_send(self) -> bool:
        return self.stream.outbox is not None and not self.terminated

    @property
    def output_backlog(self) -> int:
        return len(self._out)

    @property
    def finished(self) -> bool:
        """The tunnel's response has ended and its handler returned."""
        return self.terminated or (self.stream.response_ended and not self._running)

    @property
    def linger(self) -> bool:
        """The client may still be sending (its close frame after ours):
        read and drop a little before closing, so no TCP reset destroys our
        last bytes (RFC 6455 section 7.1.1: the server closes first)."""
        return not self.stream.body_ended

    def check_timeouts(self) -> float:
        reason, _, _ = self.guard.expired()
        if reason is not None and reason != "idle":
            log.info("%s: closing WebSocket connection: %s", self.peer, reason)
            self._terminate()
        return self.guard.next_deadline()

    def start_drain(self) -> None:
        """Tell the exchange's handler (:attr:`Exchange.going_away`): the
        WebSocket closes with 1001. It runs to its end (or until
        ``shutdown_timeout`` cancels it)."""
        if not self.terminated:
            going_away([self.stream])

    def close(self) -> None:
        self._terminate()

    def abort(self, code: ErrorCodes, reason: str) -> None:
        self._terminate()

    def connection_lost(self) -> None:
        self._out.clear()
        self._terminate()

    def _terminate(self) -> None:
        self.terminated = True
        stream = self.stream
        if not stream.closed:
            stream.closed = True
            stream.disconnected = not stream.response_ended
            stream.response_ended = True
            stream.outbox = None
            stream.body.clear()
            stream.wake()

    def stats(self) -> dict[str, Any]:
        """Counters for tests and debugging."""
        return {"buffered_body_bytes": self._unread, "output": len(self._out)}
