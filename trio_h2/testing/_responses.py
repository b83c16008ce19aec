"""What the testing client's requests take and give back: priority signals,
responses (whole or streamed), the state of one stream as the reader task
records it, and the errors. ``_client`` runs the connection that fills
them."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

import trio
from h2.errors import ErrorCodes

if TYPE_CHECKING:
    from ._client import H2Client

HeaderList = list[tuple[bytes, bytes]]
"""Headers as received: lowercase byte names, byte values, no pseudo-headers."""
RequestHeaders = Sequence[tuple[str | bytes, str | bytes]]
"""Extra request headers; ``str`` is encoded as UTF-8 and names are lowercased."""


class H2ClientError(Exception):
    """Base class of the errors the client raises for protocol events."""


@final
class StreamReset(H2ClientError):
    """The server reset the stream with RST_STREAM. ``error_code`` is the RFC
    9113 code it sent (an :class:`h2.errors.ErrorCodes`, or ``int`` if unknown).
    The connection stays usable."""

    def __init__(self, stream_id: int, error_code: ErrorCodes | int) -> None:
        super().__init__(f"stream {stream_id} was reset by the server: {error_code!r}")
        self.stream_id = stream_id
        self.error_code = error_code


@final
class ConnectionClosed(H2ClientError):
    """The connection ended before the request finished, or a request was made
    on a closed connection. ``error_code`` and ``last_stream_id`` are those of
    the server's GOAWAY, or ``None`` if it sent none."""

    def __init__(
        self,
        message: str,
        *,
        error_code: ErrorCodes | int | None = None,
        last_stream_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.last_stream_id = last_stream_id


@final
@dataclass(frozen=True)
class Priority:
    """Priority signals to send with a request.

    ``urgency`` (0..7) and ``incremental`` become an RFC 9218 ``priority``
    request header (``u=N, i``); ``weight`` (1..256), ``depends_on`` and
    ``exclusive`` become RFC 7540 priority information in the HEADERS frame
    (sent when any of them differs from its default). Raises ``ValueError``
    for values out of range.
    """

    urgency: int | None = None
    incremental: bool = False
    weight: int | None = None
    depends_on: int = 0
    exclusive: bool = False

    def __post_init__(self) -> None:
        if self.urgency is not None and not 0 <= self.urgency <= 7:
            raise ValueError(f"urgency must be in 0..7, not {self.urgency}")
        if self.weight is not None and not 1 <= self.weight <= 256:
            raise ValueError(f"weight must be in 1..256, not {self.weight}")
        if not 0 <= self.depends_on < 2**31:
            raise ValueError(f"depends_on must be a stream id, not {self.depends_on}")

    @property
    def field_value(self) -> str | None:
        """The RFC 9218 field value, e.g. ``"u=2, i"``; ``None`` if there is none."""
        parts = [] if self.urgency is None else [f"u={self.urgency}"]
        if self.incremental:
            parts.append("i")
        return ", ".join(parts) or None

    @property
    def has_stream_dependency(self) -> bool:
        """Whether RFC 7540 priority information goes into the HEADERS frame."""
        return self.weight is not None or self.depends_on != 0 or self.exclusive


def _find(headers: HeaderList, name: str | bytes) -> bytes | None:
    key = as_bytes(name).lower()
    return next((value for n, value in headers if n == key), None)


@final
@dataclass(frozen=True)
class Response:
    """A complete response, as returned by :meth:`H2Client.request`."""

    status: int
    headers: HeaderList
    body: bytes
    trailers: HeaderList
    stream_id: int

    def header(self, name: str | bytes) -> bytes | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        return _find(self.headers, name)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()


class ClientStream:
    """Per-stream state, written by the reader task and read by the requester."""

    def __init__(self, stream_id: int, *, ack_on_receive: bool) -> None:
        self.stream_id = stream_id
        self.ack_on_receive = ack_on_receive
        self.changed = trio.Event()
        self.status: int | None = None
        self.headers: HeaderList = []
        self.trailers: HeaderList = []
        self.chunks: deque[tuple[bytes, int]] = deque()  # (data, flow-controlled length)
        self.ended = False
        self.reset_code: ErrorCodes | int | None = None
        self.refused = False  # above the last_stream_id of a GOAWAY

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


@final
class StreamingResponse:
    """A response whose headers have arrived and whose body is read on demand,
    yielded by :meth:`H2Client.stream`. Iterate it for body chunks, or
    :meth:`read` the rest. Each chunk is acknowledged to the server (with
    ``auto_window``) only when the caller takes it, so a caller that does not
    read keeps the server's send window closed. Reading raises
    :exc:`StreamReset` / :exc:`ConnectionClosed` once the chunks received
    before the stream or connection failed have been consumed."""

    def __init__(self, client: H2Client, stream: ClientStream) -> None:
        self._client = client
        self._stream = stream
        self.stream_id = stream.stream_id
        self.status: int = stream.status or 0
        self.headers: HeaderList = stream.headers

    def header(self, name: str | bytes) -> bytes | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        return _find(self.headers, name)

    @property
    def trailers(self) -> HeaderList:
        """Trailers; complete once the body has been read to the end."""
        return self._stream.trailers

    def __aiter__(self) -> StreamingResponse:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._client._next_chunk(self._stream)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def read(self) -> bytes:
        """Read and return the rest of the body."""
        return b"".join([chunk async for chunk in self])


def as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
