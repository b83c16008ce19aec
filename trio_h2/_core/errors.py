"""Exceptions trio_h2 raises, split by who broke the rule.

``RemoteProtocolError``: the client did (answered on the wire with the error
code it carries). ``LocalProtocolError``: the application did (the stream is
answered with 500 or reset). ``ClientDisconnected``: the peer went away.
"""

from __future__ import annotations

from typing import final

from h2.errors import ErrorCodes

__all__ = ["ClientDisconnected", "LocalProtocolError", "RemoteProtocolError"]


@final
class ClientDisconnected(OSError):
    """Raised by an ASGI ``send`` once the client can no longer receive the
    response: it reset the stream, closed the connection, or the connection
    failed. An ``OSError`` so that code written for sockets handles it."""


@final
class RemoteProtocolError(Exception):
    """The client broke HTTP/2 or HTTP semantics. ``error_code`` is the RFC
    9113 code to answer with; ``stream_id`` is 0 for a connection error.
    Over HTTP/1.1, ``status`` is the status the request was answered with."""

    def __init__(self, message: str, *, error_code: ErrorCodes, stream_id: int = 0,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.stream_id = stream_id
        self.status = status


@final
class LocalProtocolError(Exception):
    """The application asked for something HTTP/2 cannot carry: an invalid
    header, a message out of order, a body past the end of the response."""
