"""Reading a connection's first bytes until a pure function can tell what
they are: the PROXY protocol header (``proxy``), the HTTP/2 preface or an
HTTP/1.1 request (``select``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import trio

from .._core.protocol import READ_SIZE

T = TypeVar("T")

# Bytes per read (READ_SIZE): what follows the decision belongs to the
# protocol it picks and goes to that protocol's core, so a read is as large as
# the connection's own. While a PROXY header is incomplete the buffer never
# exceeds V2_MAX_LENGTH + READ_SIZE (128 KiB), once per connection.


async def read_until(stream: trio.abc.Stream,
                     decide: Callable[[bytes], T | None]) -> T | Literal["closed"]:
    """Read from ``stream`` and call ``decide`` with everything read so far
    until it returns something other than ``None``; return that, or
    ``"closed"`` if the client closed (or reset) first. Unbounded in time:
    the caller runs it under its timeout, and logs and closes."""
    received = b""
    while True:
        try:
            data = await stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            return "closed"
        received += data
        decision = decide(received)
        if decision is not None:
            return decision
