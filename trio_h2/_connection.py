"""One HTTP/2 connection on trio: a reader, a sender and a handler per stream.

All three kinds of task live in one nursery, so nothing outlives the
connection::

    reader  --bytes-->  ConnectionState (sans-IO)  <--offer/take--  handlers
                              |
    sender  <--pull/data_to_send--  (asks the scheduler before every frame)

* The **reader** feeds socket bytes to the core and starts handlers. It never
  awaits an application, so PING, SETTINGS, WINDOW_UPDATE and RST_STREAM are
  answered however slow the handlers are.
* The **sender** is the only task that calls ``send_all``. Before each write
  it lets the scheduler pick, frame by frame, whose data goes next.
* A **handler** (``_asgi``) runs the application for one stream. Its ``send``
  hands one chunk to the sender and waits until that chunk is written: a
  zero-buffer hand-off, so no response data queues up behind a slow client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import final

import trio
from h2.errors import ErrorCodes

from ._config import Config
from ._headers import HeaderMemory
from ._state import ConnectionState
from ._stream import StreamState
from ._waker import Waker

log = logging.getLogger("trio_h2")

# Bytes read per receive_some: one full 16 KiB frame plus headers, several
# small frames at once. Inbound memory is bounded by flow control, not this.
READ_SIZE = 65536

# DATA framed per send_all. A late high-priority stream waits behind at most
# this much plus the kernel's TCP_NOTSENT_LOWAT of 16 KiB that trio sets:
# 144 KiB, within the 256 KiB an interactive page can afford (issue 4).
# Each write and its trip through trio's loop cost as much as framing
# 32 KiB: 64 KiB writes took 20% more CPU per byte of a 1 MiB download.
SEND_BATCH = 128 * 1024

# The reader stops reading while this much output it caused (acknowledgements,
# RST_STREAM, WINDOW_UPDATE) waits unsent: one read's worth. Go's server
# stops at 10000 queued control frames; bytes are the honest measure here.
READ_PAUSE = 64 * 1024

StreamHandler = Callable[["Connection", StreamState], Awaitable[None]]


@final
class Connection:
    """Runs the HTTP/2 protocol on an established byte stream (TCP or TLS)."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        config: Config,
        handler: StreamHandler,
        *,
        peer: str,
        header_memory: HeaderMemory | None = None,
    ) -> None:
        self.state = ConnectionState(config, peer=peer, clock=trio.current_time,
                                     header_memory=header_memory)
        self.peer = peer
        self._stream = stream
        self._handler = handler
        self._sender_waker = Waker()
        self._written_waker = Waker()  # the reader's brake
        self._timer_waker = Waker()
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        """Serve until the connection ends; then every task of it has exited.

        Returns normally on an orderly close, a client error (answered with
        GOAWAY) or a lost peer. Raises only for bugs, which the server logs.
        Does not close the underlying stream: the caller owns it.
        """
        self.state.initiate()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._sender)
            nursery.start_soon(self._reader)
            nursery.start_soon(self._watchdog)

    def drain(self) -> None:
        """Begin a graceful close: GOAWAY, then finish the streams in flight."""
        self.state.start_drain()
        self.wake_sender()

    def wake_sender(self) -> None:
        self._sender_waker.wake()
        self.check_deadlines()

    def check_deadlines(self) -> None:
        """After a call into the core that may have set an earlier deadline
        (``_guard``): let the watchdog look again."""
        if self.state.guard.new_deadline:
            self._timer_waker.wake()

    def _end(self) -> None:
        """Cancel whatever still runs: handlers of streams that cannot complete."""
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    @contextmanager
    def _fatal_errors(self) -> Iterator[None]:
        """A bug escaping the reader or sender: abort the whole connection
        (GOAWAY INTERNAL_ERROR) before the handlers are cancelled, so that
        they do not answer their streams one by one, then let it propagate."""
        try:
            yield
        except Exception:
            self.state.abort(ErrorCodes.INTERNAL_ERROR, "internal error")
            raise

    async def _reader(self) -> None:
        with self._fatal_errors():
            await self._read_loop()

    async def _sender(self) -> None:
        with self._fatal_errors():
            await self._send_loop()

    async def _watchdog(self) -> None:
        """Runs the connection's timers (``_guard``): sleeps until the next
        deadline, or until a new one appears."""
        with self._fatal_errors():
            while not self.state.terminated:
                deadline = self.state.check_timeouts()
                if self.state.guard.writing_since is not None and self.state.terminated:
                    # The client stopped reading: the write cannot finish and
                    # no GOAWAY can get through. Cancel everything.
                    self.state.connection_lost()
                    self._end()
                    return
                self.wake_sender()
                with trio.move_on_at(deadline):
                    await self._timer_waker.sleep()

    async def _read_loop(self) -> None:
        state = self.state
        assert self._nursery is not None
        while not state.terminated:
            while state.output_backlog >= READ_PAUSE:
                # What we owe the client (PING and SETTINGS acknowledgements,
                # RST_STREAM...) is not being read: stop reading until it is,
                # so a flood costs the flooder, not our memory (CVE-2019-9512,
                # 9514, 9515). A client that never reads meets send_timeout.
                await self._written_waker.sleep()
            try:
                data = await self._stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                log.debug("%s: connection closed by client", self.peer)
                state.connection_lost()
                self._end()
                return
            for stream in state.receive_data(data):
                self._nursery.start_soon(self._run_handler, stream,
                                         name=f"trio_h2 stream {stream.stream_id}")
            if state.sender_has_work:  # not for request HEADERS and DATA alone
                self._sender_waker.wake()
            self.check_deadlines()

    async def _run_handler(self, stream: StreamState) -> None:
        try:
            await self._handler(self, stream)
        finally:
            if self.state.handler_finished(stream):
                self.wake_sender()
            else:
                self.check_deadlines()  # the idle timeout, after the last stream

    async def _send_loop(self) -> None:
        state = self.state
        while True:
            done = state.pull(SEND_BATCH)
            # Hand the chunks back at once: their handlers offer the next
            # ones while this batch is written, ready for the next decision.
            state.taken(done)
            data = state.data_to_send()
            if data:
                guard = state.guard
                guard.writing_since = guard.clock()  # the watchdog's send_timeout
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    log.debug("%s: connection lost while sending", self.peer)
                    state.connection_lost()
                    self._end()
                    return
                guard.writing_since = None
                self._written_waker.wake()
            if done and state.scheduler.ready_count:
                # trio runs woken tasks in random order: yield once more so
                # that the handlers just released offer their next chunks
                # before the next decision, instead of looking idle to it.
                await trio.lowlevel.checkpoint()
            if data or done:
                continue
            if state.finished:
                if not state.terminated:
                    state.close()  # drained: final GOAWAY, flushed on the next turn
                    continue
                self._end()
                return
            await self._sender_waker.sleep()
