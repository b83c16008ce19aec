"""One request/response exchange as the core sees it. Pure.

``StreamState`` is a record: only the protocol core that made it
(``_state.ConnectionState`` for HTTP/2, ``_h1state.H1State`` for HTTP/1.1)
changes it; handlers read it and wait on it. Its three callables are set
by the trio layer (``_handoff``, ``_asgi``): the core calls them to take a
response chunk, to wake the handler, and to tell it the client went away.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, final

from ._headers import Headers, RequestHead


def _noop() -> None:
    pass


def _nothing() -> None:
    return None


class Chunk(NamedTuple):
    """One piece of a response body, as a handler hands it to the sender."""

    data: bytes
    end_stream: bool
    """The response body ends with it (then ``trailers``, if any)."""
    trailers: Headers | None = None


@final
@dataclass(eq=False, slots=True)
class StreamState:
    """One request/response exchange. Mutated only by the protocol core that made it."""

    stream_id: int
    head: RequestHead
    priority: dict[str, object] = field(default_factory=dict)
    """The request's priority signals as it arrived (the ASGI scope's
    ``trio_h2.priority`` extension); empty over HTTP/1.1."""
    http_version: str = "2"
    """The ASGI ``http_version``: ``"2"``, ``"1.1"`` or ``"1.0"``."""

    # Request body, as received and not yet consumed: (bytes, flow-controlled length).
    body: deque[tuple[bytes, int]] = field(default_factory=deque)
    body_ended: bool = False
    """The client sent END_STREAM: no more body will come."""

    # Response.
    headers_sent: bool = False
    offered: int | None = None
    """The size of the chunk the handler waits to hand over, or None. The
    core counts the stream ready on it, and takes the chunk with
    :attr:`take` when the scheduler chooses the stream."""
    take: Callable[[], Chunk | None] = _nothing
    """Takes the offered chunk, releasing the handler (the trio layer's
    ``receive_nowait`` on the exchange's channel); None if the handler's
    ``send`` was cancelled before the chunk was taken."""
    outbox: memoryview | None = None
    """Response bytes taken from the handler and not yet framed."""
    outbox_end: bool = False
    """END_STREAM goes out with the last byte of ``outbox`` (or after ``trailers``)."""
    trailers: Headers | None = None
    response_ended: bool = False
    """END_STREAM has been framed (or the stream was reset)."""

    # Lifetime.
    closed: bool = False
    """The stream is closed on the wire; it has left ``ConnectionState.streams``."""
    disconnected: bool = False
    """Closed abnormally: reset by either side, or the connection was lost.
    The client will not see any more of the response."""

    wake: Callable[[], object] = _noop
    """Called whenever something a handler may be waiting on in ``receive``
    changes."""
    hang_up: Callable[[], object] = _noop
    """Called once, when the stream is disconnected: the trio layer closes
    the exchange's channel, so that a handler waiting to hand over a chunk
    (or trying to) learns that the client went away."""
