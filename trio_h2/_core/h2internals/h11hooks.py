"""h11's undocumented part (listed in ``_core.h2internals``): the buffer of
received bytes no event has taken yet. Checked by ``h2internals.check_hooks``."""

from __future__ import annotations

import h11


def h11_buffered(conn: h11.Connection) -> int:
    """Bytes h11 holds that no event has taken yet (a head still arriving)."""
    return len(conn._receive_buffer)
