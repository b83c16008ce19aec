"""Listening, TLS, per-connection containment and graceful shutdown."""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import final

import trio
from h2.errors import ErrorCodes

from .._apps.asgi import ASGIApp, asgi_handler
from .._apps.lifespan import Lifespan, LifespanFailure
from .._apps.scope import tls_extension
from .._config import Config
from .._core.exchange import Address
from .._core.memory import ServerMemory
from .connection import Connection
from .proxy import ReplayStream, read_proxy_header
from .select import H2, alpn_protocol, new_core, sniff_protocol
from .tls import cipher_suite_ids

log = logging.getLogger("trio_h2")

# After the last frame of a closing connection, how long we keep reading
# (and discarding) so that the client's in-flight frames do not make our
# kernel answer with a TCP RST that could destroy the GOAWAY before the
# client reads it. nginx's lingering_time serves the same purpose (30 s);
# a GOAWAY needs one round trip, so 1 s is plenty on any sane path.
LINGER_SECONDS = 1.0

# At most one WARNING line per this many seconds for connections turned away
# at max_connections (the rest at DEBUG): a client that keeps reconnecting
# must not fill the log. nginx logs "worker_connections are not enough" once
# per event; a minute of such lines is noise, one every 10 s is a signal.
TURNED_AWAY_LOG_PERIOD = 10.0

__all__ = ["serve", "serve_listeners"]


async def serve(
    app: ASGIApp,
    *,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    ssl_context: ssl.SSLContext | None = None,
    config: Config | None = None,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ASGI 3 application ``app`` over HTTP/2 on ``host:port``.

    Plain TCP speaks h2c with prior knowledge; with ``ssl_context`` (see
    :func:`server_ssl_context`) connections are TLS and must negotiate ``h2``
    by ALPN. ``port=0`` picks a free port. With :meth:`trio.Nursery.start`,
    ``task_status`` reports the bound ``(host, port)`` addresses once the
    app's lifespan startup is done and the server accepts connections.

    Runs until cancelled. Cancellation is graceful: the listeners close,
    every connection gets GOAWAY and its in-flight streams up to
    ``config.shutdown_timeout`` seconds to finish, then the rest are cancelled,
    lifespan shutdown runs, and the cancellation propagates as usual.

    A failure inside a connection (the client's, the app's or trio_h2's own)
    ends at most that connection and is logged; it never ends the server.
    Raises :exc:`OSError` if the address cannot be bound, and
    :exc:`LifespanFailure` if the app's lifespan startup fails.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    await serve_listeners(app, listeners, ssl_context=ssl_context, config=config,
                          task_status=task_status)


async def serve_listeners(
    app: ASGIApp,
    listeners: Sequence[trio.SocketListener],
    *,
    ssl_context: ssl.SSLContext | None = None,
    config: Config | None = None,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Like :func:`serve`, on listeners you opened (for example several
    addresses, or a socket inherited from a supervisor). Takes ownership of
    ``listeners`` and closes them when it stops accepting."""
    config = config or Config()
    lifespan = Lifespan(app, config)
    server = _Server(app, config, ssl_context, lifespan)
    failure: LifespanFailure | None = None
    async with trio.open_nursery() as nursery:
        try:
            await lifespan.startup(nursery)
        except LifespanFailure as exc:
            failure = exc  # raised below, once the lifespan task is gone
        else:
            await _accept_until_cancelled(server, listeners, config, task_status)
        finally:
            with trio.move_on_after(config.shutdown_timeout, shield=True):
                await lifespan.shutdown()
            lifespan.cancel()
            for listener in listeners:  # closed already unless startup failed
                await trio.aclose_forcefully(listener)
    if failure is not None:
        raise failure


async def _accept_until_cancelled(
    server: _Server, listeners: Sequence[trio.SocketListener], config: Config,
    task_status: trio.TaskStatus[list[Address]],
) -> None:
    addresses = [_address(listener.socket.getsockname()) for listener in listeners]
    async with trio.open_nursery() as connections:
        def take(stream: trio.SocketStream) -> None:
            connections.start_soon(server.handle, stream)

        try:
            await connections.start(functools.partial(
                trio.serve_listeners, server.handle,
                [_QueueTakingListener(listener, take) for listener in listeners],
                handler_nursery=connections))
            task_status.started(addresses)
            await trio.sleep_forever()
        finally:
            # Cancelled: the accept loop is gone and the listeners closed;
            # now the graceful part, under its own deadline.
            with trio.move_on_after(config.shutdown_timeout, shield=True):
                await server.drain()
            server.cancel_all()


@final
class _QueueTakingListener(trio.abc.Listener[trio.SocketStream]):
    """``listener``, whose close first takes the connections in its listen
    queue and gives them to ``take``. The kernel completes a client's
    handshake before we accept it, and the client may send its request at
    once: closing a listening socket resets every connection still queued,
    requests and all, which a proxy in front sees fail (nginx: "connection
    reset by peer while reading response header"). Taken, they are served
    as the drain serves every connection: a request already sent is
    answered with ``Connection: close`` (HTTP/2: GOAWAY, so the client knows
    what to send again elsewhere). Only the connections queued when the
    close begins: a handshake after it meets the closed socket, the race
    every server has."""

    def __init__(self, listener: trio.SocketListener,
                 take: Callable[[trio.SocketStream], None]) -> None:
        self._listener = listener
        self._take = take

    async def accept(self) -> trio.SocketStream:
        return await self._listener.accept()

    async def aclose(self) -> None:
        queued = _queued(self._listener.socket.fileno())
        try:
            # Closed at once (trio closes, then yields): nothing runs between
            # the last accept and the close, in which a new handshake could
            # complete only to be reset.
            await self._listener.aclose()
        finally:
            for sock in queued:
                self._take(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))


def _queued(fd: int) -> list[socket.socket]:
    """The connections waiting in listening socket ``fd``'s queue, accepted
    without waiting (on a duplicate of ``fd``, as trio owns ``fd``). Bounded
    by the queue's length (--backlog)."""
    taken: list[socket.socket] = []
    with socket.socket(fileno=os.dup(fd)) as listening:
        listening.setblocking(False)
        while True:
            try:
                sock, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return taken
            except OSError as exc:  # out of descriptors, say: the rest are reset
                log.warning("could not take the connections queued on a listener "
                            "being closed: %s", exc)
                return taken
            taken.append(sock)


@final
class _Server:
    """The connections of one :func:`serve_listeners` call."""

    def __init__(self, app: ASGIApp, config: Config, ssl_context: ssl.SSLContext | None,
                 lifespan: Lifespan) -> None:
        self._app = app
        self._config = config
        self._ssl_context = ssl_context
        self._cipher_ids = {} if ssl_context is None else cipher_suite_ids(ssl_context)
        self._lifespan = lifespan
        # One account of request header and body memory for all connections:
        # the bounds hold for the server, not per connection
        # (max_header_memory, max_body_memory).
        self._memory = ServerMemory(config)
        # Each connection runs in its own shielded scope so that cancelling
        # serve() does not cut it off mid-response; drain() and cancel_all()
        # decide its end instead.
        self._connections: dict[trio.CancelScope, Connection | None] = {}
        """None: not yet running (PROXY header, TLS handshake, protocol
        sniff), or lingering."""
        self._lingering: set[trio.CancelScope] = set()
        self._emptied = trio.lowlevel.ParkingLot()
        self._draining = False
        self._deadline = math.inf
        """Once the drain begins, its start plus ``shutdown_timeout``: the end
        of every connection, of those that start later too (taken from a
        listen queue, or accepted as the listeners closed). Those may start
        after :meth:`drain` found nothing to wait for and :meth:`cancel_all`
        has run: without it, one endless response on a connection queued at
        the shutdown of an idle server kept the process from stopping."""
        self._turned_away = 0
        """Connections closed at max_connections since the last WARNING."""
        self._warned_at = -TURNED_AWAY_LOG_PERIOD

    async def handle(self, tcp: trio.SocketStream) -> None:
        """Serve one accepted connection, from the moment trio accepted it to
        its close. The one place where a connection's failures end: an
        exception from any step (address lookups, the TLS handshake and ALPN
        check, the protocol, the application, closing) ends this connection
        with one log line, never the server. Cancelled and KeyboardInterrupt
        propagate as trio expects; the server's own cancellation reaches a
        connection through :meth:`drain` (and its deadline) and
        :meth:`cancel_all` instead, as the scope is shielded."""
        client = _lookup(tcp.socket.getpeername)
        peer = _describe(client)
        with trio.CancelScope(shield=True, deadline=self._deadline) as scope:
            # Accepted while draining (taken from a listen queue, or accepted
            # as the listeners closed): served drained, see _QueueTakingListener.
            if len(self._connections) >= self._config.max_connections:
                self._turn_away(peer)
                await trio.aclose_forcefully(tcp)
                return
            self._connections[scope] = None
            try:
                await self._serve(scope, tcp, client, peer)
            except Exception as exc:
                log.error("%s: internal error, closing connection: %r", peer, exc, exc_info=exc)
            finally:
                del self._connections[scope]
                self._lingering.discard(scope)
                if not self._connections:
                    self._emptied.unpark_all()
                # Closes the socket under a TLS stream too: with
                # https_compatible there is no close_notify to send. Closing
                # a socket does not raise.
                await trio.aclose_forcefully(tcp)

    async def _serve(self, scope: trio.CancelScope, tcp: trio.SocketStream,
                     client: Address | None, peer: str) -> None:
        stream: trio.abc.Stream = tcp
        server = _lookup(tcp.socket.getsockname)
        if self._config.proxy_protocol:
            header = await read_proxy_header(tcp, self._config, peer)
            if header is None:
                return
            if header.source is not None:  # not LOCAL: a health check keeps the socket's
                client, server = header.source, header.destination
                peer = _describe(client)
            # The bytes after the header start the client's own stream (its
            # TLS ClientHello, or its HTTP bytes): whoever reads next gets them.
            stream = ReplayStream(tcp, header.rest)
            del header
        tls_info = None
        if self._ssl_context is not None:
            tls = await self._handshake(stream, peer)
            if tls is None:
                return
            stream = tls
            tls_info = self._tls_info(tls)
        handler = asgi_handler(
            self._app, self._config,
            scheme="https" if self._ssl_context is not None else "http",
            server=server, client=client,
            state=self._lifespan.state if self._lifespan.supported else None,
            tls=tls_info,
        )
        selected = await self._protocol(stream, peer)
        if selected is None:
            return
        protocol, received = selected
        core = new_core(protocol, self._config, peer, memory=self._memory,
                        tls=self._ssl_context is not None)
        conn = Connection(stream, core, handler, peer=peer, received=received)
        # The first read (up to 64 KiB) is the connection's to drop once its
        # core has it: not kept here for the connection's whole life.
        del selected, received
        self._connections[scope] = conn
        if self._draining:
            conn.drain()
        try:
            await conn.run()
        except Exception:
            # A bug in trio_h2, h2 or priority, not the client's doing: this
            # connection ends with GOAWAY INTERNAL_ERROR (handle() logs it).
            await _goaway(conn, stream)
            raise
        if conn.state.linger:
            # Lingering keeps the socket, not the connection's state: h2's
            # buffers may hold a whole header block (issue 11: a second of
            # lingering after each closed connection held 35 MiB under a
            # flood of connections closed for their heads).
            self._connections[scope] = None
            self._lingering.add(scope)  # (drain() cancels the linger)
            del conn, core
            await _linger(tcp)

    def _turn_away(self, peer: str) -> None:
        """One line for a connection closed at ``max_connections``: WARNING at
        most every :data:`TURNED_AWAY_LOG_PERIOD`, saying how many since."""
        self._turned_away += 1
        now = trio.current_time()
        if now - self._warned_at < TURNED_AWAY_LOG_PERIOD:
            log.debug("%s: closed at once: %d connections open (max_connections)", peer,
                      len(self._connections))
            return
        log.warning("%s: closed at once: %d connections open (max_connections is %d); "
                    "%d turned away since the last such line", peer, len(self._connections),
                    self._config.max_connections, self._turned_away)
        self._warned_at = now
        self._turned_away = 0

    async def _handshake(self, tcp: trio.abc.Stream, peer: str) -> trio.SSLStream[
            trio.abc.Stream] | None:
        """The TLS stream once the handshake is done and ``h2`` negotiated;
        ``None`` (logged) if the client fails either or is too slow."""
        assert self._ssl_context is not None
        tls = trio.SSLStream(tcp, self._ssl_context, server_side=True, https_compatible=True)
        with trio.move_on_after(self._config.tls_handshake_timeout) as timeout:
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as exc:
                # What trio raises for every TLS alert, bad record and
                # transport error (a reset included) during the handshake.
                log.info("%s: TLS handshake failed: %s", peer, exc.__cause__ or exc)
                return None
        if timeout.cancelled_caught:
            log.info("%s: TLS handshake not finished after %ss; closing", peer,
                     self._config.tls_handshake_timeout)
            return None
        selected = tls.selected_alpn_protocol()
        if alpn_protocol(selected, self._config) is None:
            log.info("%s: TLS client did not negotiate h2 (ALPN %r); closing", peer, selected)
            return None
        return tls

    def _tls_info(self, tls: trio.SSLStream[trio.abc.Stream]) -> dict[str, object]:
        """The ``tls`` scope extension of a connection whose handshake is done."""
        der: bytes | None = tls.getpeercert(binary_form=True)
        cert = tls.getpeercert()
        cipher = tls.cipher()
        return tls_extension(
            version=tls.version(),
            cipher_suite=None if cipher is None else self._cipher_ids.get(cipher[0]),
            client_cert=None if not der else ssl.DER_cert_to_PEM_cert(der),
            client_subject=cert.get("subject") if cert else None,
        )

    async def _protocol(self, stream: trio.abc.Stream, peer: str) -> tuple[str, bytes] | None:
        """The protocol ``stream`` speaks (``_io.select``), and bytes read to tell."""
        if isinstance(stream, trio.SSLStream):
            protocol = alpn_protocol(stream.selected_alpn_protocol(), self._config)
            return None if protocol is None else (protocol, b"")
        if not self._config.http1:
            return H2, b""
        return await sniff_protocol(stream, self._config, peer)

    async def drain(self) -> None:
        """GOAWAY to every connection; wait until all have finished."""
        self._draining = True
        self._deadline = trio.current_time() + self._config.shutdown_timeout
        for scope, conn in list(self._connections.items()):
            if scope in self._lingering:
                scope.cancel()  # closed already: nothing in flight
            elif conn is not None:
                conn.drain()
            # Otherwise its first bytes are arriving (the PROXY header, the
            # TLS handshake, the request that tells its protocol): it is
            # drained once it runs (_serve), as a request a proxy has sent
            # must be answered, not reset. Its timeouts bound the wait.
        while self._connections:
            await self._emptied.park()

    def cancel_all(self) -> None:
        for scope in self._connections:
            scope.cancel()


async def _goaway(conn: Connection, stream: trio.abc.Stream) -> None:
    """GOAWAY INTERNAL_ERROR after a bug, within ``send_timeout`` and at most
    :data:`LINGER_SECONDS`: the one write outside the sender, as bounded."""
    try:
        conn.state.abort(ErrorCodes.INTERNAL_ERROR, "internal error")
        data = conn.state.data_to_send()
        with trio.move_on_after(min(conn.state.guard.config.send_timeout, LINGER_SECONDS)):
            await stream.send_all(data)
    except Exception as exc:  # the connection is already lost or broken
        log.debug("%s: could not send GOAWAY: %r", conn.peer, exc)


async def _linger(tcp: trio.SocketStream) -> None:
    """Half-close and read until the client closes too (bounded)."""
    with trio.move_on_after(LINGER_SECONDS):
        try:
            await tcp.send_eof()
            while await tcp.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _address(sockaddr: object) -> Address:
    """A socket's name as ASGI has it: ``(host, port)``, or ``(path, None)``
    for a Unix socket."""
    if isinstance(sockaddr, str | bytes):
        return (os.fsdecode(sockaddr), None)
    assert isinstance(sockaddr, tuple)
    return (str(sockaddr[0]), int(sockaddr[1]))


def _lookup(name: Callable[[], object]) -> Address | None:
    """``getsockname`` or ``getpeername``'s ``(host, port)``, or ``None``. A
    client that resets the connection as soon as it is accepted has no peer
    name any more (ENOTCONN): port scanners and health checkers do that all
    day, and such a connection must end quietly, not with an exception."""
    try:
        sockaddr = name()
    except OSError:
        return None
    # A Unix socket's peer has no name (""): no client address.
    return _address(sockaddr) if isinstance(sockaddr, tuple) or sockaddr else None


def _describe(address: Address | None) -> str:
    """The peer as log lines name it: ``host:port``, ``[v6host]:port`` or ``?``."""
    if address is None:
        return "?"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
