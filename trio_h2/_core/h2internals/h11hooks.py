"""h11's undocumented part (listed in ``_core.h2internals``): the buffer of
received bytes no event has taken yet, and the count of a Content-Length
body's bytes still to come. Checked by ``h2internals.check_hooks``."""

from __future__ import annotations

import h11
import h11._readers  # (looked up as it is used: check_hooks reports it missing)


def h11_buffered(conn: h11.Connection) -> int:
    """Bytes h11 holds that no event has taken yet (a head still arriving)."""
    return len(conn._receive_buffer)


def h11_take_body(conn: h11.Connection, size: int) -> int:
    """How many of the next ``size`` bytes received are body that h11 need
    not see: while it reads a Content-Length body and holds nothing, they
    are taken off its count of bytes to come, and the caller hands them to
    the application itself. Through h11 each byte would be copied three
    times (into its buffer, and twice out of it); past the count, the bytes
    (the next request) go to h11 as usual, and it ends the body when its
    count is zero."""
    reader = conn._reader
    if type(reader) is not h11._readers.ContentLengthReader or conn._receive_buffer \
            or conn.their_state is not h11.SEND_BODY:
        return 0
    taken = min(size, reader._remaining)
    reader._remaining -= taken
    if taken:
        # As h11 does on the client's body: whoever sends it waits no more.
        conn.client_is_waiting_for_100_continue = False
    return taken
