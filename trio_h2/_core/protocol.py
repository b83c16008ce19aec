"""The interface of a sans-IO protocol core, as the trio layer drives it. Pure.

One core per protocol: ``_core.h2.H2Core`` (HTTP/2, on h2) and
``_core.h1.H1Core`` (HTTP/1.1, on h11). ``_io.connection.Connection`` (the
reader, the sender, the watchdog) and ``_apps.asgi`` (the handler of one
exchange) are written against :class:`ProtocolCore` alone, so they do not
know which protocol carries the exchange.

Bytes in, exchanges started, bytes out::

    reader:   receive_data(bytes) -> [Exchange]   (start a handler for each)
              reading_paused / receive_buffered()     (the reader's brake)
    sender:   pull(budget) -> [Exchange], taken(...), data_to_send()
    watchdog: check_timeouts() -> next deadline, guard
    handler:  take_body, body_wanted, send_headers, offer, reset
              informs / send_informational (1xx), pushes / push (HTTP/2 push)
    lifetime: initiate, start_drain, close, abort, connection_lost,
              handler_finished, terminated, finished
    hand-over: successor (HTTP/1.1 ``Upgrade``: the core that serves the
              connection from now on, fed by the same reader and sender;
              h2c as a request arrives, websocket as its handler accepts)

No method blocks. A client's mistake never raises: the core answers it on
the wire and records it in :attr:`ProtocolCore.error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, final

from h2.errors import ErrorCodes

from .errors import RemoteProtocolError
from .exchange import Exchange
from .guard import ConnectionGuard
from .headers import Headers, RequestHead
from .output import Piece
from .sendlog import SchedulerControl

# Bytes the reader asks for at a time, unless the core says otherwise
# (:attr:`ProtocolCore.read_size`): one full 16 KiB HTTP/2 frame plus headers,
# several small frames at once. Inbound memory is bounded by flow control and
# the cores' brakes (``reading_paused``), not by this.
READ_SIZE = 64 * 1024


@final
@dataclass(frozen=True, slots=True)
class Handover:
    """What a core passes to the one it hands its connection to, when a
    request switches protocols (HTTP/1.1 ``Upgrade``, RFC 9110 section 7.8).
    The old core is terminated; the new one takes the same socket, reader and
    sender, and ``guard`` (the connection's timers and budgets go on)."""

    protocol: str
    """The protocol switched to: ``"h2c"`` or ``"websocket"``."""
    head: RequestHead
    """The request that asked, its connection-specific fields removed: the
    new protocol's first exchange (HTTP/2: stream 1)."""
    body: bytes
    """That request's body, read in full under the old protocol."""
    settings: bytes
    """``h2c``: the client's SETTINGS payload (its ``HTTP2-Settings``, decoded)."""
    output: bytes
    """What the old core had queued and the sender has not taken, ending with
    the ``101 Switching Protocols``: it goes out first."""
    received: bytes
    """Bytes that arrived after the request: the new protocol's."""
    guard: ConnectionGuard
    exchange: Exchange | None = None
    """``websocket``: the exchange that asked, whose handler runs on; the new
    core (``_core.tunnel``) owns it from now on."""


class ProtocolCore(Protocol):
    """What the trio layer needs from one connection's protocol state."""

    @property
    def guard(self) -> ConnectionGuard:
        """The connection's timers (the watchdog reads ``new_deadline``; the
        sender sets ``writing_since`` around each write)."""

    @property
    def error(self) -> RemoteProtocolError | None:
        """Set when the connection ended because of the client."""

    @property
    def terminated(self) -> bool:
        """No more exchanges: what is queued now is the last output."""

    @property
    def finished(self) -> bool:
        """Nothing more will happen once the output is flushed: the sender
        calls :meth:`close`, and ends the connection once terminated."""

    @property
    def successor(self) -> ProtocolCore | None:
        """The core this one handed the connection to (set as it terminates):
        the runner swaps it in, calls its :meth:`initiate` and starts what
        its :meth:`receive_buffered` returns."""

    @property
    def scheduler_control(self) -> SchedulerControl | None:
        """The ``trio_h2.scheduler`` scope extension (HTTP/2), or None: the
        protocol has no scheduler."""

    @property
    def sender_has_work(self) -> bool:
        """The sender, woken now, would write or frame something, or end."""

    @property
    def output_backlog(self) -> int:
        """Bytes queued for the sender that it has not taken yet."""

    @property
    def reading_paused(self) -> bool:
        """The reader must not read now (the core holds as much input as it
        may); it waits to be woken (after a write, or when an application
        takes body), then calls :meth:`receive_buffered`."""

    @property
    def read_size(self) -> int:
        """How many bytes the reader asks the socket for next (at least
        :data:`READ_SIZE`); the bound on what the core holds comes from
        :attr:`reading_paused`, and each core documents it."""

    @property
    def whole_reads(self) -> bool:
        """The reader may hand this core a whole read (:attr:`read_size`) at once.
        False: in slices of 16 KiB with a checkpoint between, for a core
        whose work per byte can be large (HTTP/2: a read full of small
        frames, each answered)."""

    @property
    def ready_to_send(self) -> bool:
        """Response data is waiting that :meth:`pull` would take now."""

    @property
    def linger(self) -> bool:
        """The client may still be sending: half-close and read (bounded)
        before closing, so that the kernel does not answer its bytes with a
        TCP reset that destroys our last response."""

    def initiate(self) -> None:
        """Queue what the server says first (HTTP/2: its preface)."""

    def receive_data(self, data: bytes | bytearray) -> list[Exchange]:
        """Process bytes from the client; return the exchanges to start."""

    def receive_buffered(self) -> list[Exchange]:
        """Process input held back while reading was paused; return the
        exchanges to start."""

    def data_to_send(self) -> bytes:
        """Everything queued for the socket, in order."""

    def pieces_to_send(self) -> list[Piece]:
        """What :meth:`data_to_send` would return, as the pieces it is made
        of (``_core.output``): the sender writes them with one ``writev``,
        where joining them would copy every response body once more."""

    def pull(self, budget: int) -> list[Exchange]:
        """Take up to about ``budget`` bytes of offered response data into
        the output; return the exchanges whose offer is now entirely taken."""

    def taken(self, streams: list[Exchange]) -> None:
        """Release the handlers of ``streams`` (from :meth:`pull`)."""

    def check_timeouts(self) -> float:
        """Act on the timers that ran out; return the next deadline."""

    def connection_lost(self) -> None:
        """The socket is gone: every exchange is disconnected."""

    def start_drain(self) -> None:
        """Begin a graceful close: finish what is in flight, start nothing new."""

    def close(self) -> None:
        """Queue the end of an orderly close; the core is then terminated."""

    def abort(self, code: ErrorCodes, reason: str) -> None:
        """End the connection now (HTTP/2: GOAWAY ``code``)."""

    def handler_finished(self, stream: Exchange) -> bool:
        """The handler of ``stream`` has exited; returns whether the sender
        has something to do because of it."""

    def take_body(self, stream: Exchange) -> bytes:
        """All the request body buffered for ``stream``, now consumed."""

    def body_wanted(self, stream: Exchange, wanted: bool) -> None:
        """The handler of ``stream`` waits for body (``body_timeout`` runs)."""

    def send_headers(self, stream: Exchange, headers: Headers, *, end_stream: bool) -> None:
        """Queue the response head (``:status`` first, as ``_core.headers`` makes it)."""

    def offer(self, stream: Exchange, data: bytes, *, end_stream: bool,
              trailers: Headers | None = None) -> None:
        """Hand one chunk of response body to the sender; the handler waits
        until :attr:`Exchange.in_flight` clears."""

    def reset(self, stream: Exchange, code: ErrorCodes) -> None:
        """Abandon ``stream``'s exchange; its handler sees a disconnect."""

    def informs(self, stream: Exchange) -> bool:
        """Whether ``stream``'s client can be sent 1xx informational
        responses (HTTP/2, HTTP/1.1; not HTTP/1.0: RFC 9110 section 15.2)."""

    def send_informational(self, stream: Exchange, headers: Headers) -> None:
        """Queue a 1xx response head (``:status`` first) before the final
        one; only where :meth:`informs`, and before :meth:`send_headers`."""

    def pushes(self, stream: Exchange) -> bool:
        """Whether the server may push a response with ``stream``'s request
        now (HTTP/2, the client's ``SETTINGS_ENABLE_PUSH`` is 1)."""

    def push(self, stream: Exchange, head: RequestHead) -> Exchange | None:
        """Promise ``head``'s response on ``stream`` (HTTP/2 PUSH_PROMISE);
        return the promised exchange, whose handler the caller starts, or
        None if the push is refused now (the client disabled it, or its
        ``SETTINGS_MAX_CONCURRENT_STREAMS`` or ours is reached, or ``stream``
        has ended)."""
