"""WSGI (PEP 3333) applications as ASGI 3 apps: each request in a worker thread.

``WSGIApp`` is composed over the ASGI adapter, not beside it: for each
``http`` request it runs the WSGI callable in a thread of its own
``trio.CapacityLimiter`` (``trio.to_thread.run_sync``), and the thread comes
back into trio for every read and write through ASGI ``receive`` and
``send`` (``trio.from_thread.run``). So it serves HTTP/2 and HTTP/1.1 alike,
and inherits the adapter's guarantees:

* Every write blocks the app's thread until the connection's sender has taken
  the bytes (``send`` for ``http.response.body`` returns then). One
  request's data is never reordered, a client that does not read holds the
  thread at one window plus one piece, and the event loop never waits for a
  thread: other streams and connections go on meanwhile. h2's own WSGI
  example server rests on the same invariant.
* ``wsgi.input`` asks ``receive`` for body only as the app reads it, and
  flow-control credit goes back to the client as it does.

A client that goes away makes the app's next write (or read) raise
:exc:`ClientDisconnected`; the response iterable's ``close()`` is called in
every case. An exception before the response starts is answered ``500``;
after it, the stream is reset (HTTP/2) or the connection closed (HTTP/1.1):
the ASGI adapter does both, and logs the traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, final

import trio

from .._core.errors import ClientDisconnected, LocalProtocolError
from .._core.headers import response_headers
from .asgi import Message, Receive, Scope, Send
from .lifespan import answer_lifespan
from .wsgi_environ import HOP_BY_HOP, ErrorStream, InputStream, build_environ

log = logging.getLogger("trio_h2")

__all__ = ["DEFAULT_THREADS", "WSGIApp", "detect_interface"]

# Worker threads per WSGIApp, which is one per server: trio's own default
# thread limiter allows 40 (trio.to_thread.current_default_thread_limiter),
# and so does the pool asgiref's WsgiToAsgi and Django's sync views share
# (ThreadPoolExecutor's min(32, cpu + 4) is near it). Each thread is one
# request in progress; memory, not CPU, bounds it (8 MiB of virtual stack
# each, mostly unbacked).
DEFAULT_THREADS = 40

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
T = TypeVar("T")

_STATUS = re.compile(r"([0-9]{3})(?: [^\x00-\x1f\x7f]*)?")


class StartResponse(Protocol):
    def __call__(self, status: str, headers: list[tuple[str, str]],
                 exc_info: ExcInfo | tuple[None, None, None] | None = None, /
                 ) -> Callable[[bytes], object]: ...


# The environ's values are of many types (PEP 3333); typeshed's WSGIApplication,
# which Flask and Django declare, says dict[str, Any]: so must we, or
# WSGIApp(flask_app) fails the user's type check.
WSGICallable = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@final
class WSGIApp:
    """The ASGI 3 application that serves the WSGI callable ``app``.

    Serve it as any ASGI app: ``trio_h2.serve(trio_h2.WSGIApp(app))``. Each
    request runs ``app`` in a worker thread; at most ``threads`` run at once
    (more requests wait for a thread, holding their streams open). With
    ``threads=1`` the app runs one request at a time, for apps that are not
    thread-safe (``wsgi.multithread`` is then ``False``). ``multiprocess``
    is what ``wsgi.multiprocess`` says: pass ``True`` if other processes
    serve the same app (``--workers``).

    It answers the ASGI lifespan scope itself (startup and shutdown
    complete), since WSGI has no such events. Raises :exc:`ValueError` for a
    ``threads`` that is not a positive integer.
    """

    def __init__(self, app: WSGICallable, *, threads: int = DEFAULT_THREADS,
                 multiprocess: bool = False) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an int >= 1, not {threads!r}")
        self.app = app
        self.threads = threads
        self.multiprocess = multiprocess
        # One limiter for all requests of all connections of the server.
        self._limiter = trio.CapacityLimiter(threads)

    def __repr__(self) -> str:
        return f"WSGIApp({self.app!r}, threads={self.threads})"

    def statistics(self) -> trio.CapacityLimiterStatistics:
        """The thread limiter's statistics: ``borrowed_tokens`` requests are
        in the app's threads, ``tasks_waiting`` wait for a thread."""
        return self._limiter.statistics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await answer_lifespan(receive, send)
        else:
            raise LocalProtocolError(f"a WSGI application cannot serve a {kind!r} scope")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        portal = _Portal(receive, send)
        # The path as received: the decoded one could put a newline in a log line.
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        request = f"{scope['method']} {raw_path.decode('ascii', 'backslashreplace')}"
        errors = ErrorStream(request)
        environ = build_environ(
            scope, input_stream=InputStream(portal.next_chunk), errors=errors,
            multithread=self.threads > 1, multiprocess=self.multiprocess)
        response = _Response(environ, portal, errors, request, head=scope["method"] == "HEAD")
        try:
            # abandon_on_cancel: when the connection ends or the server's
            # shutdown_timeout runs out, the handler does not wait for a
            # thread stuck in the app. The thread keeps its limiter token
            # until it returns; its next read or write raises (see _Portal).
            await trio.to_thread.run_sync(response.run, self.app, limiter=self._limiter,
                                          abandon_on_cancel=True,
                                          thread_name=f"trio_h2 WSGI {request}")
        finally:
            portal.close()


@final
class _Portal:
    """The way from one request's worker thread into trio, and back.

    Every call runs ``receive`` or ``send`` in trio and blocks the thread
    until it returns. Once the request's handler has ended (:meth:`close`:
    the connection is gone, or the server stopped waiting), calls in
    progress are cancelled and new ones fail: both raise
    :exc:`ClientDisconnected` in the thread, as does the end of the trio
    run."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._scopes: set[trio.CancelScope] = set()
        self._body_ended = False
        self.closed = False

    def send(self, *messages: Message) -> None:
        """ASGI ``send`` each of ``messages`` in turn, in one trip into trio."""
        self._call(functools.partial(self._send_all, messages))

    def next_chunk(self) -> bytes:
        """The next non-empty piece of request body; ``b""`` at its end."""
        while not self._body_ended:
            message = self._call(self._receive)
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("client disconnected before the request body ended")
            self._body_ended = not message.get("more_body", False)
            body = bytes(message.get("body", b""))
            if body:
                return body
        return b""

    def close(self) -> None:
        """Called in trio when the request's handler ends."""
        self.closed = True
        for scope in self._scopes:
            scope.cancel()

    async def _send_all(self, messages: tuple[Message, ...]) -> None:
        for message in messages:
            await self._send(message)

    def _call(self, afn: Callable[[], Awaitable[T]]) -> T:
        try:
            return trio.from_thread.run(self._guarded, afn)
        except (trio.Cancelled, trio.RunFinishedError):
            raise ClientDisconnected("the server stopped serving this request") from None

    async def _guarded(self, afn: Callable[[], Awaitable[T]]) -> T:
        if not self.closed:
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    return await afn()
                finally:
                    self._scopes.discard(scope)
        raise ClientDisconnected("the server stopped serving this request")


@final
class _Response:
    """One WSGI call, in its worker thread: ``start_response``, ``write``
    and the returned iterable, turned into ASGI messages (PEP 3333)."""

    def __init__(self, environ: dict[str, object], portal: _Portal, errors: ErrorStream,
                 request: str, *, head: bool) -> None:
        self._environ = environ
        self._errors = errors
        self._portal = portal
        self._request = request
        self._head = head
        self._status: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._length: int | None = None  # the app's Content-Length, when it is enforced
        self._written = 0
        self._started = False  # http.response.start is sent: the headers are out

    def run(self, app: WSGICallable) -> None:
        try:
            result = app(self._environ, self.start_response)
            try:
                self._send_iterable(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            if self._portal.closed and not isinstance(exc, ClientDisconnected):
                # Abandoned: no handler is left to log this.
                log.error("%s: WSGI application raised %s after its request ended",
                          self._request, type(exc).__name__, exc_info=exc)
            raise
        finally:
            self._errors.flush()  # what close() wrote

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: ExcInfo | tuple[None, None, None] | None = None
                       ) -> Callable[[bytes], None]:
        """PEP 3333's ``start_response``: checks and keeps the status and
        headers; they go out with the first non-empty piece of body.
        ``(None, None, None)`` (what ``sys.exc_info()`` gives outside an
        exception) is no exception, as typeshed's ``OptExcInfo`` allows."""
        if exc_info is not None and exc_info[1] is not None:
            try:
                if self._started:  # too late to change the response: abort it
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self._status is not None:
            raise LocalProtocolError("start_response() called twice without exc_info")
        code = _status_code(status)
        fields = _header_fields(headers)
        response_headers(code, fields)  # raises now, while the app runs (PEP 3333)
        self._status, self._headers = code, fields
        self._length = None
        if not self._head and code not in (204, 304):  # responses without content
            declared = [value for name, value in fields if name == b"content-length"]
            if declared:
                if len(declared) > 1 or not declared[0].isdigit():
                    raise LocalProtocolError(f"invalid Content-Length {declared!r}")
                self._length = int(declared[0])
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()``: returns once the sender has taken ``data``."""
        if self._status is None:
            raise LocalProtocolError("write() before start_response()")
        if self._length is not None and self._written + len(data) > self._length:
            raise LocalProtocolError(f"write() past Content-Length {self._length} "
                                     f"({self._written} bytes written, {len(data)} more)")
        self._send_body(_checked(data), more=True)

    def _send_iterable(self, result: Iterable[bytes]) -> None:
        # PEP 3333: a one-element list's length is the Content-Length. Other
        # iterables go piece by piece (HTTP/1.1: chunked unless the app set
        # Content-Length) with an empty last piece to end the body, except
        # the piece that completes the app's Content-Length: it ends the body
        # itself, and iteration stops there (PEP 3333). So a response whole
        # in its first piece (Werkzeug's ClosingIterator, Django's
        # HttpResponse) is whole in one message, and the ASGI adapter this
        # one sends through has it wait while an unread request body is
        # dropped (_core.exchange.awaits_unread_body).
        if isinstance(result, list | tuple) and len(result) == 1 and not self._started:
            self._send_body(self._within_length(_checked(result[0])), more=False)
            return
        for piece in result:
            data = self._within_length(_checked(piece))
            if self._length is not None and self._written + len(data) >= self._length:
                self._send_body(data, more=False)
                return
            if data:
                self._send_body(data, more=True)
        self._send_body(b"", more=False)

    def _within_length(self, data: bytes) -> bytes:
        if self._length is None or self._written + len(data) <= self._length:
            return data
        log.warning("%s: WSGI application yielded more than its Content-Length %d; "
                    "the rest is not sent", self._request, self._length)
        return data[:self._length - self._written]

    def _send_body(self, data: bytes, *, more: bool) -> None:
        if self._status is None:
            raise LocalProtocolError("the WSGI application did not call start_response()")
        if not more and self._length is not None and self._written + len(data) < self._length:
            raise LocalProtocolError(f"the WSGI application sent {self._written + len(data)} "
                                     f"bytes of its Content-Length {self._length}")
        if not more:
            # The app's log lines come before the end of its response.
            self._errors.flush()
        body = {"type": "http.response.body", "body": data, "more_body": more}
        self._written += len(data)
        if self._started:
            self._portal.send(body)
            return
        self._started = True
        self._portal.send({"type": "http.response.start", "status": self._status,
                           "headers": self._headers}, body)


def _status_code(status: object) -> int:
    if not isinstance(status, str):
        raise LocalProtocolError(f"WSGI status must be a str, not {type(status).__name__}")
    match = _STATUS.fullmatch(status)
    if match is None:
        raise LocalProtocolError(f"invalid WSGI status {status!r}: expected '200 OK'")
    return int(match[1])


def _header_fields(headers: object) -> list[tuple[bytes, bytes]]:
    if not isinstance(headers, list | tuple):
        raise LocalProtocolError(f"WSGI response headers must be a list, "
                                 f"not {type(headers).__name__}")
    fields = []
    for pair in headers:
        if (not isinstance(pair, tuple | list) or len(pair) != 2
                or not all(isinstance(part, str) for part in pair)):
            raise LocalProtocolError(f"WSGI response header {pair!r} is not a pair of str")
        name, value = pair
        if name.lower() in HOP_BY_HOP:
            # PEP 3333: a fatal error, raised at start_response().
            raise LocalProtocolError(f"WSGI applications must not send the hop-by-hop "
                                     f"header {name!r}")
        try:
            fields.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise LocalProtocolError(f"WSGI response header {pair!r} is not "
                                     f"ISO-8859-1") from None
    return fields


def _checked(data: object) -> bytes:
    if not isinstance(data, bytes):
        raise LocalProtocolError(f"a WSGI response body must be bytes, "
                                 f"not {type(data).__name__}")
    return data


def detect_interface(app: object) -> Literal["asgi", "wsgi"] | None:
    """Which interface the callable ``app`` serves, or ``None`` if its
    signature cannot tell.

    A coroutine function, or an object whose ``__call__`` is one, is ASGI
    (Hypercorn's whole rule). Otherwise the signature decides: a callable
    that takes ``(environ, start_response)`` and not three arguments is
    WSGI, one that takes ``(scope, receive, send)`` and not two is ASGI
    (a sync function returning an awaitable). A signature that takes both,
    or none that ``inspect`` can read, is ``None``: say ``--interface``."""
    if not callable(app):
        return None
    if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(app.__call__):
        return "asgi"
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return None
    takes = [_binds(signature, count) for count in (2, 3)]
    if takes == [True, False]:
        return "wsgi"
    if takes == [False, True]:
        return "asgi"
    return None


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True
