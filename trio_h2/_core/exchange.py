"""One request/response exchange as the core sees it. Pure.

``Exchange`` is a record: only the protocol core that made it
(``_core.h2.H2Core`` for HTTP/2, ``_core.h1.H1Core`` for HTTP/1.1)
changes it; handlers read it and wait on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import final

from .headers import Headers, RequestHead, declared_length, expects_continue

Address = tuple[str, int | None]
"""A socket address as the ASGI scope has it: ``(host, port)``, or
``(path, None)`` for a Unix socket."""


# An application may answer without reading the request body (a 401, a 404,
# a 413 decided from the head). A response whole in one message then waits
# while the rest of the body is read and dropped, within these bounds: a
# client that sends its whole body before it reads gets the answer. curl
# before 8.1 stops uploading once it has response headers (curl issue 10433)
# and hangs, or fails with error 92 if the stream is reset as RFC 9113
# section 8.1 allows. nginx discards an unread body too, for at most its
# lingering_time (30 s), and no longer than its lingering_timeout (5 s)
# without a byte: the client's window is open (credit goes back as the body
# is dropped), so a pause that long means it has stopped sending. A body
# declared larger than 8 MiB is not waited for, and past 8 MiB the answer
# goes: it costs bandwidth, never memory
# (each piece is dropped as it is taken, and only its credit goes back, so
# no window grows past what was advertised). 8 MiB covers the form posts
# and photos an early answer usually meets. The app adapters wait this way
# (``_apps.asgi``; ``_apps.wsgi`` through it); this module decides whether.
DISCARD_BYTES = 8 * 1024 * 1024
DISCARD_SECONDS = 30.0
DISCARD_PAUSE = 5.0

# Request body pieces smaller than this are joined into one buffer as they
# arrive (:func:`add_body`). Every account of request body (the stream
# window, ``Config.max_body_memory``, HTTP/1.1's ``initial_window_size`` of
# unread input) counts its bytes, and a client may send them a byte at a
# time: a DATA frame, a chunk of a chunked body, a read from a trickling
# connection each. Held as they came, each was a bytes object, a tuple and a
# deque slot, about 100 bytes: a 256 KiB window held 25 MiB over HTTP/2 (31
# MiB as HTTP/1.1 chunks), 100 times what the accounts said. A page: pieces
# this large cost their bytes and 2-3% more.
JOIN_BELOW = 4096


def _noop() -> None:
    pass


@final
@dataclass(eq=False, slots=True)
class Exchange:
    """One request/response exchange. Mutated only by the protocol core that made it."""

    stream_id: int
    head: RequestHead
    priority: dict[str, object] = field(default_factory=dict)
    """The request's priority signals as it arrived (the ASGI scope's
    ``trio_h2.priority`` extension); empty over HTTP/1.1."""
    http_version: str = "2"
    """The ASGI ``http_version``: ``"2"``, ``"1.1"`` or ``"1.0"``."""

    # Request body, as received and not yet consumed: (bytes, flow-controlled
    # length), small pieces joined into a bytearray as they arrive (add_body).
    body: deque[tuple[bytes | bytearray, int]] = field(default_factory=deque)
    body_ended: bool = False
    """The client sent END_STREAM: no more body will come."""
    body_received: int = 0
    """HTTP/2: bytes of request body received (padding aside), to judge
    against its content-length when trailers end it."""
    continued: bool = False
    """HTTP/2: a ``100 Continue`` is no longer due (sent, or the body began)."""
    body_charge: int = 0
    """HTTP/2: what the body may still hold of the server's ``max_body_memory``."""

    # Response.
    headers_sent: bool = False
    outbox: memoryview | None = None
    """Response bytes offered by the handler and not yet framed."""
    outbox_end: bool = False
    """END_STREAM goes out with the last byte of ``outbox`` (or after ``trailers``)."""
    trailers: Headers | None = None
    in_flight: bool = False
    """The handler's last offer is not yet written to the socket."""
    response_ended: bool = False
    """END_STREAM has been framed (or the stream was reset)."""

    # Lifetime.
    closed: bool = False
    """The stream is closed on the wire; it has left the stream table (``_core.h2streams``)."""
    disconnected: bool = False
    """Closed abnormally: reset by either side, or the connection was lost.
    The client will not see any more of the response."""
    going_away: bool = False
    """The server is shutting down (its connection drains): an exchange
    that would otherwise run on (a WebSocket) ends now, with 1001 "going
    away" (RFC 6455 section 7.4.1). Set with a :attr:`wake`."""

    wake: Callable[[], object] = _noop
    """Called whenever something a handler may be waiting on changes."""


def take_offered(stream: Exchange, budget: int) -> memoryview:
    """Up to ``budget`` bytes of ``stream``'s offer, removed from it: the
    cores that write an offer as it is (HTTP/1.1, the tunnel). ``outbox``
    is None once it is all taken."""
    outbox = stream.outbox
    assert outbox is not None
    piece = outbox[:budget]
    stream.outbox = outbox[budget:] if budget < len(outbox) else None
    return piece


def add_body(stream: Exchange, piece: bytes, flow: int) -> None:
    """Store ``piece`` of ``stream``'s request body, ``flow`` its
    flow-controlled length (HTTP/2 counts padding; elsewhere its length, or 0
    for bytes no window covers). A piece under :data:`JOIN_BELOW` that follows
    one is joined into it, their flows summed, so what the body holds is
    about its bytes whatever the size of its pieces; a lone piece stays the
    object it was (the application gets it uncopied)."""
    body = stream.body
    if body:
        last, last_flow = body[-1]
        if len(last) < JOIN_BELOW and len(piece) < JOIN_BELOW:
            joined = last if isinstance(last, bytearray) else bytearray(last)
            joined += piece
            body[-1] = (joined, last_flow + flow)
            return
    body.append((piece, flow))


def release(streams: list[Exchange]) -> None:
    """The sender has taken every byte offered for ``streams``: their
    handlers may offer their next chunks (``ProtocolCore.taken``)."""
    for stream in streams:
        stream.in_flight = False
        stream.wake()


def drain_body(stream: Exchange) -> bytes:
    """All of ``stream``'s buffered request body, removed: for the cores
    with no flow-control credit to return (HTTP/1.1, the tunnel)."""
    data = b"".join(chunk for chunk, _ in stream.body)
    stream.body.clear()
    return data


def awaits_unread_body(stream: Exchange, *, body_read: bool) -> bool:
    """Whether a response whole in one message, about to go on ``stream``,
    first waits while the rest of its request body is read and dropped
    (within :data:`DISCARD_BYTES`, :data:`DISCARD_SECONDS` and pauses of
    :data:`DISCARD_PAUSE`). Not when the body has ended or the stream is
    gone; not when the application read some of it (``body_read``: a 413
    on the running size wants the upload stopped); not when the client
    holds its body back for a ``100 Continue`` it need not get; not when it
    declared more than :data:`DISCARD_BYTES`; not when no body was announced
    and none arrived."""
    if body_read or stream.body_ended or stream.disconnected:
        return False
    if expects_continue(stream.head) and not stream.body:
        return False
    declared = declared_length(stream.head)
    if declared is not None and declared > DISCARD_BYTES:
        return False
    return bool(declared) or bool(stream.body)


def going_away(streams: Iterable[Exchange]) -> None:
    """The connection drains: tell the handlers of ``streams`` (the cores'
    ``start_drain``)."""
    for stream in streams:
        stream.going_away = True
        stream.wake()
