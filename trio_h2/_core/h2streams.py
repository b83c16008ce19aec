"""The streams of one HTTP/2 connection: the single owner of stream lifetime. Pure.

A stream is in :attr:`StreamTable.streams` exactly while it is open on the
wire: :meth:`StreamTable.add` puts it there once its request is admitted,
and :meth:`StreamTable.close` is the one place it leaves (and leaves the
scheduler and the guard's stream timers with it). ``H2Core`` (``_core.h2``)
says when, from the client's frames and the handlers' calls; nothing else
keeps a table of streams, so there are no two tables to disagree.

The table also keeps what outlives a stream's entry: the handlers still
running (those of reset streams, the *orphans*, count against
``max_concurrent_streams``), and the memory each request holds of the
server's accounts until its handler finishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import final

from .._config import Config
from .exchange import Exchange
from .guard import ConnectionGuard
from .h2admission import body_allowance
from .headers import RequestHead, head_cost
from .memory import MemoryAccount, ServerMemory
from .scheduler import Scheduler

log = logging.getLogger("trio_h2")


@final
class StreamTable:
    """The open streams of one connection, the handlers still running, and
    what their requests hold of the server's memory accounts."""

    def __init__(self, config: Config, memory: ServerMemory, *, scheduler: Scheduler,
                 guard: ConnectionGuard, acknowledge: Callable[[int, int], None],
                 peer: str) -> None:
        """``acknowledge(size, stream_id)``: return credit for request body
        nobody will read (a no-op once the connection has ended)."""
        self.config = config
        self.peer = peer
        self.scheduler = scheduler
        self.guard = guard
        self._acknowledge = acknowledge
        self.streams: dict[int, Exchange] = {}
        self.header_memory = memory.headers
        self.header_bytes = 0
        """What this connection's requests in progress hold of it."""
        self.body_memory = memory.bodies
        self.body_bytes = 0
        """What this connection's streams that may carry a body hold of it."""
        self.running = 0
        """Handlers running, whatever the state of their stream."""
        self.orphans = 0
        """Handlers still running for streams that were reset (by either
        side) or lost. They count against max_concurrent_streams with the
        open streams, so a client that resets streams (Rapid Reset) or makes
        us reset them (MadeYouReset) cannot pile up handlers. A stream that
        ended normally does not count: the client cannot know its handler is
        still finishing."""

    @property
    def full(self) -> bool:
        """No room for another handler: open streams and orphans together
        reach ``max_concurrent_streams``."""
        return len(self.streams) + self.orphans >= self.config.max_concurrent_streams

    # ------------------------------------------------------------- opening

    def admit(self, stream_id: int, head: RequestHead, *, ended: bool) -> Exchange | None:
        """The exchange of a valid request, its head and the body it may
        carry charged to the server's accounts; None if an account is full
        (logged: the caller refuses the stream). Not in the table until
        :meth:`add`."""
        cost = head_cost(head)
        if not self.header_memory.charge(cost, self.header_bytes):
            self._refuse_for_memory(stream_id, "request headers", self.header_memory,
                                    "max_header_memory")
            return None
        body = 0 if ended else body_allowance(head, self.config.initial_window_size)
        if not self.body_memory.charge(body, self.body_bytes):
            self.header_memory.release(cost)  # (not charged to the connection yet)
            self._refuse_for_memory(stream_id, "request body", self.body_memory,
                                    "max_body_memory")
            return None
        self.header_bytes += cost  # released by finished() or release()
        self.body_bytes += body
        return Exchange(stream_id, head, body_charge=body)

    def _refuse_for_memory(self, stream_id: int, what: str, memory: MemoryAccount,
                           field: str) -> None:
        """The server's requests in progress hold ``field`` bytes of
        ``what``: the caller answers REFUSED_STREAM, which RFC 9113 section
        8.7 lets the client retry. Not the client's doing (others may hold
        it), so no budget is spent. One WARNING line per run of refusals."""
        log.log(logging.WARNING if memory.warn else logging.DEBUG,
                "%s: stream %d refused: requests in progress hold %d bytes of %s "
                "(%s is %d)", self.peer, stream_id, memory.held, what, field, memory.limit)

    def add(self, stream: Exchange) -> None:
        """Open ``stream`` (from :meth:`admit`): its handler starts."""
        self.streams[stream.stream_id] = stream
        self.running += 1
        self.guard.streams_running(self.running)

    def release(self, stream: Exchange) -> None:
        """Give back all that ``stream``'s request holds of the accounts."""
        cost = head_cost(stream.head)
        self.header_bytes -= cost
        self.header_memory.release(cost)
        self.release_body_memory(stream)

    def release_body_memory(self, stream: Exchange) -> None:
        """The stream's body can hold nothing more: read to its end, or the
        stream is done."""
        self.body_bytes -= stream.body_charge
        self.body_memory.release(stream.body_charge)
        stream.body_charge = 0

    def finished(self, stream: Exchange) -> None:
        """``stream``'s handler has exited (its stream closed by now)."""
        self.release(stream)
        self.running -= 1
        if stream.disconnected:
            self.orphans -= 1
        self.guard.streams_running(self.running)

    # -------------------------------------------------------------- ending

    def response_ended(self, stream: Exchange) -> None:
        stream.response_ended = True
        self.maybe_close(stream)

    def maybe_close(self, stream: Exchange) -> None:
        if stream.body_ended and stream.response_ended and not stream.closed:
            self.close(stream, disconnected=False)

    def close(self, stream: Exchange, *, disconnected: bool) -> None:
        """Remove ``stream`` from the table: the one place a stream ends."""
        if stream.closed:
            return
        stream.closed = True
        del self.streams[stream.stream_id]
        self.scheduler.remove(stream.stream_id)
        self.guard.stream_stalled(stream.stream_id, False)
        self.guard.body_wanted(stream.stream_id, False)
        if disconnected:
            stream.disconnected = True
            self.orphans += 1  # until finished()
            stream.response_ended = True
            stream.outbox = None
            self.discard_body(stream)
        stream.wake()

    def close_all(self) -> None:
        """The connection has ended: every stream is disconnected."""
        for stream in list(self.streams.values()):
            self.close(stream, disconnected=True)

    def discard_body(self, stream: Exchange) -> None:
        """Drop unread request body and return its credit to the client."""
        unread = sum(n for _, n in stream.body)
        stream.body.clear()
        if unread:
            self._acknowledge(unread, stream.stream_id)

    def stats(self) -> dict[str, int]:
        return {
            "open_streams": len(self.streams),
            "buffered_body_bytes": sum(n for s in self.streams.values() for _, n in s.body),
            "body_memory": self.body_bytes,
        }
