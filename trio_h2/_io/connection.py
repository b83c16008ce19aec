"""One connection on trio: a reader, a sender and a handler per exchange.

The protocol is a sans-IO core (``_core.protocol.ProtocolCore``: HTTP/2's
``_core.h2.H2Core`` or HTTP/1.1's ``_core.h1.H1Core``); this module
does the I/O its decisions call for, the same way for either. All three kinds
of task live in one nursery, so nothing outlives the connection::

    reader  --bytes-->  protocol core (sans-IO)  <--offer/take--  handlers
                              |
    sender  <--pull/data_to_send--  (HTTP/2: asks the scheduler before every frame)

* The **reader** feeds socket bytes to the core and starts handlers. It never
  awaits an application, so PING, SETTINGS, WINDOW_UPDATE and RST_STREAM are
  answered however slow the handlers are. It pauses only when the core says
  it holds as much input as it may (``reading_paused``).
* The **sender** is the only task that calls ``send_all``. Before each write
  it lets the core take the offered response data (for HTTP/2 the scheduler
  picks, frame by frame, whose data goes next).
* A **handler** (``_apps.asgi``) runs the application for one exchange. Its
  ``send`` hands one chunk to the sender and waits until that chunk is
  taken: a zero-buffer hand-off, so no response data queues up behind a slow
  client. A handler task that has finished its exchange waits for the
  connection's next one instead of exiting, unless another already waits:
  HTTP/1.1's exchanges, one after another, are served by one task (a task
  per request cost 5-10% of the CPU time of a small one, bench/cpu_cost.py);
  a task is spawned only for an exchange that starts while every handler
  task is busy (HTTP/2's concurrent streams, an application still running
  after its response). Cancelling the nursery ends the waiting one too.

A core may hand the connection to another (HTTP/1.1 ``Upgrade: h2c``): it
terminates with a ``successor``, which the reader swaps in (``state``) and
starts; the sender and the watchdog take the core afresh on each turn, so
the same three tasks serve the new protocol from its first byte. The old
core has no handler left running by then (it hands over only then).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import final

import outcome
import trio
from h2.errors import ErrorCodes
from trio.lowlevel import Abort, RaiseCancelT, Task

from .._core.exchange import Exchange
from .._core.guard import ConnectionGuard
from .._core.output import Piece, join
from .._core.protocol import READ_SIZE, ProtocolCore
from .waker import Waker

log = logging.getLogger("trio_h2")

# DATA framed per send_all. A late high-priority stream waits behind at most
# this much plus the kernel's TCP_NOTSENT_LOWAT of 16 KiB that trio sets:
# 144 KiB, within the 256 KiB an interactive page can afford (issue 4).
# Each write and its trip through trio's loop cost as much as framing
# 32 KiB: 64 KiB writes took 20% more CPU per byte of a 1 MiB download.
SEND_BATCH = 128 * 1024

# Pieces given to one writev; the rest go after it. Linux's IOV_MAX is 1024;
# a response's pieces are a head, a few body slices and their framing.
WRITEV_PIECES = 64

# The reader hands a read to the core this much at a time, and lets the other
# tasks run between the pieces: whatever 64 KiB a client sends (thousands of
# SETTINGS, PINGs or refused requests, each answered), the rest of the
# server waits for a quarter of it at most (issue 11; bench/receive_cost.py).
READ_SLICE = 16384

StreamHandler = Callable[["Connection", Exchange], Awaitable[None]]


def _write_now(fd: int, pieces: list[Piece]) -> list[Piece]:
    """Write ``pieces`` to ``fd`` until the kernel takes no more (or all is
    written); return what is left, in order."""
    start = 0
    while start < len(pieces):
        try:
            sent = os.writev(fd, pieces[start:start + WRITEV_PIECES])
        except BlockingIOError:
            break
        while start < len(pieces) and sent >= len(pieces[start]):
            sent -= len(pieces[start])
            start += 1
        if sent:
            pieces[start] = memoryview(pieces[start])[sent:]
            break  # the kernel took part of a piece: it is full
    return pieces[start:]


def _batches(pieces: list[Piece], size: int) -> Iterator[Piece]:
    """``pieces``, in order, as buffers of at most ``size`` bytes: slices of
    a large piece, small ones joined (a copy of ``size`` at most at a time)."""
    batch: list[Piece] = []
    room = size
    for piece in pieces:
        view = memoryview(piece)
        while len(view) >= room:
            batch.append(view[:room])
            view = view[room:]
            yield join(batch)
            batch, room = [], size
        if view:
            batch.append(view)
            room -= len(view)
    if batch:
        yield join(batch)


@final
class Connection:
    """Runs a protocol core on an established byte stream (TCP or TLS).

    ``core`` is made with ``clock=trio.current_time``, so that its timers and
    the watchdog's sleeps agree."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        core: ProtocolCore,
        handler: StreamHandler,
        *,
        peer: str,
        received: bytes = b"",
    ) -> None:
        """``received`` are bytes already read from ``stream`` (to choose the
        protocol); the core gets them first."""
        self.state = core
        self.peer = peer
        self._stream = stream
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        """The plain socket under ``stream``, if it is one (see :meth:`_read`)."""
        self._handler = handler
        self._sender_waker = Waker()
        self._reader_waker = Waker()  # the reader's brake: after a write, or body taken
        self._timer_waker = Waker()
        self._nursery: trio.Nursery | None = None
        self._received = received
        self._idle_handler: Task | None = None
        """A handler task waiting for the connection's next exchange."""
        self._initiated = False
        """The core has queued what it says first (:meth:`run`)."""
        self._drain_asked = False
        """:meth:`drain` came before that: :meth:`run` drains after it."""

    async def run(self) -> None:
        """Serve until the connection ends; then every task of it has exited.

        Returns normally on an orderly close, a client error (answered on the
        wire) or a lost peer. Raises only for bugs, which the server logs.
        Does not close the underlying stream: the caller owns it.
        """
        self.state.initiate()
        self._initiated = True
        if self._drain_asked:
            self.drain()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._sender)
            nursery.start_soon(self._reader)
            nursery.start_soon(self._watchdog)

    def drain(self) -> None:
        """Begin a graceful close: finish the exchanges in flight, start no
        more (HTTP/2: GOAWAY; HTTP/1.1: ``Connection: close``; a WebSocket:
        1001). The core after any hand-over: a 101 just queued is one.
        Before :meth:`run` (a connection accepted as the shutdown began),
        the drain waits for the core's first bytes: HTTP/2's SETTINGS must
        be the first frame, before the drain's GOAWAY (RFC 9113 section 3.4)."""
        if not self._initiated:
            self._drain_asked = True
            return
        self._current().start_drain()
        self.wake_sender()

    def wake_sender(self) -> None:
        """A handler queued something: let the sender look. A hand-over the
        handler caused (HTTP/1.1's 101 to a WebSocket) takes effect here,
        before any other task can look at the old core."""
        self._current()
        self._sender_waker.wake()
        self.check_deadlines()

    def start_exchange(self, stream: Exchange) -> None:
        """Run the handler for ``stream``, an exchange the server began
        itself (an HTTP/2 push), in the connection's nursery like the others."""
        self._start([stream])

    def _current(self) -> ProtocolCore:
        """The core that serves the connection now, after any hand-over."""
        state = self.state
        if state.successor is not None:
            state = self._hand_over(state.successor)
        return state

    def body_taken(self) -> None:
        """A handler took request body: the core may owe the client credit
        (HTTP/2 WINDOW_UPDATE), or want the reader to read again (HTTP/1.1)."""
        if self.state.output_backlog:
            self._sender_waker.wake()
        self._reader_waker.wake()

    def check_deadlines(self) -> None:
        """After a call into the core that may have set an earlier deadline
        (``_core.guard``): let the watchdog look again."""
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
        """Runs the connection's timers (``_core.guard``): sleeps until the next
        deadline, or until a new one appears. Once the core has terminated,
        only writes are left (the last output, GOAWAY included): it goes on
        bounding each by ``send_timeout`` until the sender ends the connection."""
        with self._fatal_errors():
            while not self.state.terminated:
                deadline = self.state.check_timeouts()
                if self.state.guard.writing_since is not None and self.state.terminated:
                    # The client stopped reading: the write cannot finish and
                    # no GOAWAY can get through. Cancel everything.
                    self._cut_off()
                    return
                self.wake_sender()
                with trio.move_on_at(deadline):
                    await self._timer_waker.sleep()
            await self._bound_last_writes()

    async def _bound_last_writes(self) -> None:
        """After the core terminated (a budget, the client's error, a close):
        a client that does not read would otherwise hold the last write, and
        with it the socket and the tasks, for as long as it stays connected."""
        guard = self.state.guard
        timeout = guard.config.send_timeout
        while True:
            since = guard.writing_since
            if since is not None and guard.clock() - since >= timeout:
                log.info("%s: the client has not read the last output for %ss; closing",
                         self.peer, timeout)
                self._cut_off()
                return
            # writing_since is set without waking anyone: look at least every
            # half send_timeout, as before termination (_guard.next_deadline).
            await trio.sleep_until(guard.clock() + timeout / 2 if since is None
                                   else since + timeout)

    def _cut_off(self) -> None:
        """The write in progress cannot finish: drop the output, cancel everything."""
        self.state.connection_lost()
        self._end()

    async def _read_loop(self) -> None:
        received, self._received = self._received, b""
        if received:
            await self._receive(received)
        # A read shorter than READ_SIZE emptied the kernel's buffer: the next
        # bytes are not there yet (an HTTP/1.1 client sends its next request
        # after our response), so wait for them before reading, not after a
        # read that fails with EAGAIN: one system call less per request.
        empty = len(received) < READ_SIZE
        # Neither the first read nor the last (up to READ_SIZE each) is kept
        # while the next is awaited: the core holds what it needs of them.
        del received
        while not (state := self._current()).terminated:
            if state.reading_paused:
                # The core holds as much input as it may: HTTP/2 output the
                # client is not reading, HTTP/1.1 request body the app has
                # not taken, or a pipelined request. A client that never
                # reads meets send_timeout; an app that never takes body
                # keeps its client waiting, not our memory growing.
                await self._reader_waker.sleep()
                state = self._start(self._current().receive_buffered())
                continue
            size = state.read_size
            data = await self._read(size, wait_first=empty)
            empty = len(data) < size
            state = self._current()  # a handler may have handed over meanwhile
            if not data:
                log.debug("%s: connection closed by client", self.peer)
                state.connection_lost()
                self._end()
                return
            await self._receive(data)
            del data

    async def _write(self, pieces: list[Piece], guard: ConnectionGuard) -> bool:
        """Write all of ``pieces``, in order; False if the connection is lost.
        Each time the client takes some of them, ``guard.writing_since`` moves
        on: ``send_timeout`` bounds a write without progress, not a long one
        (a whole response body offered in one ``send``, read slowly).

        On a plain socket, first write them at once, with ``writev``: trio's
        ``send_all`` yields once after every write, even one the kernel took
        whole, so that a task step (a turn of the loop and a wake-up) would
        follow every response; and it takes one buffer, which joining the
        pieces would copy (a response body, once more). The sender yields
        anyway when it has more to write (``_send_loop``), and sleeps when
        it has not. What the kernel does not take at once waits for room,
        then goes with ``writev`` again. TLS takes one buffer: the pieces go
        in buffers of at most :data:`SEND_BATCH`, joined where small."""
        try:
            if (sock := self._socket) is not None:
                pieces = _write_now(sock.fileno(), pieces)
                while pieces:
                    await trio.lowlevel.wait_writable(sock)
                    guard.writing_since = guard.clock()
                    pieces = _write_now(sock.fileno(), pieces)
            else:
                for batch in _batches(pieces, SEND_BATCH):
                    await self._stream.send_all(batch)
                    guard.writing_since = guard.clock()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return False  # os.writev's reset or broken pipe; trio's, translated
        return True

    async def _read(self, size: int, *, wait_first: bool) -> bytes | bytearray:
        """Up to ``size`` bytes from the client; empty once it has
        closed (or reset) the connection.

        ``wait_first``: the kernel's buffer was empty a moment ago, so on a
        plain socket wait until it is readable, then read at once. trio's
        ``receive_some`` reads first (a ``recv`` failing with EAGAIN, then
        the wait, then the ``recv``) and, when the read succeeds at once,
        yields once more. Over TLS the TLS layer may hold decrypted bytes
        already, so ``receive_some`` reads at once."""
        stream = self._stream
        try:
            if wait_first and (sock := self._socket) is not None:
                await trio.lowlevel.wait_readable(sock)
                try:
                    return os.read(sock.fileno(), size)
                except BlockingIOError:
                    pass  # woken but nothing to read after all: trio's way
            return await stream.receive_some(size)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return b""  # (trio turns the socket's OSErrors into those two)

    async def _receive(self, data: bytes | bytearray) -> ProtocolCore:
        """Feed ``data`` to the core in pieces of :data:`READ_SLICE` bytes,
        with a checkpoint between them. TCP may cut a stream anywhere, so the
        core takes any split of its input; the cuts change only who runs when.
        Returns the core that serves the connection from now on (after a
        hand-over, the rest of ``data`` goes to the new one). A core that
        takes ``whole_reads`` gets ``data`` at once."""
        if self._current().whole_reads:
            return self._start(self._current().receive_data(data))
        for start in range(0, len(data), READ_SLICE):
            if start:
                await trio.lowlevel.checkpoint()
                if self._current().terminated:
                    break
            piece = data if len(data) <= READ_SLICE else data[start:start + READ_SLICE]
            self._start(self._current().receive_data(piece))
        return self._current()

    def _start(self, streams: list[Exchange]) -> ProtocolCore:
        """Start a handler for each exchange; wake the sender if reading gave
        it work (not for request heads and bodies alone). Returns the core
        that serves the connection from now on (a successor, after a hand-over)."""
        assert self._nursery is not None
        for stream in streams:
            idle = self._idle_handler
            if idle is not None:
                self._idle_handler = None
                trio.lowlevel.reschedule(idle, outcome.Value(stream))
            else:
                self._nursery.start_soon(self._handler_task, stream,
                                         name=f"trio_h2 stream {stream.stream_id}")
        state = self.state
        if state.successor is not None:
            return self._hand_over(state.successor)
        if state.sender_has_work:
            self._sender_waker.wake()
        self.check_deadlines()
        return state

    def _hand_over(self, core: ProtocolCore) -> ProtocolCore:
        """Serve the connection with ``core`` from now on: what the old core
        queued goes out first (it is in ``core``'s output), then ``core``'s
        own preface; its first exchanges start."""
        self.state = core
        core.initiate()
        return self._start(core.receive_buffered())

    async def _handler_task(self, stream: Exchange) -> None:
        """Run the handler for ``stream``, then for each exchange handed to
        this task while it is the connection's idle handler (see the module's
        docstring). Each exchange runs in a fresh copy of the context the
        task began with, as in a task of its own: context variables one
        application call sets are not seen by the next."""
        task = trio.lowlevel.current_task()
        context = task.context.copy()
        while True:
            await self._run_handler(stream)
            del stream  # an idle handler holds no exchange
            if self._idle_handler is not None:
                return  # one idle handler is enough
            task.context = context.copy()  # in effect from the task's next step
            self._idle_handler = task

            def abort(_: RaiseCancelT) -> Abort:
                self._idle_handler = None
                return Abort.SUCCEEDED

            stream = await trio.lowlevel.wait_task_rescheduled(abort)

    async def _run_handler(self, stream: Exchange) -> None:
        try:
            await self._handler(self, stream)
        finally:
            if self.state.handler_finished(stream):
                self.wake_sender()
            else:
                self.check_deadlines()  # the idle timeout, after the last stream

    async def _send_loop(self) -> None:
        while True:
            state = self._current()  # afresh: the core may have been handed over
            done = state.pull(SEND_BATCH)
            # Hand the chunks back at once: their handlers offer the next
            # ones while this batch is written, ready for the next decision.
            state.taken(done)
            data = state.pieces_to_send()
            if data:
                guard = state.guard
                guard.writing_since = guard.clock()  # the watchdog's send_timeout
                if not await self._write(data, guard):
                    log.debug("%s: connection lost while sending", self.peer)
                    state.connection_lost()
                    self._end()
                    return
                guard.writing_since = None
                self._reader_waker.wake()
            if done and state.ready_to_send:
                # trio runs the tasks of one turn in random order: yield two
                # turns, so that the handlers just released (run in the
                # first) offer their next chunks before the next decision,
                # instead of looking idle to it.
                await trio.lowlevel.checkpoint()
                await trio.lowlevel.checkpoint()
                continue
            if (data or done) and state.sender_has_work:
                # More to write at once: let the other tasks (and
                # connections) run between two writes, as send_all would.
                await trio.lowlevel.checkpoint()
                continue
            if state.finished:
                if not state.terminated:
                    state.close()  # drained: final GOAWAY, flushed on the next turn
                    continue
                self._end()
                return
            await self._sender_waker.sleep()
