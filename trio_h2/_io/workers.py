"""Several processes on one port: the supervisor and its workers (``--workers N``).

The supervisor is the runner's own process. It reserves every address once
(:func:`reserve`): a socket with SO_REUSEADDR and SO_REUSEPORT, bound (so that
port 0 becomes one real port) but never listening, so the kernel never queues
a connection for it, and kept open for the supervisor's life so that the port
stays ours while workers come and go. It imports the app and loads TLS only
to report a bad input once; it serves nothing.

Each worker is a fresh ``python -m trio_h2`` with the runner's own arguments
(the runner builds the command). It imports the app, binds its own
SO_REUSEPORT socket to every reserved address and listens
(:func:`open_reuseport_listeners`), runs the app's lifespan, and serves
(:func:`serve_worker`). Linux spreads new connections over the listening
sockets by a hash of each connection's addresses and ports; a connection stays
with the worker that accepted it. The supervisor's bound socket does not
listen, so it gets none.

A worker talks to the supervisor over a socketpair passed as a file
descriptor, its *channel*. The worker writes lines: ``ready`` once it
accepts connections, ``beat`` every quarter of the worker timeout,
``retire`` once it has received its ``max_requests`` requests (it then
shuts down gracefully, and its exit is a replacement, not a failure), or
``error <message>`` if it cannot start (:func:`report_failure`; the
supervisor reports the first message, once). The supervisor writes nothing:
end of file on the channel means the supervisor is gone, and the worker
shuts down gracefully, so that killing the supervisor leaves no orphan
serving.

Heartbeats. The beats come from a task in the worker's trio loop
(:func:`_report`), so they stop when the loop stops: a handler that blocks
in ``time.sleep`` or spins in a ``while`` loop, a deadlock. A loop that is
busy but healthy still beats, since trio runs every runnable task once per
scheduling batch. A worker that sends nothing for ``worker_timeout``
seconds, counted from its start or its last line, is hung: the supervisor
sends it :data:`STACK_DUMP_SIGNAL` (the worker registered :mod:`faulthandler`
for it, :func:`enable_stack_dump`, so its threads' Python stacks go to the
shared stderr), gives it :data:`STACK_DUMP_GRACE` seconds to write them,
then SIGKILLs it; it is then restarted like any worker that exits, its one
log line saying how long it was silent. This is gunicorn's worker
``--timeout``, with a socket instead of a temporary file whose time stamp
the worker touches.

Who owns what: the supervisor owns the worker processes (:class:`Supervisor`
starts, signals and reaps each) and the reserved sockets (its caller closes
them); each worker owns its listeners and connections.

Signals. The supervisor's first SIGINT or SIGTERM sends SIGTERM to every
worker; each shuts down gracefully (GOAWAY, in-flight streams get up to
``shutdown_timeout``) and the supervisor exits 0 once all have. A second
signal SIGKILLs them and the status is 1. A worker stops at its first signal
and ignores the rest: Control-C in a terminal reaches every process of the
group, and a service manager may signal all of them as well as the
supervisor, so a worker often sees a signal twice; only the supervisor
decides that waiting is over.

Restarts. A worker that exits when no stop was asked for is replaced, and the
supervisor logs one line with its exit status. A worker that said ``retire``
and exits with status 0 is replaced with an INFO line, and does not count
against the limit below (gunicorn's and Hypercorn's ``max_requests``). A worker slot that has been
restarted :data:`RESTART_LIMIT` times within :data:`RESTART_WINDOW` seconds
is not restarted again: the supervisor logs why, stops the other workers and
exits with status 1. During startup nothing is restarted: if a worker fails
before all have reported ready, the supervisor stops the others and raises
:exc:`WorkerFailure` with the reason.

Reloads (``--reload``). A watcher (``_io.reload``), run by the supervisor,
calls :meth:`Supervisor.reload` when source files change: every worker is
stopped as at shutdown (SIGTERM: GOAWAY, in-flight streams finish) and its
slot starts a new one as soon as it has exited, importing the code afresh;
this is no failure and counts against no limit. A worker that then fails
(the new code does not import, say) is not restarted in a loop: one ERROR
line says why, and its slot waits for the next change to try again.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import logging
import signal
import socket
import ssl
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import final

import trio

from .._apps.asgi import ASGIApp, Receive, Scope, Send
from .._config import Config
from .server import serve_listeners

log = logging.getLogger("trio_h2")

__all__ = ["REUSEPORT_SPREADS_CONNECTIONS", "WORKER_TIMEOUT", "Supervisor", "WorkerFailure",
           "enable_stack_dump", "may_restart", "open_reuseport_listeners", "report_failure",
           "reserve", "serve_worker"]

# Linux (3.9 and later) spreads connections over the sockets sharing a port;
# the BSDs and macOS accept SO_REUSEPORT but give the connections to one socket.
REUSEPORT_SPREADS_CONNECTIONS = sys.platform.startswith("linux") and hasattr(
    socket, "SO_REUSEPORT")

# As trio.open_tcp_listeners: as large as possible; the kernel silently caps it
# at net.core.somaxconn.
BACKLOG = 0xFFFF

# A worker slot restarted this many times within this many seconds is given
# up on: systemd's defaults for restarting a service (StartLimitBurst=5 within
# StartLimitIntervalSec=10s). A python worker takes a few tenths of a second
# to start, so a worker that dies at startup uses this up in a few seconds.
RESTART_LIMIT = 5
RESTART_WINDOW = 10.0

# The channel carries lines from each worker: "ready", "beat", or "error
# <message>"; a message is one line of text, so anything longer than this is cut.
MESSAGE_LIMIT = 64 * 1024
READY = "ready"
BEAT = "beat"
RETIRE = "retire"
ERROR = "error "
# Seconds a worker may send nothing before it is taken for hung: gunicorn's
# worker --timeout default. A trio loop that answers requests returns to its
# scheduler every few milliseconds; 30 s of silence is no slow request but a
# loop that has stopped. Startup (importing the app, the lifespan startup)
# counts too, as in gunicorn: an app that needs longer to start needs a
# larger --worker-timeout.
WORKER_TIMEOUT = 30.0
# The worker beats this many times per worker_timeout, so that beats late by
# up to three quarters of the timeout (a loaded machine, a long garbage
# collection) are not taken for a hang. A beat is five bytes on a socketpair:
# at the default, one every 7.5 s.
BEATS_PER_TIMEOUT = 4
# What the supervisor sends a silent worker to make faulthandler dump its
# stacks, and how long it then waits before SIGKILL. faulthandler writes from
# its C signal handler, even while the thread holds the GIL in a busy loop, as
# soon as the worker is scheduled; a second leaves room for a loaded machine.
STACK_DUMP_SIGNAL = signal.SIGUSR1
STACK_DUMP_GRACE = 1.0
# Once a worker has exited, how long the supervisor waits for the rest of the
# line it wrote: it is in the channel already, so this only bounds the wait
# when a process the worker forked still holds the channel open.
REPORT_GRACE = 1.0


class WorkerFailure(Exception):
    """The workers could not start; the message says why (one line)."""


# -- sockets --------------------------------------------------------------------


def _reuseport_socket(family: int, sockaddr: tuple[object, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:  # as trio.open_tcp_listeners
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


async def _resolve(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                          flags=socket.AI_PASSIVE)
    return [(family, tuple(sockaddr)) for family, _, _, _, sockaddr in infos]


async def reserve(host: str, port: int) -> list[socket.socket]:
    """Bound, not listening, SO_REUSEPORT sockets: one for each address
    ``host`` resolves to, as :func:`trio.open_tcp_listeners` would listen on.
    With port 0 each gets a port of its own. The caller owns and closes them.
    Raises :exc:`OSError` if ``host`` does not resolve or an address cannot
    be bound (the sockets already bound are closed)."""
    sockets: list[socket.socket] = []
    try:
        for family, sockaddr in await _resolve(host, port):
            sockets.append(_reuseport_socket(family, sockaddr))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def open_reuseport_listeners(host: str, port: int, *,
                                   backlog: int = BACKLOG) -> list[trio.SocketListener]:
    """Listeners on ``host:port`` (an address :func:`reserve` bound), each on a
    SO_REUSEPORT socket of its own with a queue of ``backlog`` connections.
    Raises :exc:`OSError` as :func:`reserve` does (the listeners already open
    are closed)."""
    sockets = await reserve(host, port)
    try:
        for sock in sockets:
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return [trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in sockets]


# -- a worker ---------------------------------------------------------------------


def enable_stack_dump() -> None:
    """Make :data:`STACK_DUMP_SIGNAL` write every thread's Python stack to
    stderr (:mod:`faulthandler`), for the supervisor to show why a worker
    went silent. A worker calls it first thing, so that a hang while
    importing the app is shown too."""
    faulthandler.register(STACK_DUMP_SIGNAL, file=sys.stderr, all_threads=True)


async def serve_worker(app: ASGIApp, listeners: Sequence[trio.SocketListener],
                       channel: socket.socket, signals: AsyncIterator[int], *,
                       ssl_context: ssl.SSLContext | None, config: Config,
                       worker_timeout: float = WORKER_TIMEOUT,
                       max_requests: int | None = None) -> None:
    """Serve ``app`` on ``listeners`` (taking ownership, as :func:`serve_listeners`)
    as one of the supervisor's workers: write ``ready`` on ``channel`` once
    accepting connections, and ``beat`` :data:`BEATS_PER_TIMEOUT` times per
    ``worker_timeout`` from start to end. The first of ``signals``, or end of
    file on ``channel`` (the supervisor is gone), starts the graceful
    shutdown; later signals are ignored; so does the ``max_requests``-th
    request (``http`` or ``websocket`` scope), after ``retire`` is written.
    ``channel`` stays open and the caller's. Raises :exc:`LifespanFailure` if
    the app's lifespan startup fails."""
    retiring = trio.Event()
    if max_requests is not None:
        app = _RequestCounter(app, max_requests, retiring.set)
    with trio.socket.from_stdlib_socket(channel.dup()) as sock:
        supervisor = trio.SocketStream(sock)
        ready = trio.Event()
        async with trio.open_nursery() as nursery:
            stop = trio.CancelScope()
            nursery.start_soon(_stop_on_first_signal, signals, stop)
            nursery.start_soon(_stop_when_orphaned, supervisor, stop)
            nursery.start_soon(_stop_when_retiring, retiring, stop, max_requests)
            nursery.start_soon(_report, supervisor, ready, worker_timeout / BEATS_PER_TIMEOUT,
                               retiring)
            with stop:
                async with trio.open_nursery() as server:
                    await server.start(functools.partial(
                        serve_listeners, app, listeners, ssl_context=ssl_context,
                        config=config))
                    ready.set()
            nursery.cancel_scope.cancel()  # stopped: nothing more to wait for


async def _report(supervisor: trio.SocketStream, ready: trio.Event, interval: float,
                  retiring: trio.Event) -> None:
    """The one writer on the channel: ``ready`` as soon as ``ready`` is set,
    ``retire`` as soon as ``retiring`` is, and ``beat`` every ``interval``
    seconds until cancelled."""
    # If the supervisor is gone, _stop_when_orphaned stops us.
    with contextlib.suppress(trio.BrokenResourceError):
        while not ready.is_set():
            with trio.move_on_after(interval):
                await ready.wait()
            await supervisor.send_all(f"{READY if ready.is_set() else BEAT}\n".encode())
        told = False
        while True:
            with trio.move_on_after(interval):
                if told:
                    await trio.sleep_forever()
                else:
                    await retiring.wait()
            line = RETIRE if retiring.is_set() and not told else BEAT
            told = retiring.is_set()
            await supervisor.send_all(f"{line}\n".encode())


@final
class _RequestCounter:
    """The app, counting the requests (``http`` and ``websocket`` scopes) it
    is given; calls ``reached()`` at the ``limit``-th."""

    def __init__(self, app: ASGIApp, limit: int, reached: Callable[[], object]) -> None:
        self._app = app
        self._left = limit
        self._reached = reached

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self._left -= 1
            if self._left == 0:
                self._reached()
        await self._app(scope, receive, send)


async def _stop_when_retiring(retiring: trio.Event, stop: trio.CancelScope,
                              max_requests: int | None) -> None:
    await retiring.wait()
    if not stop.cancel_called:
        log.info("received %s requests (--max-requests): shutting down gracefully, to be "
                 "replaced", max_requests)
        stop.cancel()


async def _stop_on_first_signal(signals: AsyncIterator[int], stop: trio.CancelScope) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if stop.cancel_called:
            log.debug("%s received again: ignored (the supervisor decides when to stop "
                      "waiting)", name)
        else:
            log.debug("%s received: shutting down", name)
            stop.cancel()


async def _stop_when_orphaned(supervisor: trio.SocketStream, stop: trio.CancelScope) -> None:
    try:
        while await supervisor.receive_some(MESSAGE_LIMIT):
            pass  # the supervisor writes nothing: this waits for end of file
    except trio.BrokenResourceError:
        pass
    if not stop.cancel_called:
        log.warning("the supervisor is gone: shutting down")
        stop.cancel()


def report_failure(channel: socket.socket, message: str) -> None:
    """Tell the supervisor that this worker could not start, and why (it
    reports the first such message, once for all workers)."""
    channel.setblocking(True)  # serve_worker's trio socket shared the flag
    try:
        channel.sendall(f"{ERROR}{message}\n".encode())
    except OSError as exc:  # the supervisor is gone: nobody to tell
        log.debug("could not report to the supervisor: %r", exc)


# -- the supervisor ----------------------------------------------------------------


@final
class _Worker:
    """One worker process, in its slot (1 to N; a restart takes the same slot)."""

    def __init__(self, slot: int, process: trio.Process) -> None:
        self.slot = slot
        self.process = process
        self.error: str | None = None  # what it wrote after "error ", if anything
        self.silent: float | None = None  # seconds it said nothing before we killed it
        self.retiring = False  # it said "retire": its exit is a replacement
        self.reloading = False  # stopped for a reload: its exit is a replacement

    def __str__(self) -> str:
        return f"worker {self.slot} (pid {self.process.pid})"


@final
class Supervisor:
    """Keeps ``count`` workers running until a signal says stop (see the module
    docstring for the policy).

    ``command(fd)`` is the command line of a worker whose channel is file
    descriptor ``fd``; ``announce()`` is called once, when every first worker
    has reported ready. A worker that writes nothing on its channel for
    ``worker_timeout`` seconds is killed (and restarted) as hung. Every
    worker inherits the file descriptors ``pass_fds`` (the caller's).
    ``watch(reload)``, if given, runs beside the workers and calls
    :meth:`reload` (``--reload``).
    """

    def __init__(self, command: Callable[[int], list[str]], count: int, *,
                 announce: Callable[[], object], shutdown_timeout: float,
                 worker_timeout: float = WORKER_TIMEOUT, pass_fds: Sequence[int] = (),
                 watch: Callable[[Callable[[str], None]], Awaitable[object]] | None = None,
                 ) -> None:
        self._command = command
        self._pass_fds = tuple(pass_fds)  # listening sockets every worker shares
        self._count = count
        self._announce = announce
        self._shutdown_timeout = shutdown_timeout
        self._worker_timeout = worker_timeout
        self._workers: dict[int, _Worker] = {}  # by slot, while its process runs
        self._ready: set[int] = set()  # slots whose first worker reported ready
        self._serving = False  # all were ready and announce() was called
        self._signals = 0
        self._stop_signal: int | None = None  # once stopping, what workers get
        self._failure: str | None = None  # why a first worker did not start
        self._clean = True  # False once a worker was killed or given up on
        self._watch_sources = watch
        self._changed = trio.Event()  # set at each reload (and at the stop), then replaced

    async def run(self, signals: AsyncIterator[int]) -> bool:
        """Start the workers and keep them running until the first of ``signals``,
        then stop them (SIGTERM; SIGKILL at the second signal) and wait for
        all. Returns whether that went as asked: False if a second signal
        killed them or a worker kept exiting. Raises :exc:`WorkerFailure` if a
        worker fails before all were ready (the others are stopped first)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._stop_on_signals, signals)
            if self._watch_sources is not None:
                nursery.start_soon(self._watch_sources, self.reload)
            async with trio.open_nursery() as slots:
                for slot in range(1, self._count + 1):
                    slots.start_soon(self._keep_running, slot)
            nursery.cancel_scope.cancel()  # every worker is gone
        if self._failure is not None:
            raise WorkerFailure(self._failure)
        return self._clean

    async def _keep_running(self, slot: int) -> None:
        restarts: deque[float] = deque()
        while True:
            worker = await self._run_worker(slot)
            status = worker.process.returncode
            assert status is not None
            what = f"{worker} {_exit_text(status)}"
            if worker.silent is not None:
                what = (f"{worker} sent no heartbeat for {worker.silent:.1f}s (its event loop "
                        f"is stuck; its stack is dumped above) and was killed")
            if worker.error is not None:
                what += f": {worker.error}"
            if self._stop_signal is not None:
                # Before serving, the reason to stop is what gets reported.
                if self._serving and status not in (0, -self._stop_signal):
                    log.warning("%s while stopping", what)
                return
            if not self._serving:
                self._failure = worker.error or f"{what} before serving"
                self._stop(signal.SIGTERM)
                return
            if worker.retiring and status == 0:
                log.info("%s retired after its --max-requests; starting a new one", worker)
                continue
            if worker.reloading:
                continue
            if self._watch_sources is not None:
                log.error("%s; waiting for a source change to start it again", what)
                changed = self._changed
                await changed.wait()
                if self._stop_signal is not None:
                    return
                continue
            if not may_restart(restarts, trio.current_time()):
                log.error("%s; restarted %d times within %gs already: giving up, "
                          "stopping the other workers", what, RESTART_LIMIT, RESTART_WINDOW)
                self._clean = False
                self._stop(signal.SIGTERM)
                return
            log.warning("%s; starting a new one", what)

    async def _run_worker(self, slot: int) -> _Worker:
        """Start a worker in ``slot`` and wait until it has exited."""
        ours, theirs = socket.socketpair()
        with trio.socket.from_stdlib_socket(ours) as channel:
            try:
                process = await trio.lowlevel.open_process(
                    self._command(theirs.fileno()),
                    pass_fds=(theirs.fileno(), *self._pass_fds))
            finally:
                theirs.close()
            worker = self._workers[slot] = _Worker(slot, process)
            if self._stop_signal is not None:  # the stop began while it started
                process.send_signal(self._stop_signal)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, worker, trio.SocketStream(channel))
                await process.wait()
                # What it wrote is in the channel already: the reader has it at
                # once, unless a process the worker forked holds the channel open.
                nursery.cancel_scope.deadline = trio.current_time() + REPORT_GRACE
            del self._workers[slot]
        return worker

    async def _watch(self, worker: _Worker, channel: trio.SocketStream) -> None:
        """Read ``worker``'s lines until end of file; kill it if it is silent
        for the worker timeout while it runs."""
        lines = _Lines(channel)
        while True:
            heard = trio.current_time()
            with trio.move_on_after(self._worker_timeout):
                line = await lines.next()
                if line is None:
                    return  # the worker is gone
                if line == READY:
                    self._on_ready(worker)
                elif line == RETIRE:
                    worker.retiring = True
                elif line.startswith(ERROR) and worker.error is None:
                    worker.error = line.removeprefix(ERROR)
                continue
            if worker.process.returncode is not None:
                return  # it exited; a process it forked holds the channel open
            worker.silent = trio.current_time() - heard
            worker.process.send_signal(STACK_DUMP_SIGNAL)
            await trio.sleep(STACK_DUMP_GRACE)
            worker.process.kill()
            return

    def _on_ready(self, worker: _Worker) -> None:
        if self._serving:
            log.info("%s serving", worker)
            return
        self._ready.add(worker.slot)
        if len(self._ready) == self._count and self._stop_signal is None:
            self._serving = True
            self._announce()

    async def _stop_on_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            self._signals += 1
            if self._signals == 1:
                log.info("%s received: stopping %d workers; in-flight streams get up to %gs "
                         "(send it again to exit now)", name, len(self._workers),
                         self._shutdown_timeout)
                self._stop(signal.SIGTERM)
            else:
                log.warning("%s received again: killing the workers without waiting for "
                            "in-flight streams", name)
                self._clean = False
                self._stop(signal.SIGKILL)

    def _stop(self, signum: int) -> None:
        self._stop_signal = signum
        for worker in self._workers.values():
            worker.process.send_signal(signum)
        self._changed.set()  # the slots waiting for a change stop waiting

    def reload(self, what: str) -> None:
        """``what`` changed: replace every worker (gracefully), and start the
        slots whose worker failed since the last change."""
        if self._stop_signal is not None or not self._serving:
            return  # stopping, or the first workers are still starting
        log.info("%s changed: restarting %s", what,
                 "the worker" if self._count == 1 else f"the {self._count} workers")
        for worker in self._workers.values():
            if not worker.reloading:
                worker.reloading = True
                worker.process.send_signal(signal.SIGTERM)
        self._changed.set()
        self._changed = trio.Event()


def may_restart(restarts: deque[float], now: float) -> bool:
    """Whether a slot whose restarts (times, oldest first) are ``restarts``
    may restart once more at ``now``; if so, records it."""
    while restarts and now - restarts[0] >= RESTART_WINDOW:
        restarts.popleft()
    if len(restarts) >= RESTART_LIMIT:
        return False
    restarts.append(now)
    return True


@final
class _Lines:
    """The lines a worker writes on its channel (each cut at
    :data:`MESSAGE_LIMIT`, the last one possibly without its newline)."""

    def __init__(self, channel: trio.SocketStream) -> None:
        self._channel = channel
        self._data = b""
        self._eof = False

    async def next(self) -> str | None:
        """The next line, without its newline; None at end of file."""
        while b"\n" not in self._data and len(self._data) < MESSAGE_LIMIT and not self._eof:
            try:
                chunk = await self._channel.receive_some(MESSAGE_LIMIT)
            except trio.BrokenResourceError:
                chunk = b""  # the worker is gone; its exit status says the rest
            self._eof = not chunk
            self._data += chunk
        if not self._data:
            return None
        line, newline, rest = self._data.partition(b"\n")
        self._data = rest if newline else b""  # else: end of file, or the line is too long
        return line[:MESSAGE_LIMIT].decode(errors="replace")


def _exit_text(status: int) -> str:
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"
